"""The typed action space: every read and write an agent may ask the cluster gateway for.

One pydantic model per verb, gathered in ``Action``, a union discriminated on ``verb`` (``ACTION_ADAPTER``). The union
is the wire form: the messages of ``stratus.contracts`` and the journal carry these typed models, every field validated
when a message is read, never a verb with a free parameter dict. Records written before (``{verb, kind, namespace,
name, params}``) are still read: the union flattens them into the typed form. The models' JSON schemas
(``action_json_schemas``) are the tool schemas an LLM reasoner hands to the model.

``scope`` is the unit of the A-Lock: the action's namespace, or ``"cluster"`` for cluster-scoped kinds.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from stratus.dataplane import check_args
from stratus.identity import check_container, check_env_name, check_identity, check_kind_token, check_name

CLUSTER_SCOPE = "cluster"


class KindInfo(NamedTuple):
    """How the gateway reaches one Kubernetes kind over REST."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool
    aliases: tuple[str, ...]


KINDS: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        KindInfo("Pod", "v1", "pods", True, ("po", "pod", "pods")),
        KindInfo("Service", "v1", "services", True, ("svc", "service", "services")),
        KindInfo("Endpoints", "v1", "endpoints", True, ("ep", "endpoint", "endpoints")),
        KindInfo("ConfigMap", "v1", "configmaps", True, ("cm", "configmap", "configmaps")),
        KindInfo("Secret", "v1", "secrets", True, ("secret", "secrets")),
        KindInfo("ServiceAccount", "v1", "serviceaccounts", True, ("sa", "serviceaccount", "serviceaccounts")),
        KindInfo("PersistentVolumeClaim", "v1", "persistentvolumeclaims", True, ("pvc", "persistentvolumeclaim")),
        KindInfo("Event", "v1", "events", True, ("ev", "event", "events")),
        KindInfo("PersistentVolume", "v1", "persistentvolumes", False, ("pv", "persistentvolume")),
        KindInfo("Node", "v1", "nodes", False, ("no", "node", "nodes")),
        KindInfo("Namespace", "v1", "namespaces", False, ("ns", "namespace", "namespaces")),
        KindInfo("Deployment", "apps/v1", "deployments", True, ("deploy", "deployment", "deployments")),
        KindInfo("ReplicaSet", "apps/v1", "replicasets", True, ("rs", "replicaset", "replicasets")),
        KindInfo("StatefulSet", "apps/v1", "statefulsets", True, ("sts", "statefulset", "statefulsets")),
        KindInfo(
            "ControllerRevision", "apps/v1", "controllerrevisions", True, ("controllerrevision", "controllerrevisions")
        ),
        KindInfo("DaemonSet", "apps/v1", "daemonsets", True, ("ds", "daemonset", "daemonsets")),
        KindInfo("Job", "batch/v1", "jobs", True, ("job", "jobs")),
        KindInfo("CronJob", "batch/v1", "cronjobs", True, ("cj", "cronjob", "cronjobs")),
        KindInfo("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True, ("netpol", "networkpolicy")),
        KindInfo("Ingress", "networking.k8s.io/v1", "ingresses", True, ("ing", "ingress", "ingresses")),
        KindInfo("StorageClass", "storage.k8s.io/v1", "storageclasses", False, ("sc", "storageclass")),
        KindInfo("ResourceQuota", "v1", "resourcequotas", True, ("quota", "resourcequota", "resourcequotas")),
        KindInfo("LimitRange", "v1", "limitranges", True, ("limits", "limitrange", "limitranges")),
        KindInfo(
            "HorizontalPodAutoscaler",
            "autoscaling/v2",
            "horizontalpodautoscalers",
            True,
            ("hpa", "horizontalpodautoscaler", "horizontalpodautoscalers"),
        ),
        KindInfo("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", False, ("clusterrole", "clusterroles")),
        KindInfo(
            "ValidatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            False,
            ("validatingwebhookconfiguration", "validatingwebhookconfigurations"),
        ),
        KindInfo(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            False,
            ("mutatingwebhookconfiguration", "mutatingwebhookconfigurations"),
        ),
    )
}
"""The kinds Stratus acts on, by Kind."""

