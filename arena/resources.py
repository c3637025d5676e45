"""The resource types the arena serves, with the names discovery and kubectl need."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = True
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key: ``plural`` for core, ``plural.group`` otherwise (as in ``deployments.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def base_path(self, namespace: str | None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


R = ResourceType
RESOURCES: list[ResourceType] = [
    R("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status", "finalize")),
    R("", "v1", "Node", "nodes", "node", False, ("no",), ("status",)),
    R("", "v1", "Pod", "pods", "pod", True, ("po",), ("status", "log", "exec", "binding", "eviction"), ("all",)),
    R("", "v1", "Service", "services", "service", True, ("svc",), ("status",), ("all",)),
    R("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",), (), (), False),
    R("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",), (), (), False),
    R("", "v1", "Secret", "secrets", "secret", True, (), (), (), False),
    R("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",), (), (), False),
    R("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False, ("pv",), ("status",)),
    R(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        ("pvc",),
        ("status",),
    ),
    R("", "v1", "Event", "events", "event", True, ("ev",), (), (), False),
    R("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True, ("quota",), ("status",)),
    R("", "v1", "LimitRange", "limitranges", "limitrange", True, ("limits",), (), (), False),
    R("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("status", "scale"), ("all",)),
    R("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("status", "scale"), ("all",)),
    R("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), ("status", "scale"), ("all",)),
    R(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("status",),
        ("all",),
    ),
    R("batch", "v1", "Job", "jobs", "job", True, (), ("status",), ("all",)),
    R("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), ("status",), ("all",)),
    R("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True, (), (), (), False),
    R("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True, (), (), (), False),
    R("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True, (), (), (), False),
    R("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False, (), (), (), False),
    R(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
        (),
        (),
        (),
        False,
    ),
    R("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False, ("sc",), (), (), False),
    R("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True, ("netpol",), (), (), False),
    R("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True, (), (), (), False),
    R("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, (), (), (), False),
    R(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        False,
        (),
        (),
        (),
        False,
    ),
    R(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        False,
        (),
        (),
        (),
        False,
    ),
]

BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, ResourceType] = {}
for _r in RESOURCES:
    BY_KIND.setdefault(_r.kind, _r)  # core Event wins over events.k8s.io
GROUPS: dict[str, list[str]] = {}
for _r in RESOURCES:
    if _r.group:
        GROUPS.setdefault(_r.group, [])
        if _r.version not in GROUPS[_r.group]:
            GROUPS[_r.group].append(_r.version)


def by_kind(kind: str) -> ResourceType:
    """The resource type of a Kind (``Pod``, ``Deployment``...); also accepts plurals and short names."""
    if kind in BY_KIND:
        return BY_KIND[kind]
    low = kind.lower()
    for r in RESOURCES:
        if low in (r.plural, r.singular, r.kind.lower(), r.key) or low in r.short_names:
            return r
    raise KeyError(f"unknown kind {kind!r}")