_ALIASES: dict[str, str] = {}
for _info in KINDS.values():
    _ALIASES[_info.kind.lower()] = _info.kind
    _ALIASES[_info.plural] = _info.kind
    _ALIASES[f"{_info.plural}.{_info.api_version.rpartition('/')[0]}"] = _info.kind
    _ALIASES[f"{_info.kind.lower()}.{_info.api_version.rpartition('/')[0]}"] = _info.kind
    for _alias in _info.aliases:
        _ALIASES[_alias] = _info.kind

SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
ROLLOUT_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


def resolve_kind(name: str) -> str:
    """The Kind for a kind name, plural, short alias or ``plural.group`` (``deploy`` -> ``Deployment``)."""
    if name in KINDS:
        return name
    kind = _ALIASES.get(name.lower())
    if kind is None:
        supported = ", ".join(sorted(KINDS))
        raise ValueError(f"Unknown resource type {name!r}. Supported kinds: {supported}.")
    return kind


def is_cluster_scoped(kind: str) -> bool:
    return not KINDS[resolve_kind(kind)].namespaced


def scope_of(kind: str | None, namespace: str | None) -> str:
    """The A-Lock scope of an object: its namespace, or ``cluster`` for cluster-scoped kinds."""
    if kind is not None and is_cluster_scoped(kind):
        return CLUSTER_SCOPE
    return namespace or CLUSTER_SCOPE


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    WRITE: ClassVar[bool] = False
    ALLOWED_KINDS: ClassVar[frozenset[str] | None] = None
    verb: str
    kind: str = Field(description="Kubernetes kind (Deployment, Pod, ...); aliases like deploy or po are accepted.")
    namespace: str | None = Field(default=None, description="Namespace of the object; None for cluster-scoped kinds.")
    name: str | None = Field(default=None, description="Name of the object.")

    @field_validator("kind")
    @classmethod
    def _canonical_kind(cls, value: str) -> str:
        return resolve_kind(check_kind_token(value))

    @model_validator(mode="after")
    def _check_namespace(self) -> _Action:
        if self.ALLOWED_KINDS is not None and self.kind not in self.ALLOWED_KINDS:
            allowed = ", ".join(sorted(self.ALLOWED_KINDS))
            raise ValueError(f"{self.verb} does not apply to {self.kind}; it applies to: {allowed}")
        info = KINDS[self.kind]
        if not info.namespaced and self.namespace is not None:
            object.__setattr__(self, "namespace", None)
        elif info.namespaced and self.namespace is None and not self._namespace_optional():
            raise ValueError(f"{self.kind} is namespaced: give a namespace")
        check_identity(self.kind, self.namespace, self.name)
        for container in self._containers():
            check_container(container)
        return self

    def _containers(self) -> list[str]:
        container = self.__dict__.get("container")  # a field of some verbs only (a miss through getattr is slow)
        return [container] if isinstance(container, str) else []

    def _namespace_optional(self) -> bool:
        return False

    @property
    def is_write(self) -> bool:
        return self.WRITE

    @property
    def scope(self) -> str:
        return scope_of(self.kind, self.namespace)

    @property
    def target(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
        parts = [self.kind, *([self.namespace] if self.namespace else []), *([self.name] if self.name else [])]
        return "/".join(parts)

    @property
    def params(self) -> dict[str, Any]:
        """The verb's own arguments (every field but verb, kind, namespace and name), as JSON, for display."""
        return self.model_dump(mode="json", exclude={"verb", "kind", "namespace", "name"})


class _Named(_Action):
    name: str = Field(min_length=1, description="Name of the object.")


class _ManifestAction(_Action):
    """An action carrying a whole object; kind, namespace and name are read from the manifest."""

    kind: str = Field(default="", description="Read from the manifest.")
    manifest: dict[str, Any] = Field(description="The Kubernetes object (apiVersion, kind, metadata, spec...).")

    @model_validator(mode="before")
    @classmethod
    def _from_manifest(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("manifest"), dict):
            return data
        manifest = data["manifest"]
        meta = manifest.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ValueError(
                f"the manifest's metadata is a {type(meta).__name__}, not an object: Kubernetes objects carry "
                "metadata as a mapping (metadata: {name: NAME, namespace: NAMESPACE})"
            )
        kind = manifest.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValueError("the manifest has no kind")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(
                "the manifest has no metadata.name (generateName is not supported: an undo needs the object's name)"
            )
        kind = resolve_kind(kind)
        if manifest.get("apiVersion") != KINDS[kind].api_version:
            raise ValueError(f"{kind} must have apiVersion {KINDS[kind].api_version}, not {manifest.get('apiVersion')}")
        namespace = meta.get("namespace") or data.get("namespace")
        if data.get("namespace") and meta.get("namespace") and data["namespace"] != meta["namespace"]:
            raise ValueError(f"the manifest's namespace {meta['namespace']} differs from {data['namespace']}")
        if data.get("name") and data["name"] != name:
            raise ValueError(f"the manifest's name {name} differs from {data['name']}")
        out = dict(data)
        out["kind"] = kind
        out["name"] = name
        if KINDS[kind].namespaced:
            out["namespace"] = namespace
            if namespace:
                out["manifest"] = {**manifest, "metadata": {**meta, "namespace": namespace}}
        else:
            out["namespace"] = None
        return out


# --- reads ----------------------------------------------------------------------------------------------------

Output = Literal["table", "wide", "yaml", "json", "name"]


class Get(_Named):
    """Read one object."""

    verb: Literal["get"] = Field(default="get", description='Always "get".')
    output: Output = Field(default="table", description="table (kubectl-like), wide, yaml, json or name.")


class ListObjects(_Action):
    """List the objects of a kind in a namespace (or all namespaces), optionally filtered."""

    verb: Literal["list"] = Field(default="list", description='Always "list".')
    all_namespaces: bool = Field(default=False, description="List across every namespace (kubectl -A).")
    label_selector: str | None = Field(default=None, description="Label selector, e.g. app=web,tier!=db.")
    field_selector: str | None = Field(default=None, description="Field selector, e.g. status.phase=Running.")
    output: Output = Field(default="table", description="table (kubectl-like), wide, yaml, json or name.")

    def _namespace_optional(self) -> bool:
        return self.all_namespaces


class Describe(_Action):
    """Describe one object (or every object of a kind when name is None) with its recent events."""

    verb: Literal["describe"] = Field(default="describe", description='Always "describe".')
    label_selector: str | None = Field(default=None, description="With no name: describe the objects matching this.")


class Logs(_Named):
    """Container logs of a pod (or of one pod of a workload: Deployment, StatefulSet, ReplicaSet...)."""

    ALLOWED_KINDS = WORKLOAD_KINDS | {"Pod"}
    verb: Literal["logs"] = Field(default="logs", description='Always "logs".')
    kind: str = Field(default="Pod", description="Pod, or a workload kind whose first pod is read.")
    container: str | None = Field(default=None, description="Container name; the first container when None.")
    tail: int | None = Field(default=None, ge=0, description="Only the last N lines.")
    previous: bool = Field(default=False, description="Logs of the previous (crashed) instance of the container.")


class Events(_Action):
    """Events of a namespace, optionally only those about one object."""

    ALLOWED_KINDS = frozenset({"Event"})
    verb: Literal["events"] = Field(default="events", description='Always "events".')
    kind: str = Field(default="Event", description="Always Event.")
    all_namespaces: bool = Field(default=False, description="Events of every namespace.")
    for_kind: str | None = Field(default=None, description="Only events about an object of this kind.")
    for_name: str | None = Field(default=None, description="Only events about the object with this name.")
    field_selector: str | None = Field(default=None, description="Raw field selector on events.")

    @field_validator("for_kind")
    @classmethod
    def _canonical_for_kind(cls, value: str | None) -> str | None:
        return None if value is None else resolve_kind(value)

    def _namespace_optional(self) -> bool:
        return self.all_namespaces

    @model_validator(mode="after")
    def _check_for_name(self) -> Events:
        if self.for_name is not None:
            check_name(self.for_kind or "Pod", self.for_name)
        return self


class RolloutStatus(_Named):
    """The rollout state of a workload, right now (never waits)."""

    ALLOWED_KINDS = ROLLOUT_KINDS
    verb: Literal["rollout_status"] = Field(default="rollout_status", description='Always "rollout_status".')


class RolloutHistory(_Named):
    """The revisions of a Deployment (its ReplicaSets), for ``rollout_undo``."""

    ALLOWED_KINDS = frozenset({"Deployment"})
    verb: Literal["rollout_history"] = Field(default="rollout_history", description='Always "rollout_history".')


# --- writes ---------------------------------------------------------------------------------------------------


class Patch(_Named):
    """Patch an object: strategic merge (default, like kubectl), JSON merge (RFC 7386) or JSON patch (RFC 6902)."""

    WRITE = True
    verb: Literal["patch"] = Field(default="patch", description='Always "patch".')
    patch_type: Literal["strategic", "merge", "json"] = Field(default="strategic", description="The patch format.")
    patch: dict[str, Any] | list[dict[str, Any]] = Field(
        description="The patch: an object for strategic/merge, a list of operations for json."
    )

    @model_validator(mode="after")
    def _shape(self) -> Patch:
        if self.patch_type == "json" and not isinstance(self.patch, list):
            raise ValueError("a json patch is a list of operations ([{'op': ..., 'path': ...}])")
        if self.patch_type != "json" and not isinstance(self.patch, dict):
            raise ValueError(f"a {self.patch_type} patch is an object")
        if isinstance(self.patch, dict):
            # A merge patch's keys are the object's root fields, camelCase identifiers by the API conventions.
            bad = [k for k in self.patch if not (isinstance(k, str) and k.isascii() and k.isidentifier())]
            if bad:
                raise ValueError(f"a {self.patch_type} patch's keys are the object's fields; {bad[0]!r} is not one")
        return self


class Scale(_Named):
    """Set the replica count of a Deployment, StatefulSet or ReplicaSet."""

    WRITE = True
    verb: Literal["scale"] = Field(default="scale", description='Always "scale".')
    ALLOWED_KINDS = SCALABLE_KINDS
    replicas: int = Field(ge=0, le=2**31 - 1, description="The desired number of replicas (an int32 in Kubernetes).")


class SetImage(_Named):
    """Change container images of a workload's pod template (or of a bare pod)."""

    ALLOWED_KINDS = WORKLOAD_KINDS | {"Pod"}
    WRITE = True
    verb: Literal["set_image"] = Field(default="set_image", description='Always "set_image".')
    images: dict[str, str] = Field(min_length=1, description="Container name -> image; '*' means every container.")

    def _containers(self) -> list[str]:
        return [c for c in self.images if c != "*"]


class SetEnv(_Named):
    """Set or remove environment variables in a workload's pod template."""

    ALLOWED_KINDS = WORKLOAD_KINDS
    WRITE = True
    verb: Literal["set_env"] = Field(default="set_env", description='Always "set_env".')
    container: str | None = Field(default=None, description="Only this container; every container when None.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables to set (name -> value).")
    unset: list[str] = Field(default_factory=list, description="Variables to remove.")

    @model_validator(mode="after")
    def _something(self) -> SetEnv:
        if not self.env and not self.unset:
            raise ValueError("set_env needs at least one variable to set or unset")
        for key in [*self.env, *self.unset]:
            check_env_name(key)
        return self


class RolloutRestart(_Named):
    """Restart a workload's pods by stamping its pod template (kubectl rollout restart)."""

    ALLOWED_KINDS = ROLLOUT_KINDS
    WRITE = True
    verb: Literal["rollout_restart"] = Field(default="rollout_restart", description='Always "rollout_restart".')


class RolloutUndo(_Named):
    """Roll a Deployment back to its previous revision, or to ``to_revision``."""

    ALLOWED_KINDS = frozenset({"Deployment"})
    WRITE = True
    verb: Literal["rollout_undo"] = Field(default="rollout_undo", description='Always "rollout_undo".')
    to_revision: int | None = Field(default=None, ge=1, description="The revision to return to; previous if None.")


class Delete(_Named):
    """Delete one object by name (selectors are refused: each write needs its own pre-image)."""

    WRITE = True
    verb: Literal["delete"] = Field(default="delete", description='Always "delete".')


class Apply(_ManifestAction):
    """Create the object, or merge the manifest into the existing one (strategic merge, like kubectl apply)."""

    WRITE = True
    verb: Literal["apply"] = Field(default="apply", description='Always "apply".')


class Create(_ManifestAction):
    """Create the object; fails if it exists."""

    WRITE = True
    verb: Literal["create"] = Field(default="create", description='Always "create".')


class Replace(_ManifestAction):
    """Replace the object with the manifest (create it if absent); the undo of most writes."""

    WRITE = True
    verb: Literal["replace"] = Field(default="replace", description='Always "replace".')
    replicasets: SkipJsonSchema[dict[str, int] | None] = Field(
        default=None,
        description="Undo of a Deployment write only: its ReplicaSets and their replicas before the write. After the "
        "restore, ReplicaSets the write's rollout created or grew are shrunk back, never below their Ready pods.",
    )


class Cordon(_Named):
    """Mark a node unschedulable."""

    ALLOWED_KINDS = frozenset({"Node"})
    WRITE = True
    verb: Literal["cordon"] = Field(default="cordon", description='Always "cordon".')
    kind: str = Field(default="Node", description="Always Node.")


class Uncordon(_Named):
    """Mark a node schedulable."""

    ALLOWED_KINDS = frozenset({"Node"})
    WRITE = True
    verb: Literal["uncordon"] = Field(default="uncordon", description='Always "uncordon".')
    kind: str = Field(default="Node", description="Always Node.")


class Exec(_Named):
    """Run one data-plane operation of the project's catalogue (``stratus.dataplane``) in a container.

    There is no free command: the gateway renders the argv from the operation at run time, the undo is the
    catalogue's inverse operation, and credentials come from the container's own environment.
    """

    ALLOWED_KINDS = frozenset({"Pod"})
    WRITE = True
    verb: Literal["exec"] = Field(default="exec", description='Always "exec".')
    kind: str = Field(default="Pod", description="Always Pod.")
    container: str | None = Field(default=None, description="Container name; the first container when None.")
    operation: str = Field(
        description="A data-plane catalogue operation: mongodb.grant_roles (db, user, roles), mongodb.revoke_roles "
        "(db, user, roles), mongodb.create_declared_user (db, user: recreated as the init scripts declare it), "
        "kafka.reset_group_offset (group, topic, partition, offset, consumers: the consumer Deployments, stopped "
        "while the offset is reset and restored after; run in the broker's pod)."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="The operation's arguments.")

    @model_validator(mode="after")
    def _catalogue(self) -> Exec:
        object.__setattr__(self, "args", check_args(self.operation, self.args))
        return self


LEGACY_IDENTITY = ("kind", "namespace", "name")


def _flatten_legacy(data: Any) -> Any:
    """A record written before actions were typed on the wire (``{verb, kind, namespace, name, params}``), flattened
    into the typed form; anything else unchanged."""
    if isinstance(data, dict) and "verb" in data and isinstance(data.get("params"), dict):
        flat = {k: v for k, v in data.items() if k != "params"}
        for key, value in data["params"].items():
            if key in flat and flat[key] is not None and key in ("verb", *LEGACY_IDENTITY):
                continue
            flat[key] = value
        return {k: v for k, v in flat.items() if not (k in LEGACY_IDENTITY and v is None)}
    return data


Action = Annotated[
    Get
    | ListObjects
    | Describe
    | Logs
    | Events
    | RolloutStatus
    | RolloutHistory
    | Patch
    | Scale
    | SetImage
    | SetEnv
    | RolloutRestart
    | RolloutUndo
    | Delete
    | Apply
    | Create
    | Replace
    | Cordon
    | Uncordon
    | Exec,
    Field(discriminator="verb"),
    BeforeValidator(_flatten_legacy),
]
"""A typed cluster action: one model per verb, discriminated on ``verb``; the form actions travel in."""
ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)

ACTION_TYPES: dict[str, type[_Action]] = {
    cls.model_fields["verb"].default: cls
    for cls in (
        Get,
        ListObjects,
        Describe,
        Logs,
        Events,
        RolloutStatus,
        RolloutHistory,
        Patch,
        Scale,
        SetImage,
        SetEnv,
        RolloutRestart,
        RolloutUndo,
        Delete,
        Apply,
        Create,
        Replace,
        Cordon,
        Uncordon,
        Exec,
    )
}
"""Every verb and its model."""

READ_VERBS = frozenset(v for v, cls in ACTION_TYPES.items() if not cls.WRITE)
WRITE_VERBS = frozenset(v for v, cls in ACTION_TYPES.items() if cls.WRITE)


def parse_action(data: Any) -> Action:
    """A typed action from its JSON form (or a legacy ``{verb, params}`` record); raises ``pydantic.ValidationError``
    if it is invalid."""
    return ACTION_ADAPTER.validate_python(data)


def action_json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of each verb's model, usable as an LLM tool's parameters."""
    return {verb: cls.model_json_schema() for verb, cls in ACTION_TYPES.items()}
