"""The write policy: which writes an agent may make at all, judged on what the server says the write would do.

Why it is shaped this way:

- **Declarative, enforced in code.** The operator states, per scope, which kinds and verbs may be written
  (``STRATUS_WRITE_POLICY``, JSON or YAML, or the chart's ``writePolicy`` value); the gateway calls ``check`` on every
  forward write, after the server-side dry run and the pre-image read, before anything is journaled or sent. Undo
  writes are not judged: they restore pre-images.
- **Judged on the result, not on the request.** A strategic merge, a JSON patch, a ``set image`` or an ``apply`` can
  all grant ``privileged: true``; reading request text would need one parser per form and would miss the next one.
  ``check`` compares the object the server's dry run returned (``dryRun=All``: admission and defaulting included)
  with the pre-image, so every form of write is covered by one comparison. Only what a write *introduces* is refused:
  a DaemonSet that already runs with ``hostNetwork`` can still get a new image.
- **Refused by default, each with a reason and a way forward.** Privilege escalation (privileged containers, host
  namespaces and ports, Windows HostProcess, hostPath and every other volume the node mounts by itself (nfs, iscsi,
  gitRepo, flexVolume...), added capabilities, sysctls outside the safe set, SELinux labels and unconfined
  seccomp/AppArmor profiles (fields or the older annotations), ServiceAccount swaps and token mounts, a PriorityClass
  that preempts other namespaces' pods), ownership and finalizer edits (the garbage collector acts on them later,
  outside the transaction), data destruction (PVC/PV deletion, reclaim policies that delete), exposure (NodePort,
  LoadBalancer, external IPs, ExternalName aliases), images of repositories the workload never ran (outside the
  registries the operator allows), scaling past a bound, and the objects that control the cluster itself (RBAC,
  admission webhooks, CRDs). Also what a pod template brings without a privileged flag: root (``runAsUser: 0``),
  another runtime class, the variables runtimes load code from (``LD_*``, ``CODE_LOADING_ENV``; their values count),
  proxy variables, host aliases and DNS servers (traffic sent elsewhere: ``exposure``), and Secrets it did not get
  before (env, envFrom, a mount at a new path: ``secrets``). Writes no undo takes back (``irreversible``: a history
  limit lowered, so the controller deletes old ReplicaSets or Jobs; a Job's time to live; a claim grown; an object
  made immutable); admission tightened (``limits``: a new or lowered quota or limit-range bound, a new NetworkPolicy,
  each refusing pods or traffic the undo's own rollout needs); deleting a ConfigMap pods need to start
  (``data_destruction``) or a Service that routes to running pods (``traffic``). A scope may ``waive`` a guard by
  name; nothing else relaxes one.
- **A new image is a known repository's.** An image is code its publisher ships: a write may move a container to
  another tag or digest of a repository the workload runs or ran, but another repository is another publisher's code,
  even on a registry the workload already uses (``docker.io/library/nginx`` does not vouch for
  ``docker.io/attacker/x``).
  So a new image must be of a repository in the workload's pre-image, in its own revision history (the ReplicaSets
  (Deployment) or ControllerRevisions (StatefulSet, DaemonSet) the gateway lists from the API whose controller
  reference carries the object's uid: ``history_images``), or in the object Stratus recorded while the scope was
  healthy (``recorded_images``); or from a registry or registry path the operator allows (``allowed_registries``; the
  only source for a new object). Only the controllers write those revisions: a write that creates or re-parents an
  object with an owner reference is refused (``ownership``), a new ReplicaSet's images must pass this same guard, and
  deletes never orphan. So putting back the image a workload ran before a bad change is allowed, and no write can
  forge a history to launder a repository.
- **No new program through a pod template.** The kubelet runs a container's ``command``/``args`` (after expanding
  ``$(VAR)`` from the container's env), its exec hooks and exec probes; an image's entrypoint runs the executable
  files mounted into it. Changing any of them is a free argv, which the exec rule forbids. So after a write every
  such program (``container_programs``) must be one the workload ran before: in its pre-image (any container, so
  moving a sidecar into ``initContainers`` keeps its argv), in its own revision history, read as for images
  (``history_programs``), or in the object Stratus itself recorded under the same kind, namespace and name while the
  scope was healthy (the last-known-good memory, ``recorded_programs``: a workload deleted and re-created with another
  command has lost its revisions, and putting back what it ran when healthy is no new program). Dropping command and
  args (the image's own entrypoint) is allowed; a new object whose containers set command or args has no history and
  is refused (guard ``program``). Files mounted into a start-script directory (``START_SCRIPT_DIRS``: the official
  database images' entrypoints run every file there) count as executable whatever their mode.
- **Content a pod runs is code too.** A ConfigMap key is code when a pod or pod template of its namespace mounts it
  with an execute bit or into a start-script directory, or feeds it to an env variable its command, args or ``sh -c``
  script expands (``configmap_code``; the gateway lists the namespace's pods and templates for the check). Changing
  such a key is a new program with no command line changed, and is refused unless it puts back the content Stratus
  recorded while the scope was healthy (guard ``program``). The data-plane catalogue reads a database user's roles
  from its init scripts: this rule is also what keeps a write from forging them before a grant.
- **Leases widen only where the policy grants.** A write outside the lease's scope is refused; the next attempt's
  lease covers that scope only when ``grants`` allows the write there (``stratus.agent_tools``).
- **Secrets are never written.** A Secret write would need the Secret's pre-image in the journal (its undo), and
  Stratus keeps no Secret value in the journal or the events. Refusing is simpler to trust than encrypting: there is
  no key to rotate or leak, and a fix that needs a credential changes the workload's reference to a Secret instead.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratus.actions import CLUSTER_SCOPE, Action, Delete, Exec, resolve_kind
from stratus.confinement import Refusal
from stratus.kubevalues import quantity, selector_matches
from stratus.settings import WritePolicySettings

Obj = dict[str, Any]

Guard = Literal[
    "cluster_control",
    "secrets",
    "service_account",
    "privileged",
    "host_namespaces",
    "host_path",
    "capabilities",
    "ownership",
    "finalizers",
    "data_destruction",
    "exposure",
    "registry",
    "scale_bound",
    "priority",
    "program",
    "irreversible",
    "limits",
    "traffic",
]
"""The named guards of the policy; a scope may waive one explicitly (``waive``)."""

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
"""Namespaces the ``*`` rules never cover: they are writable only when the policy names them."""

WRITE_VERBS = frozenset(
    {
        "patch",
        "scale",
        "set_image",
        "set_env",
        "rollout_restart",
        "rollout_undo",
        "delete",
        "apply",
        "create",
        "replace",
        "cordon",
        "uncordon",
        "exec",
    }
)

_CONTROL_KINDS: dict[str, tuple[Guard, str, str]] = {
    **{
        k: ("cluster_control", "RBAC objects decide who may do what in the cluster", "ask an operator to change RBAC")
        for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
    **{
        k: (
            "cluster_control",
            "admission webhooks and policies see or change every request to the API server",
            "report the admission problem to an operator",
        )
        for k in (
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
        )
    },
    "CustomResourceDefinition": (
        "cluster_control",
        "a CRD defines an API for the whole cluster, and deleting one deletes every object of it",
        "report the API problem to an operator",
    ),
    "APIService": ("cluster_control", "an APIService reroutes a whole API group", "report it to an operator"),
    "Secret": (
        "secrets",
        "a Secret's undo needs its pre-image in the journal, and Stratus never stores Secret values",
        "point the workload at the right Secret (env valueFrom, a volume) with a patch of the workload instead",
    ),
    "ServiceAccount": (
        "service_account",
        "a ServiceAccount is the identity pods act as in the cluster",
        "fix the workload without changing identities, or ask an operator",
    ),
}
"""Kinds refused outright (whatever the grants say), the guard, why, and what to do instead."""

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
"""The ConfigMap the controller manager's root-CA publisher keeps in every namespace (the API server's CA bundle),
which every projected ServiceAccount token volume mounts."""

_FEATURE_GUARDS = (
    "privileged",
    "capabilities",
    "host_namespaces",
    "host_path",
    "exposure",
    "secrets",
    "service_account",
)

SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
"""The sysctls the kubelet calls safe (namespaced, isolated per pod); the Pod Security Standards' baseline allows only
these. Any other (kernel.core_pattern, net.ipv4.ip_forward...) reaches the node or its network."""
CONTAINER_SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
"""SELinux types a container may run as under the baseline standard; any other label (spc_t) lifts confinement."""
_CLUSTER_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "secret",
        "emptyDir",
        "downwardAPI",
        "projected",
        "persistentVolumeClaim",
        "ephemeral",
        "csi",
        "image",
    }
)
"""Volume sources whose content the cluster's API controls (the restricted standard's list, plus image volumes).
Any other (hostPath, nfs, iscsi, gitRepo, flexVolume, rbd...) is mounted by the node itself from a place no object
of the cluster records: a host directory, a remote server, a driver binary, a git hook run as root."""
_PROFILE_ANNOTATIONS = frozenset(
    {
        "container.apparmor.security.beta.kubernetes.io",
        "seccomp.security.alpha.kubernetes.io",
        "container.seccomp.security.alpha.kubernetes.io",
    }
)
"""Annotation prefixes that set AppArmor/seccomp profiles (before the securityContext fields existed)."""


class Grant(BaseModel):
    """Kinds and verbs a scope may write: every (kind, verb) pair of the two lists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[str] = Field(description="Kinds (Deployment, deploy, ...) or '*' for every kind.")
    verbs: list[str] = Field(description="Write verbs (patch, scale, set_image, delete, exec, ...) or '*'.")

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        out = []
        for kind in value:
            try:
                out.append(kind if kind == "*" else resolve_kind(kind))
            except ValueError:
                out.append(kind)  # a kind Stratus does not serve: harmless, it never matches an action
        return out

    @field_validator("verbs")
    @classmethod
    def _verbs(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v != "*" and v not in WRITE_VERBS]
        if unknown:
            raise ValueError(f"unknown write verbs {unknown}; known: {sorted(WRITE_VERBS)}")
        return value

    def allows(self, kind: str, verb: str) -> bool:
        return ("*" in self.kinds or kind in self.kinds) and ("*" in self.verbs or verb in self.verbs)


class ScopeRules(BaseModel):
    """What writes one scope (a namespace, or ``cluster`` for cluster-scoped objects) may receive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grants: list[Grant] = Field(default_factory=list, description="Kinds and verbs that may be written.")
    allowed_registries: list[str] = Field(
        default_factory=list,
        description="Registries (docker.io, ghcr.io) or registry paths (ghcr.io/acme) new images may come from, "
        "besides the repositories the object runs or ran (another tag of those is always allowed).",
    )
    max_replicas: int = Field(
        default=10,
        ge=0,
        description="No write may set replicas (a Job's parallelism or completions, an autoscaler's bounds) above "
        "this (or above the current value if higher).",
    )
    waive: list[Guard] = Field(default_factory=list, description="Guards this scope turns off, by name.")

    @field_validator("allowed_registries")
    @classmethod
    def _registries(cls, value: list[str]) -> list[str]:
        return [_normalise_registry_entry(v) for v in value]


_WORKLOADS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]
_TEMPLATE_VERBS = ["patch", "scale", "set_image", "set_env", "rollout_restart", "rollout_undo"]
_OBJECT_VERBS = ["patch", "apply", "create", "replace", "delete"]

DEFAULT_SCOPES: dict[str, ScopeRules] = {
    "*": ScopeRules(
        grants=[
            Grant(kinds=_WORKLOADS, verbs=[*_TEMPLATE_VERBS, *_OBJECT_VERBS]),
            Grant(kinds=["Pod"], verbs=["delete", "exec"]),
            Grant(
                kinds=[
                    "Service",
                    "ConfigMap",
                    "NetworkPolicy",
                    "PersistentVolumeClaim",
                    "Job",
                    "CronJob",
                    "ResourceQuota",
                    "LimitRange",
                ],
                verbs=_OBJECT_VERBS,
            ),
        ]
    ),
    CLUSTER_SCOPE: ScopeRules(
        grants=[
            Grant(kinds=["Node"], verbs=["cordon", "uncordon", "patch"]),
            Grant(kinds=["PersistentVolume"], verbs=["patch"]),
            Grant(kinds=["StorageClass"], verbs=["create", "apply"]),
        ]
    ),
}
"""The built-in rules: workloads and their configuration (quotas and limit ranges included) in any non-system
namespace; node scheduling, volume binding and storage classes at cluster scope."""


class PolicyRefusal(Refusal):
    """A write the policy refuses; ``guard`` names the rule (or ``grant`` when the kind/verb is not granted)."""

    def __init__(self, message: str, guard: str) -> None:
        super().__init__(message, rule="write_policy")
        self.guard = guard


class WritePolicy(BaseModel):
    """Per-scope rules; ``scopes`` entries replace the built-in entry of the same key (``*``, ``cluster``, a name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scopes: dict[str, ScopeRules] = Field(
        default_factory=lambda: dict(DEFAULT_SCOPES),
        description="Scope name -> rules. '*' applies to every namespace without its own entry (never to "
        "kube-system, kube-public, kube-node-lease); 'cluster' to cluster-scoped objects.",
    )

    @field_validator("scopes", mode="after")
    @classmethod
    def _over_defaults(cls, value: dict[str, ScopeRules]) -> dict[str, ScopeRules]:
        return {**DEFAULT_SCOPES, **value}

    @classmethod
    def parse(cls, text: str | None) -> WritePolicy:
        """The policy from JSON or YAML text, or from the file it names; the built-in policy when empty."""
        return _parse(text or "")

    @classmethod
    def configured(cls) -> WritePolicy:
        """The policy of this process's settings (``STRATUS_WRITE_POLICY``)."""
        return cls.parse(WritePolicySettings().write_policy)

    def rules_for(self, scope: str) -> ScopeRules | None:
        if scope in self.scopes:
            return self.scopes[scope]
        if scope == CLUSTER_SCOPE or scope in SYSTEM_NAMESPACES:
            return None
        return self.scopes.get("*")

    def grants(self, scope: str, kind: str, verb: str) -> bool:
        """Whether ``scope`` may receive ``verb`` on ``kind`` at all: the test for widening a lease to ``scope``
        (never to a system namespace or a scope the policy gives no grant)."""
        rules = self.rules_for(scope)
        return rules is not None and any(g.allows(kind, verb) for g in rules.grants)

    def operator_grant(self, scope: str, kind: str, verb: str) -> str:
        """What an operator must add to this policy for ``verb`` on ``kind`` in ``scope`` to be allowed at all ('' when
        nothing): the grant, and the guard to waive for a kind refused outright. Said in a diagnosis whose fix needs
        it, so that the operator knows what to grant rather than that something was refused."""
        rules = self.rules_for(scope)
        needs = []
        if not self.grants(scope, kind, verb):
            needs.append(f"a grant of '{verb}' on {kind} in scope '{scope}'")
        control = _CONTROL_KINDS.get(kind)
        if control is not None and control[0] not in (rules.waive if rules else []):
            needs.append(f"a waiver of the '{control[0]}' guard there ({control[1]})")
        return " and ".join(needs)

    def check(
        self,
        action: Action,
        pre: Obj | None,
        after: Any,
        ran_before: Collection[str] = (),
        programs_before: Collection[Program] = (),
    ) -> None:
        """Raise ``PolicyRefusal`` unless ``action`` may turn ``pre`` (None: absent) into ``after`` (the dry run's
        result): ``check_request`` and then ``check_result``."""
        self.check_request(action)
        self.check_result(action, pre, after, ran_before, programs_before)

    def check_request(self, action: Action) -> None:
        """The rules the action alone decides (kind, verb and scope: control kinds, volume deletion, the grants).
        The gateway applies them before it reads, journals or sends anything. Exec is judged on these only: its
        command is the exec catalogue's business."""
        verb, kind, scope = action.verb, action.kind, action.scope
        waived = self._waived(scope)
        refuse = _refuser(action)
        kinds = {kind, *(_manifest_kind(action),)} - {None}
        for k in sorted(str(k) for k in kinds):
            if k in _CONTROL_KINDS and _CONTROL_KINDS[k][0] not in waived:
                guard, why, instead = _CONTROL_KINDS[k]
                raise refuse(
                    guard, f"{k} objects are never written by Stratus: {why}", f"{instead[0].upper()}{instead[1:]}."
                )
        if "ConfigMap" in kinds and action.name == ROOT_CA_CONFIGMAP and "cluster_control" not in waived:
            raise refuse(
                "cluster_control",
                f"ConfigMap {ROOT_CA_CONFIGMAP} is the API server's CA bundle, which the controller manager publishes "
                "into every namespace and every pod with a ServiceAccount token trusts",
                "Leave it to the controller manager; fix what fails to trust the API server elsewhere.",
            )
        volumes = ("PersistentVolumeClaim", "PersistentVolume")
        if isinstance(action, Delete) and kind in volumes and "data_destruction" not in waived:
            raise refuse(
                "data_destruction",
                f"deleting a {kind} can destroy the data on its volume, and no undo brings data back",
                "Fix what uses the volume (the pod, its claim's spec or binding) and leave the volume in place.",
            )
        if not self.grants(scope, kind, verb):
            raise refuse(
                "grant",
                f"the policy grants no '{verb}' on {kind} in scope '{scope}'",
                "Use a write the scope's grants allow (for a workload: patch, scale, set image/env, rollout), or "
                "report that the fix needs this write so an operator can grant it.",
            )

    def check_result(
        self,
        action: Action,
        pre: Obj | None,
        after: Any,
        ran_before: Collection[str] = (),
        programs_before: Collection[Program] = (),
        consumers: Iterable[Obj] = (),
        recorded: Obj | None = None,
        features_before: Collection[str] = (),
        policies: Iterable[Obj] = (),
    ) -> None:
        """The rules judged on what the write would do: ``after`` (the server's dry-run result) against ``pre``.
        ``ran_before``: images the object's own revisions ran (``history_images``) or Stratus recorded for it while
        healthy (``recorded_images``); their repositories count as the object's own. ``programs_before``: the
        programs they ran (``history_programs``). For a ConfigMap: ``consumers``, the pods and pod-template holders
        of its namespace (whose programs may read its content, ``configmap_code``), and ``recorded``, the ConfigMap
        as Stratus recorded it while the scope was healthy (its content may be put back). ``features_before``: the
        pod-template features (``object_features``) the object's revisions had or Stratus recorded for it: putting
        one back is no escalation (a rollback restores what the workload had). For a NetworkPolicy: ``consumers``
        again, and ``policies``, the namespace's NetworkPolicies (``newly_isolated``)."""
        if isinstance(action, (Delete, Exec)):
            return
        kind = action.kind
        rules = self.rules_for(action.scope) or ScopeRules()
        waived = set(rules.waive)
        refuse = _refuser(action)
        if not isinstance(after, dict) or after.get("kind") not in (None, kind) or "metadata" not in after:
            raise refuse(
                "dry_run",
                "the server's dry run returned no object to judge the write by",
                "Retry the write; if it keeps failing, report it.",
            )
        meta = after["metadata"] if isinstance(after["metadata"], dict) else {}
        if meta.get("name") not in (None, action.name) or meta.get("namespace") not in (None, action.namespace):
            raise refuse(
                "dry_run",
                f"the server's dry run answered for {meta.get('namespace') or '-'}/{meta.get('name')}, not for the "
                "object the write names; a write acts only on the object it names (a patch never renames or moves one)",
                "Leave metadata.name and metadata.namespace out of the patch; create the object you want instead.",
            )
        history = frozenset(ran_before), frozenset(programs_before), frozenset(features_before)
        found = _violations(kind, pre, after, action, rules, history)
        if kind == "ConfigMap":
            found = itertools.chain(found, _content_violations(pre, after, consumers, recorded))
        if kind == "NetworkPolicy":
            found = itertools.chain(found, _isolation_violations(pre, after, consumers, policies))
        for name, why, instead in found:
            if name not in waived:
                raise refuse(name, why, instead)

    def check_delete(self, action: Action, pre: Obj | None, consumers: Iterable[Obj]) -> None:
        """Refuse deleting a ConfigMap that a pod or pod template of ``consumers`` (the namespace's pods and pod
        templates) needs to start (a volume, an env reference or envFrom, not marked optional): every such pod that
        starts after it (a restart, a reschedule, a rollout, the undo's own) fails until it is back; and deleting a
        Service (``pre``) whose selector matches running pods: their traffic stops."""
        waived = self._waived(action.scope)
        for guard, why, instead in _delete_violations(action, pre, consumers):
            if guard not in waived:
                raise _refuser(action)(guard, why, instead)

    def _waived(self, scope: str) -> set[str]:
        return set((self.rules_for(scope) or ScopeRules()).waive)


def _refuser(action: Action) -> Callable[[str, str, str], PolicyRefusal]:
    """A ``PolicyRefusal`` factory for ``action``: the guard, why, and what to do instead."""

    def refuse(guard: str, why: str, instead: str) -> PolicyRefusal:
        return PolicyRefusal(
            f"Write operation '{action.verb}' on {action.target} refused by the write policy ({guard}): {why}. "
            f"Instead: {instead}",
            guard,
        )

    return refuse


def _manifest_kind(action: Action) -> str | None:
    manifest = vars(action).get("manifest")  # a getattr miss is slow on a pydantic model
    if isinstance(manifest, dict) and isinstance(manifest.get("kind"), str):
        return str(manifest["kind"])
    return None


@lru_cache(maxsize=8)
def _parse(text: str) -> WritePolicy:
    source = text.strip()
    if source and not source.startswith(("{", "[")) and "\n" not in source and Path(source).is_file():
        source = Path(source).read_text()[:1_000_000]
    if not source:
        return WritePolicy()
    data = yaml.safe_load(source)
    return WritePolicy.model_validate(data or {})


# --- what a write introduces ------------------------------------------------------------------------------------


def pod_specs(obj: Obj | None) -> dict[str, Obj]:
    """Every pod spec in an object (a Pod's spec, a workload's template, a CronJob's job template), by path."""
    out: dict[str, Obj] = {}

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > 8:
            return
        if isinstance(node.get("containers"), list):
            out[path or "/"] = node
            return
        for key, value in node.items():
            if key in ("spec", "template", "jobTemplate"):
                walk(value, f"{path}/{key}", depth + 1)

    if obj is not None:
        walk(obj.get("spec"), "/spec", 0)
    return out


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def _features(spec: Obj) -> dict[str, set[str]]:
    """The privilege-relevant features of one pod spec, by guard."""
    out: dict[str, set[str]] = {g: set() for g in _FEATURE_GUARDS}
    for flag in ("hostPID", "hostIPC", "hostNetwork"):
        if spec.get(flag) is True:
            out["host_namespaces"].add(flag)
    if spec.get("hostUsers") is False:
        out["host_namespaces"].add("hostUsers: false")
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict) and isinstance(vol.get("hostPath"), dict):
            out["host_path"].add(f"hostPath {vol['hostPath'].get('path')!r}")
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            for source in sorted(set(vol) - _CLUSTER_VOLUME_SOURCES - {"name", "hostPath"}):
                out["host_path"].add(
                    f"the {source} volume {vol.get('name')!r}, which the node mounts itself from outside the cluster"
                )
    secret_volumes = _secret_volumes(spec)
    if spec.get("shareProcessNamespace") is True:
        out["privileged"].add("one process namespace for the pod's containers (each can read the others' memory)")
    for vol in spec.get("volumes") or []:
        projected = vol.get("projected") if isinstance(vol, dict) else None
        for sub in (projected or {}).get("sources") or [] if isinstance(projected, dict) else []:
            token = sub.get("serviceAccountToken") if isinstance(sub, dict) else None
            if isinstance(token, dict):
                out["service_account"].add(
                    f"a ServiceAccount token for audience {token.get('audience')!r} in volume {vol.get('name')!r}"
                )
    if spec.get("runtimeClassName"):
        out["privileged"].add(f"the runtime class {spec.get('runtimeClassName')!r} (another container runtime)")
    for alias in spec.get("hostAliases") or []:
        if isinstance(alias, dict):
            for host in alias.get("hostnames") or []:
                out["exposure"].add(f"a host alias sending {host!r} to {alias.get('ip')!r}")
    dns = spec.get("dnsConfig") if isinstance(spec.get("dnsConfig"), dict) else {}
    for server in (dns or {}).get("nameservers") or []:
        out["exposure"].add(f"the DNS server {server!r} for every name the pod looks up")
    pod_sc = spec.get("securityContext") or {}
    if isinstance(pod_sc, dict):
        for field in ("runAsUser", "runAsGroup", "fsGroup"):
            if pod_sc.get(field) == 0 and not isinstance(pod_sc.get(field), bool):
                out["privileged"].add(f"root ({field} 0) for the pod")
        if 0 in (pod_sc.get("supplementalGroups") or []):
            out["privileged"].add("root (supplementalGroups 0) for the pod")
        if _unconfined(pod_sc):
            out["privileged"].add("an unconfined seccomp/AppArmor profile for the pod")
        for sysctl in pod_sc.get("sysctls") or []:
            sysctl_name = sysctl.get("name") if isinstance(sysctl, dict) else sysctl
            if sysctl_name not in SAFE_SYSCTLS:
                out["privileged"].add(f"the sysctl {sysctl_name!r}, outside the namespaced safe set")
        _context_features(pod_sc, "the pod", out)
    for c in _containers(spec):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if not isinstance(sc, dict):
            sc = {}
        _context_features(sc, f"container {name!r}", out)
        if sc.get("privileged") is True:
            out["privileged"].add(f"privileged container {name!r}")
        if sc.get("allowPrivilegeEscalation") is True:
            out["privileged"].add(f"allowPrivilegeEscalation in container {name!r}")
        if sc.get("procMount") == "Unmasked":
            out["privileged"].add(f"an unmasked /proc in container {name!r}")
        if _unconfined(sc):
            out["privileged"].add(f"an unconfined seccomp/AppArmor profile in container {name!r}")
        caps = (sc.get("capabilities") or {}) if isinstance(sc.get("capabilities"), dict) else {}
        for cap in caps.get("add") or []:
            out["capabilities"].add(f"capability {str(cap).upper()} in container {name!r}")
        for env in c.get("env") or []:
            # The dynamic linker reads every LD_* variable (ld.so(8)): LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH make
            # the process load code its image does not run, which is as much a privilege change as a new image; the
            # language runtimes and shells read their own (``CODE_LOADING_ENV``). Their value is part of the feature.
            var = str(env.get("name", "")) if isinstance(env, dict) else ""
            if var.startswith("LD_") or var in CODE_LOADING_ENV:
                source = env.get("value") if "value" in env else json.dumps(env.get("valueFrom"), sort_keys=True)
                out["privileged"].add(f"the code-loading variable {var}={str(source)[:120]!r} in container {name!r}")
            if var.upper() in PROXY_ENV:
                source = env.get("value") if "value" in env else json.dumps(env.get("valueFrom"), sort_keys=True)
                out["exposure"].add(f"the proxy {var}={str(source)[:120]!r} for container {name!r}'s outbound traffic")
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") if isinstance(env, dict) else None
            if isinstance(ref, dict):
                out["secrets"].add(f"key {ref.get('key')!r} of Secret {ref.get('name')!r} as env {var} in {name!r}")
        for source in c.get("envFrom") or []:
            ref = source.get("secretRef") if isinstance(source, dict) else None
            if isinstance(ref, dict):
                out["secrets"].add(f"every key of Secret {ref.get('name')!r} as env (envFrom) in {name!r}")
        for mount in c.get("volumeMounts") or []:
            volume = secret_volumes.get(mount.get("name")) if isinstance(mount, dict) else None
            if volume:
                where = str(mount.get("mountPath")) + (f" (subPath {mount['subPath']})" if mount.get("subPath") else "")
                out["secrets"].add(f"Secret {volume} mounted at {where} in {name!r}")
        for field in ("runAsUser", "runAsGroup"):
            if sc.get(field) == 0 and not isinstance(sc.get(field), bool):
                out["privileged"].add(f"root ({field} 0) for container {name!r}")
        for where, handler in _handlers(c):
            for kind_ in ("httpGet", "tcpSocket"):
                target = handler.get(kind_) if isinstance(handler, dict) else None
                if isinstance(target, dict) and target.get("host"):
                    out["exposure"].add(
                        f"the kubelet connecting from the node to {target.get('host')!r} ({where} of {name!r})"
                    )
        for port in c.get("ports") or []:
            if isinstance(port, dict) and port.get("hostPort"):
                out["exposure"].add(f"hostPort {port.get('hostPort')} in container {name!r}")
    return out


CODE_LOADING_ENV = frozenset(
    {
        "NODE_OPTIONS",  # node: --require/--import load modules first
        "JAVA_TOOL_OPTIONS",  # every JVM: -javaagent
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "RUBYLIB",
        "BASH_ENV",  # bash sources it before a script
        "ENV",  # sh does, when interactive
        "DOTNET_STARTUP_HOOKS",
        "GCONV_PATH",  # glibc loads conversion modules from it
        "PATH",  # which file a command name runs
    }
)
"""Environment variables the language runtimes and shells read as code to load, or as where to find the programs a
command names: a new value runs code the image does not, as the dynamic linker's ``LD_*`` do."""


PROXY_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY"})
"""Variables (either case) that send a process's outbound traffic, credentials included, through another host (or,
``NO_PROXY``, past the one it had): a new value redirects traffic as a host alias or a DNS server does."""


def _secret_volumes(spec: Obj) -> dict[Any, str]:
    """The pod's volumes that carry Secrets (``secret``, or a ``projected`` source), by name, with the Secrets."""
    out: dict[Any, str] = {}
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        names = []
        if isinstance(vol.get("secret"), dict):
            names.append(str(vol["secret"].get("secretName")))
        projected = vol.get("projected") if isinstance(vol.get("projected"), dict) else {}
        for sub in (projected or {}).get("sources") or []:
            if isinstance(sub, dict) and isinstance(sub.get("secret"), dict):
                names.append(str(sub["secret"].get("name")))
        if names:
            out[vol.get("name")] = ", ".join(repr(n) for n in sorted(names))
    return out


def _handlers(container: Obj) -> Iterator[tuple[str, Obj]]:
    """(where, handler) of each probe and lifecycle hook of ``container``."""
    for path in _HANDLERS:
        handler: Any = container
        for key in path:
            handler = handler.get(key) if isinstance(handler, dict) else None
        if isinstance(handler, dict):
            yield ".".join(path), handler


def _hardening_gaps(spec: Obj, container: Obj, out: dict[str, set[str]]) -> None:
    """The restricted-profile protections ``container`` runs without, as features (``privileged``). A write that
    removes one an existing container had (runAsNonRoot, a read-only root filesystem, no privilege escalation, all
    capabilities dropped, a seccomp profile) adds the gap, which is refused as any escalation is, unless the workload
    ran so before (its history, its last-known-good record). A new container or object is judged by what it adds,
    not by the protections it lacks (``_gap_violations``)."""
    pod_sc = spec.get("securityContext") if isinstance(spec.get("securityContext"), dict) else {}
    sc = container.get("securityContext") if isinstance(container.get("securityContext"), dict) else {}
    pod_sc, sc = pod_sc or {}, sc or {}
    name = container.get("name")

    def effective(field: str) -> Any:
        return sc.get(field) if field in sc else pod_sc.get(field)

    if effective("runAsNonRoot") is not True:
        out["privileged"].add(f"container {name!r} without runAsNonRoot")
    if sc.get("readOnlyRootFilesystem") is not True:
        out["privileged"].add(f"container {name!r} with a writable root filesystem")
    if sc.get("allowPrivilegeEscalation") is not False:
        out["privileged"].add(f"container {name!r} without allowPrivilegeEscalation: false")
    caps = sc.get("capabilities") if isinstance(sc.get("capabilities"), dict) else {}
    if "ALL" not in {str(c).upper() for c in (caps or {}).get("drop") or []}:
        out["privileged"].add(f"container {name!r} keeping its default capabilities (no drop ALL)")
    seccomp = effective("seccompProfile")
    if not isinstance(seccomp, dict) or seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        out["privileged"].add(f"container {name!r} without a seccomp profile")
    elif seccomp.get("type") == "Localhost":
        out["privileged"].add(f"the node's seccomp profile {seccomp.get('localhostProfile')!r} for {name!r}")


def _context_features(sc: Obj, who: str, out: dict[str, set[str]]) -> None:
    """Features a pod's or a container's securityContext shares: Windows HostProcess and SELinux labels."""
    windows = sc.get("windowsOptions")
    if isinstance(windows, dict) and windows.get("hostProcess") is True:
        out["host_namespaces"].add(f"a Windows HostProcess for {who}, which runs on the host")
    selinux = sc.get("seLinuxOptions")
    if isinstance(selinux, dict):
        if selinux.get("type") not in (None, "", *CONTAINER_SELINUX_TYPES):
            out["privileged"].add(f"the SELinux type {selinux.get('type')!r} for {who}")
        for field in ("user", "role"):
            if selinux.get(field):
                out["privileged"].add(f"the SELinux {field} {selinux.get(field)!r} for {who}")


def _annotation_features(meta: Obj | None) -> dict[str, set[str]]:
    """Profiles a pod template's annotations turn off (the annotations that preceded the securityContext fields,
    which kubelets still honour)."""
    out: dict[str, set[str]] = {g: set() for g in _FEATURE_GUARDS}
    annotations = (meta or {}).get("annotations") if isinstance(meta, dict) else None
    for key, value in (annotations or {}).items() if isinstance(annotations, dict) else ():
        prefix = str(key).partition("/")[0]
        if prefix in _PROFILE_ANNOTATIONS and str(value).lower() in ("unconfined", "runtime/default:unconfined"):
            out["privileged"].add(f"the annotation {key}: {value}")
    return out


def _template_meta(obj: Obj | None, path: str) -> Obj | None:
    """The metadata beside the pod spec at ``path`` (the template's, or the Pod's own)."""
    node: Any = obj
    for part in [p for p in path.split("/") if p][:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    meta = node.get("metadata") if isinstance(node, dict) else None
    return meta if isinstance(meta, dict) else None


def _unconfined(sc: Obj) -> bool:
    seccomp = sc.get("seccompProfile") or {}
    apparmor = sc.get("appArmorProfile") or {}
    return (isinstance(seccomp, dict) and seccomp.get("type") == "Unconfined") or (
        isinstance(apparmor, dict) and apparmor.get("type") == "Unconfined"
    )


def _service_account(spec: Obj | None) -> tuple[frozenset[str], bool]:
    """The identities a pod spec names (serviceAccountName and the deprecated serviceAccount) and token mounting."""
    if spec is None:
        return frozenset({"default"}), True
    names = frozenset(str(spec[k]) for k in ("serviceAccountName", "serviceAccount") if spec.get(k)) or frozenset(
        {"default"}
    )
    return names, spec.get("automountServiceAccountToken") is not False or _projects_token(spec)


def _projects_token(spec: Obj) -> bool:
    """Whether a projected volume mounts a ServiceAccount token (whatever automountServiceAccountToken says)."""
    for vol in spec.get("volumes") or []:
        projected = vol.get("projected") if isinstance(vol, dict) else None
        sources = projected.get("sources") if isinstance(projected, dict) else None
        if any(isinstance(src, dict) and "serviceAccountToken" in src for src in sources or []):
            return True
    return False


def _images(spec: Obj) -> set[str]:
    return {str(c.get("image")) for c in _containers(spec) if c.get("image") is not None}


_INSTEAD: dict[str, str] = {
    "privileged": "Fix the workload without raising its privileges; if it truly needs them, an operator must grant it.",
    "host_namespaces": "Fix the workload inside its own namespaces; host access needs an operator.",
    "host_path": "Use a PersistentVolumeClaim, a ConfigMap or an emptyDir instead of a host directory.",
    "capabilities": "Fix the workload without adding Linux capabilities; an operator can grant one if needed.",
    "exposure": "Keep the Service internal (ClusterIP) and the pods' name resolution the cluster's; fix the path "
    "inside the cluster.",
    "service_account": "Keep the workload's identity and the tokens it mounts.",
    "secrets": "Keep the credentials the workload has; giving it a Secret (env, envFrom, a mount) is its owner's "
    "decision.",
}


REVISION_KINDS: dict[str, str] = {
    "Deployment": "ReplicaSet",
    "StatefulSet": "ControllerRevision",
    "DaemonSet": "ControllerRevision",
}
"""The kind that holds each workload kind's revision history."""


def introduced_images(pre: Obj | None, after: Any) -> set[str]:
    """Images ``after``'s pod specs run that ``pre``'s do not (what the registry guard judges)."""
    if not isinstance(after, dict):
        return set()
    old = {img for spec in pod_specs(pre).values() for img in _images(spec)}
    return {img for spec in pod_specs(after).values() for img in _images(spec)} - old


def _revision_bodies(owner: Obj, revisions: Iterable[Obj]) -> Iterator[Obj]:
    """The revisions of ``owner`` (as listed from the API): only those of the owner's revision kind, in its namespace,
    whose controller reference carries the owner's uid; each as the object holding its pod template."""
    meta = owner.get("metadata") or {}
    uid, kind = meta.get("uid"), REVISION_KINDS.get(str(owner.get("kind")))
    if not uid or kind is None:
        return
    for rev in revisions:
        rmeta = rev.get("metadata") or {}
        if rev.get("kind") not in (kind, None) or rmeta.get("namespace") != meta.get("namespace"):
            continue
        refs = rmeta.get("ownerReferences") or []
        if not any(isinstance(r, dict) and r.get("controller") is True and r.get("uid") == uid for r in refs):
            continue
        # a ControllerRevision keeps the template as a patch under data (apps/v1 ControllerRevision.data)
        body = rev.get("data") if kind == "ControllerRevision" else rev
        if isinstance(body, dict):
            yield body


def object_features(obj: Obj | None) -> set[str]:
    """Every privilege-relevant feature (``_features``, the template annotations') of every pod spec of ``obj``."""
    out: set[str] = set()
    for path, spec in pod_specs(obj).items():
        for found in (*_features(spec).values(), *_annotation_features(_template_meta(obj, path)).values()):
            out |= found
        out |= _gaps(spec)
    return out


def _gaps(spec: Obj) -> set[str]:
    found: dict[str, set[str]] = {"privileged": set()}
    for container in _containers(spec):
        _hardening_gaps(spec, container, found)
    return found["privileged"]


def _only(spec: Obj, names: set[Any]) -> Obj:
    """``spec`` with only the containers (of every list) named in ``names``."""
    lists = ("initContainers", "containers", "ephemeralContainers")
    kept = {k: [c for c in spec.get(k) or [] if isinstance(c, dict) and c.get("name") in names] for k in lists}
    return {**spec, **kept}


def _gap_violations(
    before_specs: dict[str, Obj], after_specs: dict[str, Obj], features_before: frozenset[str]
) -> Iterator[tuple[str, str, str]]:
    for path, spec in after_specs.items():
        old = before_specs.get(path)
        if old is None:
            continue
        names = {c.get("name") for c in _containers(old)} & {c.get("name") for c in _containers(spec)}
        new = _gaps(_only(spec, names)) - _gaps(_only(old, names)) - features_before
        if new:
            yield (
                "privileged",
                f"it would remove a protection: {', '.join(sorted(new))}",
                "Keep the container's security context (runAsNonRoot, a read-only root filesystem, no privilege "
                "escalation, dropped capabilities, its seccomp profile).",
            )


def introduced_features(pre: Obj | None, after: Any) -> set[str]:
    """Features ``after``'s pod specs have that ``pre``'s do not (judged against the history when any)."""
    return object_features(after) - object_features(pre) if isinstance(after, dict) else set()


def history_features(owner: Obj, revisions: Iterable[Obj]) -> set[str]:
    """Features the revisions of ``owner`` had (``_revision_bodies``)."""
    return {f for body in _revision_bodies(owner, revisions) for f in object_features(body)}


def recorded_features(obj: Obj | None, recorded: Mapping[str, Obj] | None) -> set[str]:
    """Features of the object Stratus recorded for ``obj`` while its scope was healthy (as ``recorded_programs``)."""
    return object_features(recorded_object(obj, recorded))


def history_images(owner: Obj, revisions: Iterable[Obj]) -> set[str]:
    """Images the revisions of ``owner`` ran (``_revision_bodies``)."""
    return {
        img for body in _revision_bodies(owner, revisions) for spec in pod_specs(body).values() for img in _images(spec)
    }


Program = tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]
"""What the kubelet runs in a container: its command, its args, and the env entries the ``$(VAR)`` references in
them expand to."""

_EXPANSION = re.compile(r"\$\$|\$\(([^)]*)\)")
"""The kubelet's expansion syntax in command/args: ``$$`` is a literal ``$``, ``$(NAME)`` the variable's value."""


_SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "busybox"})
"""Programs that run their ``-c`` argument as a POSIX shell script (``busybox sh``: the applet's first word)."""
_SHELL_PARAMETER = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{#?([A-Za-z_][A-Za-z0-9_]*))")
"""A shell parameter expansion of a variable: ``$NAME``, ``${NAME}``, ``${NAME:-x}``, ``${#NAME}``."""


def program_of(container: Obj) -> Program | None:
    """The program ``container`` runs, or None when it sets neither command nor args (the image's own entrypoint).

    A ``$(NAME)`` in command or args is expanded by the kubelet from the container's env, and a POSIX shell run with
    ``-c`` expands ``$NAME``/``${NAME}`` in its script from the same env: the env entries such references resolve to
    (their value or valueFrom, else the envFrom sources) are part of the program."""
    words: list[tuple[str, ...]] = []
    for field in ("command", "args"):
        value = container.get(field)
        if isinstance(value, list):
            words.append(tuple(str(w) for w in value))
        else:
            words.append(() if value in (None, "") else (str(value),))
    command, args = words
    if not command and not args:
        return None
    names = {m.group(1) for w in (*command, *args) for m in _EXPANSION.finditer(w) if m.group(1) is not None}
    argv = [*command, *args]
    if argv and argv[0].rsplit("/", 1)[-1] in _SHELLS and "-c" in argv[1:]:
        script = argv[argv.index("-c", 1) + 1 :][:1]
        names |= {m.group(1) or m.group(2) for w in script for m in _SHELL_PARAMETER.finditer(w)}
    env = [e for e in container.get("env") or [] if isinstance(e, dict)]
    bindings = []
    for name in sorted(names):
        entries = [e for e in env if e.get("name") == name]
        source = entries or [{"envFrom": container.get("envFrom")}]
        bindings.append((name, json.dumps(source, sort_keys=True, default=str)))
    return command, args, tuple(bindings)


_HANDLERS = (
    ("lifecycle", "postStart"),
    ("lifecycle", "preStop"),
    ("livenessProbe",),
    ("readinessProbe",),
    ("startupProbe",),
)
"""Where a container holds exec handlers: commands the kubelet itself runs in the container (hooks and probes)."""


def _executable(source: Any) -> bool:
    """Whether a configMap/secret/projected/downwardAPI volume source gives any file an execute bit (defaultMode or an
    item's mode; the default, 0644, gives none)."""
    if not isinstance(source, dict):
        return False
    modes = [source.get("defaultMode")]
    for item in source.get("items") or []:
        modes.append(item.get("mode") if isinstance(item, dict) else None)
    for sub in source.get("sources") or []:  # projected
        for part in (sub or {}).values() if isinstance(sub, dict) else ():
            if _executable(part):
                return True
    return any(isinstance(m, int) and not isinstance(m, bool) and m & 0o111 for m in modes)


START_SCRIPT_DIRS = frozenset({"/docker-entrypoint-initdb.d"})
"""Directories whose every file the official images' entrypoints run at start, whatever its mode: the databases'
init scripts (postgres, mysql, mariadb and mongo run or source ``*.sh`` and run ``*.sql``/``*.js`` there; the
data-plane catalogue reads a user's roles from them). Content mounted there is code. (nginx's ``/docker-entrypoint.d``
runs only files with an execute bit, which ``_executable`` covers.)"""


def _runs_mounted(mount: Obj) -> bool:
    """Whether files mounted by ``mount`` land in a start-script directory (the directory itself, or a file in it
    through subPath)."""
    path = posixpath.normpath(str(mount.get("mountPath") or "/"))
    return path in START_SCRIPT_DIRS or (bool(mount.get("subPath")) and posixpath.dirname(path) in START_SCRIPT_DIRS)


def _mounted_executables(spec: Obj, container: Obj) -> Iterator[tuple[str, Program]]:
    """Executable files ``container`` mounts from the cluster's objects: content the image's own entrypoint or a
    directory of start scripts (``START_SCRIPT_DIRS``) may run, so a new one is a program as a new command is."""
    volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) if isinstance(mount, dict) else None
        if not isinstance(volume, dict):
            continue
        for kind in ("configMap", "secret", "projected", "downwardAPI"):
            if volume.get(kind) is not None and (_executable(volume.get(kind)) or _runs_mounted(mount)):
                where = str(mount.get("mountPath")) + (f" (subPath {mount['subPath']})" if mount.get("subPath") else "")
                source = json.dumps({kind: volume[kind]}, sort_keys=True, default=str)
                yield f"executable files mounted at {where}", (("mount", where), (source,), ())


def container_programs(container: Obj, spec: Obj | None = None) -> Iterator[tuple[str, Program]]:
    """Every program the kubelet runs in ``container``, with where it is set: its command/args (``program_of``), the
    exec command of each lifecycle hook and probe (an argv as free as a command), and, given its pod ``spec``, the
    executable files it mounts (``_mounted_executables``)."""
    if spec is not None:
        yield from _mounted_executables(spec, container)
    main = program_of(container)
    if main is not None:
        yield "command/args", main
    workdir = container.get("workingDir")
    if workdir not in (None, ""):
        # a relative command or entrypoint (./start.sh) runs whatever file the working directory holds
        yield "workingDir", (("workingDir",), (str(workdir),), ())
    for path in _HANDLERS:
        handler: Any = container
        for key in path:
            handler = handler.get(key) if isinstance(handler, dict) else None
        run = handler.get("exec") if isinstance(handler, dict) else None
        argv = run.get("command") if isinstance(run, dict) else None
        if isinstance(argv, list) and argv:
            yield f"{'.'.join(path)}.exec", (tuple(str(w) for w in argv), (), ())


def _programs(obj: Obj | None) -> set[Program]:
    return {p for spec in pod_specs(obj).values() for c in _containers(spec) for _, p in container_programs(c, spec)}


def recorded_object(obj: Obj | None, recorded: Mapping[str, Obj] | None) -> Obj | None:
    """The object Stratus recorded under ``obj``'s kind, namespace and name while its scope was healthy."""
    if not obj or not recorded:
        return None
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    key = f"{obj.get('kind')}/{ns}/{meta.get('name')}" if ns else f"{obj.get('kind')}/{meta.get('name')}"
    snap = recorded.get(key)
    return snap if isinstance(snap, dict) else None


def recorded_programs(obj: Obj | None, recorded: Mapping[str, Obj] | None) -> set[Program]:
    """Programs of the object Stratus recorded for ``obj``'s kind, namespace and name while its scope was healthy
    (``recorded``: the last-known-good snapshot's objects, keyed ``Kind/namespace/name``; ``stratus.lastgood``).
    Only the detector writes that memory, from the cluster while it was healthy; no write of an agent reaches it."""
    snap = recorded_object(obj, recorded)
    return _programs(snap) if snap is not None else set()


def recorded_images(obj: Obj | None, recorded: Mapping[str, Obj] | None) -> set[str]:
    """Images of the object Stratus recorded for ``obj`` while its scope was healthy (as ``recorded_programs``)."""
    snap = recorded_object(obj, recorded)
    return {img for spec in pod_specs(snap).values() for img in _images(spec)} if snap is not None else set()


def history_programs(owner: Obj, revisions: Iterable[Obj]) -> set[Program]:
    """Programs the revisions of ``owner`` ran (``_revision_bodies``)."""
    return {p for body in _revision_bodies(owner, revisions) for p in _programs(body)}


def introduced_programs(pre: Obj | None, after: Any) -> set[Program]:
    """Programs ``after``'s containers run that no container of ``pre`` runs (what the program guard judges)."""
    if not isinstance(after, dict):
        return set()
    return _programs(after) - _programs(pre)


def configmap_code(name: str, consumers: Iterable[Obj]) -> dict[str, str]:
    """The keys of ConfigMap ``name`` that a pod of ``consumers`` (pods and pod-template holders of its namespace)
    runs as code, each with where; ``"*"`` stands for every key (a whole ConfigMap mounted).

    Content is code when a container gets it as a file with an execute bit (``_executable``) or in a start-script
    directory (``START_SCRIPT_DIRS``), or as the value of an env variable that its command, args or ``sh -c`` script
    expands (``program_of``: ``valueFrom.configMapKeyRef``, or ``envFrom`` with its prefix)."""
    code: dict[str, str] = {}
    for holder in consumers:
        meta = holder.get("metadata") or {}
        who = f"{holder.get('kind')}/{meta.get('name')}"
        for spec in pod_specs(holder).values():
            volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
            for container in _containers(spec):
                where = f"{who} container {container.get('name')!r}"
                for mount in container.get("volumeMounts") or []:
                    volume = volumes.get(mount.get("name")) if isinstance(mount, dict) else None
                    for source, executable in _configmap_sources(volume, name):
                        if executable or _runs_mounted(mount):
                            for key in _projected_keys(source):
                                code.setdefault(key, f"{where} runs it as a file at {mount.get('mountPath')}")
                for key in _env_keys(container, name):
                    code.setdefault(key, f"{where} expands it in its command (env)")
    return code


def newly_isolated(
    pre: Obj | None, after: Obj, consumers: Iterable[Obj], policies: Iterable[Obj]
) -> dict[str, list[str]]:
    """Pods and pod templates of ``consumers`` that NetworkPolicy ``after`` would isolate in a direction (Ingress,
    Egress) where no other policy of ``policies`` (the namespace's, ``pre`` excluded) isolated them, nor ``pre``
    itself: from then on only what some policy allows reaches them (or leaves them). A policy that only adds what
    isolated pods may receive or send isolates nobody new."""
    name = str((after.get("metadata") or {}).get("name"))
    others = [p for p in policies if str((p.get("metadata") or {}).get("name")) != name]
    if pre is not None:
        others.append(pre)
    out: dict[str, list[str]] = {}
    for direction in _policy_types(after):
        selector = _at(after, ("spec", "podSelector"))
        covering = [_at(p, ("spec", "podSelector")) for p in others if direction in _policy_types(p)]
        for who, labels in _pod_labels(consumers):
            if selector_matches(selector, labels) and not any(selector_matches(c, labels) for c in covering):
                out.setdefault(direction, []).append(who)
    return out


def _policy_types(policy: Obj) -> set[str]:
    """The directions a NetworkPolicy isolates: its policyTypes, or by default Ingress, plus Egress with egress
    rules (networking.k8s.io/v1)."""
    declared = _at(policy, ("spec", "policyTypes"))
    if isinstance(declared, list) and declared:
        return {str(t) for t in declared}
    return {"Ingress", "Egress"} if _at(policy, ("spec", "egress")) else {"Ingress"}


def _pod_labels(consumers: Iterable[Obj]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(who, labels) of every pod and every pod template of ``consumers``."""
    for holder in consumers:
        meta = holder.get("metadata") or {}
        who = f"{holder.get('kind')}/{meta.get('name')}"
        if holder.get("kind") == "Pod":
            labels = meta.get("labels")
            yield who, labels if isinstance(labels, dict) else {}
            continue
        for path in pod_specs(holder):
            labels = (_template_meta(holder, path) or {}).get("labels")
            yield who, labels if isinstance(labels, dict) else {}


def _delete_violations(action: Action, pre: Obj | None, consumers: Iterable[Obj]) -> Iterator[tuple[str, str, str]]:
    if not isinstance(action, Delete):
        return
    if action.kind == "Service" and (served := serving_pods(pre, consumers)):
        yield (
            "traffic",
            f"it routes traffic to {len(served)} running pod(s) ({', '.join(served[:3])}); deleting it drops every "
            "connection to them and its address, which a re-created Service need not get back",
            "Fix the Service (its ports, its selector) with a patch instead.",
        )
    if action.kind == "ConfigMap" and (users := configmap_users(action.name, consumers)):
        yield (
            "data_destruction",
            f"{', '.join(users[:5])}{' and more' if len(users) > 5 else ''} need it to start a pod: every pod that "
            "starts without it (a restart, a reschedule, a rollout) fails until it is back",
            "Fix the ConfigMap's content, or first change the workloads that use it.",
        )


def serving_pods(service: Obj | None, consumers: Iterable[Obj]) -> list[str]:
    """The running pods of ``consumers`` that Service ``service``'s selector matches (none without a selector)."""
    selector = _at(service, ("spec", "selector"))
    if not isinstance(selector, dict) or not selector:
        return []
    out = []
    for pod in consumers:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        phase = _at(pod, ("status", "phase"))
        running = pod.get("kind") == "Pod" and phase in (None, "Running", "Pending") and isinstance(labels, dict)
        if running and all(labels.get(k) == v for k, v in selector.items()):
            out.append(str(meta.get("name")))
    return out


def configmap_users(name: str, consumers: Iterable[Obj]) -> list[str]:
    """The pods and pod-template holders of ``consumers`` that cannot start a pod without ConfigMap ``name`` (a
    volume, an env reference, envFrom; ``optional: true`` ones can)."""
    users = []
    for holder in consumers:
        meta = holder.get("metadata") or {}
        for spec in pod_specs(holder).values():
            if _needs_configmap(spec, name):
                users.append(f"{holder.get('kind')}/{meta.get('name')}")
                break
    return users


def _needs_configmap(spec: Obj, name: str) -> bool:
    for volume in spec.get("volumes") or []:
        for source, _ in _configmap_sources(volume, name):
            if source.get("optional") is not True:
                return True
    for container in _containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef") if isinstance(env, dict) else None
            if isinstance(ref, dict) and ref.get("name") == name and ref.get("optional") is not True:
                return True
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") if isinstance(source, dict) else None
            if isinstance(ref, dict) and ref.get("name") == name and ref.get("optional") is not True:
                return True
    return False


def _configmap_sources(volume: Any, name: str) -> Iterator[tuple[Obj, bool]]:
    """The configMap sources of ``volume`` (direct or projected) that name ``name``, each with whether it gives a file
    an execute bit."""
    if not isinstance(volume, dict):
        return
    direct = volume.get("configMap")
    if isinstance(direct, dict) and direct.get("name") == name:
        yield direct, _executable(direct)
    projected = volume.get("projected")
    if isinstance(projected, dict):
        mode = projected.get("defaultMode")
        for sub in projected.get("sources") or []:
            part = sub.get("configMap") if isinstance(sub, dict) else None
            if isinstance(part, dict) and part.get("name") == name:
                yield part, _executable({**part, "defaultMode": mode})


def _projected_keys(source: Obj) -> list[str]:
    items = [i for i in source.get("items") or [] if isinstance(i, dict)]
    return [str(i.get("key")) for i in items] if items else ["*"]


def _env_keys(container: Obj, name: str) -> Iterator[str]:
    program = program_of(container)
    if program is None:
        return
    env = [e for e in container.get("env") or [] if isinstance(e, dict)]
    for var, _ in program[2]:
        entries = [e for e in env if e.get("name") == var]
        if entries:
            ref = (entries[-1].get("valueFrom") or {}).get("configMapKeyRef") or {}
            if isinstance(ref, dict) and ref.get("name") == name:
                yield str(ref.get("key"))
            continue
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") if isinstance(source, dict) else None
            prefix = str(source.get("prefix") or "") if isinstance(source, dict) else ""
            if isinstance(ref, dict) and ref.get("name") == name and var.startswith(prefix):
                yield var[len(prefix) :]


def _configmap_content(obj: Obj | None) -> dict[str, tuple[str, Any]]:
    if not isinstance(obj, dict):
        return {}
    out: dict[str, tuple[str, Any]] = {}
    for field in ("data", "binaryData"):
        values = obj.get(field)
        if isinstance(values, dict):
            out.update({str(k): (field, v) for k, v in values.items()})
    return out


def configmap_content_changed(pre: Obj | None, after: Any) -> bool:
    """Whether a ConfigMap write changes any key's content (``data`` or ``binaryData``; a new ConfigMap: any key)."""
    return isinstance(after, dict) and _configmap_content(pre) != _configmap_content(after)


def _isolation_violations(
    pre: Obj | None, after: Obj, consumers: Iterable[Obj], policies: Iterable[Obj]
) -> Iterator[tuple[str, str, str]]:
    for direction, who in sorted(newly_isolated(pre, after, list(consumers), policies).items()):
        yield (
            "limits",
            f"it would isolate {', '.join(sorted(set(who))[:5])} for {direction} traffic, which no policy isolated: "
            f"from then on only what some policy allows {'reaches' if direction == 'Ingress' else 'leaves'} them",
            "Remove or loosen the policy that blocks the traffic; a new policy may only add what already isolated "
            "pods may receive or send.",
        )


def _content_violations(
    pre: Obj | None, after: Obj, consumers: Iterable[Obj], recorded: Obj | None
) -> Iterator[tuple[str, str, str]]:
    before, now = _configmap_content(pre), _configmap_content(after)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if not changed:
        return
    name = str((after.get("metadata") or {}).get("name"))
    code = configmap_code(name, consumers)
    healthy = _configmap_content(recorded) if recorded is not None else None
    for key in changed:
        where = code.get(key) or code.get("*")
        if where is None or (healthy is not None and healthy.get(key) == now.get(key)):
            continue  # not code, or put back as it was while the scope was healthy
        yield (
            "program",
            f"key {key!r} of ConfigMap {name!r} is code: {where}; changing it changes what the pod runs, a free "
            "command as an exec would be",
            "Leave code content as it is (or as it was when the scope was healthy); fix the workload's settings "
            "instead, or report that the fix needs new code so an operator can ship it.",
        )


def _argv_text(program: Program) -> str:
    text = json.dumps([*program[0], *program[1]])
    return text if len(text) <= 200 else text[:200] + "...]"


def _program_violations(
    pre: Obj | None, after: Obj, programs_before: frozenset[Program]
) -> Iterator[tuple[str, str, str]]:
    ran = _programs(pre) | programs_before
    for spec in pod_specs(after).values():
        for container, (where, program) in ((c, wp) for c in _containers(spec) for wp in container_programs(c, spec)):
            if program in ran:
                continue
            name = f"{container.get('name')!r} ({where})"
            if program[0] == ("workingDir",):
                yield (
                    "program",
                    f"container {name} would run in the working directory {program[1][0][:200]!r}, where the workload "
                    "never ran; a relative command or entrypoint runs whatever file that directory holds",
                    "Keep the working directory the workload ran with (or remove workingDir so the image's own "
                    "applies).",
                )
                continue
            if program[0][:1] == ("mount",):
                yield (
                    "program",
                    f"container {name} would get files with an execute bit from {program[1][0][:160]}, which the "
                    "workload never mounted so; an image's entrypoint or start-script directory runs such files",
                    "Mount configuration without execute bits (defaultMode 0644), or keep the mounts the workload "
                    "ran with.",
                )
                continue
            if pre is None:
                yield (
                    "program",
                    f"the new object's container {name} would run {_argv_text(program)}: a command that no "
                    "revision of it ran, which the kubelet runs as given (a free command, as an exec would be)",
                    "Create it without command and args (the image's own entrypoint runs), or restore the workload "
                    "that ran this command from its history.",
                )
            else:
                expands = f" with the env it expands ({[b[0] for b in program[2]]})" if program[2] else ""
                yield (
                    "program",
                    f"container {name} would run {_argv_text(program)}{expands}, a command the workload never ran "
                    "(neither its pre-image nor its revision history has it); the kubelet would run it as given, "
                    "a free command as an exec would be",
                    "Put back a command the workload ran before (rollout undo to that revision, or the exact command "
                    "of its history), or remove command and args so that the image's own entrypoint runs.",
                )


def _violations(
    kind: str,
    pre: Obj | None,
    after: Obj,
    action: Action,
    rules: ScopeRules,
    history: tuple[frozenset[str], frozenset[Program], frozenset[str]],
) -> Iterator[tuple[str, str, str]]:
    ran_before, programs_before, features_before = history
    before_specs, after_specs = pod_specs(pre), pod_specs(after)
    pre_images = {img for spec in before_specs.values() for img in _images(spec)}
    ran_repositories = {loc for loc in map(image_location, pre_images | ran_before) if loc}
    for path, spec in after_specs.items():
        old = before_specs.get(path)
        old_features = _features(old) if old is not None else {g: set() for g in _FEATURE_GUARDS}
        old_notes = _annotation_features(_template_meta(pre, path)) if old is not None else {}
        new_notes = _annotation_features(_template_meta(after, path))
        for guard, found in _features(spec).items():
            new = sorted(
                (found | new_notes[guard]) - old_features[guard] - old_notes.get(guard, set()) - features_before
            )
            if new:
                yield guard, f"it would add {', '.join(new)}", _INSTEAD[guard]
        old_priority = (old or {}).get("priorityClassName") or None
        if (spec.get("priorityClassName") or None) not in (None, old_priority):
            yield (
                "priority",
                f"it would give the pods the PriorityClass {spec.get('priorityClassName')!r} "
                f"({'instead of ' + repr(old_priority) if old_priority else 'they had none'}); "
                "a higher priority lets the scheduler preempt (evict) pods of other namespaces to make room",
                "Keep the workload's priority; if it must be scheduled first, an operator can grant it.",
            )
        before_sa, after_sa = _service_account(old), _service_account(spec)
        if after_sa[0] != before_sa[0]:
            yield (
                "service_account",
                f"it would change the pod's ServiceAccount from {sorted(before_sa[0])} to {sorted(after_sa[0])} "
                "(serviceAccountName / serviceAccount)",
                "Keep the workload's identity; fix what it does instead.",
            )
        elif after_sa[1] and not before_sa[1]:
            yield (
                "service_account",
                "it would mount the ServiceAccount token into pods that had none",
                "Keep automountServiceAccountToken: false.",
            )
        for image in sorted(_images(spec) - pre_images):
            loc = image_location(image)
            if loc is None:
                yield "registry", f"{image!r} is not a valid image reference", "Use a well-formed image reference."
            elif not _image_allowed(loc, ran_repositories, rules.allowed_registries):
                ran = sorted(ran_repositories) or ["none"]
                allowed = sorted(rules.allowed_registries) or ["none"]
                yield (
                    "registry",
                    f"image {image!r} comes from repository {loc!r}, which the workload never ran (it runs or ran "
                    f"{ran[:6]}) and which the policy's allowed registries {allowed} do not cover; another "
                    "repository is another publisher's code, even on a registry the workload uses",
                    "Use a tag of a repository the workload runs, an image it ran before (its revision history or "
                    "its last known good state), or one from a registry the policy allows.",
                )
    yield from _gap_violations(before_specs, after_specs, features_before)
    yield from _program_violations(pre, after, programs_before)
    yield from _metadata_violations(pre, after, action)
    yield from _object_violations(kind, pre, after, rules)


def _metadata_violations(pre: Obj | None, after: Obj, action: Action) -> Iterator[tuple[str, str, str]]:
    pre_meta = (pre or {}).get("metadata") or {}
    after_meta = after.get("metadata") or {}
    manifest = vars(action).get("manifest")  # a getattr miss is slow on a pydantic model
    if pre is None and isinstance(manifest, dict):
        asked = manifest.get("metadata") or {}
        if asked.get("finalizers"):
            yield (
                "finalizers",
                f"a new object would carry finalizers {asked['finalizers']}",
                "Create the object without finalizers.",
            )
    elif (pre_meta.get("finalizers") or []) != (after_meta.get("finalizers") or []):
        yield (
            "finalizers",
            f"it would change the finalizers from {pre_meta.get('finalizers') or []} to "
            f"{after_meta.get('finalizers') or []}; finalizers guard cleanup (a PVC's protects its data)",
            "Leave finalizers to their controllers; fix what blocks the cleanup instead.",
        )
    if _owners(pre_meta) != _owners(after_meta):
        yield (
            "ownership",
            "it would change the object's ownerReferences; the garbage collector deletes objects whose owner goes, "
            "later and outside this transaction",
            "Leave ownerReferences to the controllers that set them.",
        )


def _owners(meta: Obj) -> list[tuple[str, str, str, str]]:
    refs = meta.get("ownerReferences") or []
    return sorted(
        (str(r.get("apiVersion")), str(r.get("kind")), str(r.get("name")), str(r.get("uid")))
        for r in refs
        if isinstance(r, dict)
    )


def _object_violations(kind: str, pre: Obj | None, after: Obj, rules: ScopeRules) -> Iterator[tuple[str, str, str]]:
    pre_spec = ((pre or {}).get("spec") or {}) if isinstance((pre or {}).get("spec"), dict) else {}
    spec = after.get("spec") if isinstance(after.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if kind == "Service":
        old_type, new_type = pre_spec.get("type") or "ClusterIP", spec.get("type") or "ClusterIP"
        if new_type in ("NodePort", "LoadBalancer") and new_type != old_type:
            yield (
                "exposure",
                f"it would make the Service type {new_type}, reachable from outside the cluster",
                _INSTEAD["exposure"],
            )
        target = spec.get("externalName")
        if new_type == "ExternalName" and (old_type != "ExternalName" or target != pre_spec.get("externalName")):
            yield (
                "exposure",
                f"it would make the Service an alias (DNS CNAME) of {target!r}: its clients' traffic, credentials "
                "included, would go to that name, outside the cluster's Services",
                _INSTEAD["exposure"],
            )
        new_ips = set(spec.get("externalIPs") or []) - set(pre_spec.get("externalIPs") or [])
        if new_ips:
            yield "exposure", f"it would add external IPs {sorted(new_ips)}", _INSTEAD["exposure"]
    if kind == "PersistentVolume":
        old, new = pre_spec.get("persistentVolumeReclaimPolicy"), spec.get("persistentVolumeReclaimPolicy")
        if new in ("Delete", "Recycle") and new != old:
            yield (
                "data_destruction",
                f"reclaim policy {new} deletes the volume's data once its claim goes",
                "Keep the reclaim policy; fix the binding instead.",
            )
    if kind == "StatefulSet":
        old_ret = pre_spec.get("persistentVolumeClaimRetentionPolicy") or {}
        new_ret = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if isinstance(new_ret, dict) and isinstance(old_ret, dict):
            for when in ("whenDeleted", "whenScaled"):
                if new_ret.get(when) == "Delete" and old_ret.get(when) != "Delete":
                    yield (
                        "data_destruction",
                        f"PVC retention {when}: Delete deletes the pods' volumes",
                        "Keep the claims retained.",
                    )
    yield from _irreversible(kind, pre, after)
    yield from _limits(kind, pre, after)
    for field, count, before in _scale_counts(kind, pre, after):
        bound = max(rules.max_replicas, before if isinstance(before, int) and not isinstance(before, bool) else 0)
        if count > bound:
            yield (
                "scale_bound",
                f"{field} {count} is above the bound of {bound} (the policy's max_replicas {rules.max_replicas}, or "
                "the current value if higher); each counts pods run at once or in all",
                "Stay within the bound; an operator can raise max_replicas for this scope.",
            )


_HISTORY_LIMITS: dict[str, tuple[tuple[tuple[str, ...], int, str], ...]] = {
    "Deployment": ((("spec", "revisionHistoryLimit"), 10, "old ReplicaSets"),),
    "StatefulSet": ((("spec", "revisionHistoryLimit"), 10, "ControllerRevisions"),),
    "DaemonSet": ((("spec", "revisionHistoryLimit"), 10, "ControllerRevisions"),),
    "CronJob": (
        (("spec", "successfulJobsHistoryLimit"), 3, "finished Jobs and their pods"),
        (("spec", "failedJobsHistoryLimit"), 1, "failed Jobs and their pods"),
    ),
}
"""Fields that tell a controller how many old objects to keep (path, the API's default, what it deletes): lowering one
makes the controller delete them after the write, outside the transaction; the revision history is also what a
rollback and the image and program guards read."""


def _irreversible(kind: str, pre: Obj | None, after: Obj) -> Iterator[tuple[str, str, str]]:
    """Writes no undo takes back: controllers deleting objects later, a volume grown, an object made immutable."""
    if pre is None:
        return
    for path, default, what in _HISTORY_LIMITS.get(kind, ()):
        old, new = _int_or(_at(pre, path), default), _int_or(_at(after, path), default)
        if new < old:
            yield (
                "irreversible",
                f"{'.'.join(path)} {new} (was {old}) makes the controller delete {what} beyond it; no undo brings "
                "them back",
                "Keep the history limit.",
            )
    if kind == "Job":
        old_ttl, new_ttl = (
            _at(pre, ("spec", "ttlSecondsAfterFinished")),
            _at(after, ("spec", "ttlSecondsAfterFinished")),
        )
        if isinstance(new_ttl, int) and (not isinstance(old_ttl, int) or new_ttl < old_ttl):
            yield (
                "irreversible",
                f"ttlSecondsAfterFinished {new_ttl} makes the TTL controller delete the Job and its pods once finished",
                "Keep the Job's time to live.",
            )
    if kind == "PersistentVolumeClaim":
        old_size = quantity(_at(pre, ("spec", "resources", "requests", "storage")))
        new_size = quantity(_at(after, ("spec", "resources", "requests", "storage")))
        if old_size is not None and new_size is not None and new_size > old_size:
            yield (
                "irreversible",
                "growing a PersistentVolumeClaim cannot be undone: the API refuses to shrink a claim",
                "Free space on the volume, or report that it needs to grow so that an operator decides.",
            )
    if kind in ("ConfigMap", "Secret") and after.get("immutable") is True and pre.get("immutable") is not True:
        yield (
            "irreversible",
            f"an immutable {kind} can never be changed again (nor made mutable): its undo could not restore it",
            f"Leave the {kind} mutable.",
        )


def _limits(kind: str, pre: Obj | None, after: Obj) -> Iterator[tuple[str, str, str]]:
    """A tighter ResourceQuota or LimitRange: the API refuses new pods past it (a restart, a rollout, the undo's own
    replacements), so a write may only loosen one (raise or drop a bound), never add or tighten one."""
    if kind == "ResourceQuota":
        old_hard = _at(pre, ("spec", "hard")) if pre is not None else {}
        new_hard = _at(after, ("spec", "hard"))
        for key, value in sorted((new_hard if isinstance(new_hard, dict) else {}).items()):
            before = (old_hard if isinstance(old_hard, dict) else {}).get(key)
            if not _loosens(before, value, larger=True):
                yield (
                    "limits",
                    f"hard {key}: {value} ({'was ' + str(before) if before is not None else 'a new bound'}) refuses "
                    "new pods past it: restarts, rollouts and the undo's own replacements",
                    "Raise or remove quota bounds only; fix what uses the resources instead.",
                )
    if kind == "LimitRange":
        old_items = _limit_items(pre)
        for (kind_of, field, resource), value in sorted(_limit_items(after).items()):
            before = old_items.get((kind_of, field, resource))
            larger = field in ("max", "maxLimitRequestRatio")
            if field in ("max", "min", "maxLimitRequestRatio") and not _loosens(before, value, larger=larger):
                yield (
                    "limits",
                    f"{kind_of} {field} {resource}: {value} "
                    f"({'was ' + str(before) if before is not None else 'a new bound'}) refuses new pods outside it",
                    "Loosen limit ranges only (raise a max, lower a min, remove one); fix the pods' resources instead.",
                )


def _limit_items(obj: Obj | None) -> dict[tuple[str, str, str], Any]:
    out: dict[tuple[str, str, str], Any] = {}
    for item in _at(obj, ("spec", "limits")) or []:
        if not isinstance(item, dict):
            continue
        for field in ("max", "min", "maxLimitRequestRatio", "default", "defaultRequest"):
            values = item.get(field)
            if isinstance(values, dict):
                for resource, value in values.items():
                    out[(str(item.get("type")), field, str(resource))] = value
    return out


def _loosens(before: Any, after: Any, *, larger: bool) -> bool:
    """Whether bound ``after`` is no tighter than ``before`` (None: there was no bound, so any bound is tighter)."""
    if before is None:
        return False
    old, new = quantity(before), quantity(after)
    if old is None or new is None:
        return str(before) == str(after)
    return new >= old if larger else new <= old


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


_SCALE_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Job": (("spec", "parallelism"), ("spec", "completions")),
    "CronJob": (("spec", "jobTemplate", "spec", "parallelism"), ("spec", "jobTemplate", "spec", "completions")),
    "HorizontalPodAutoscaler": (("spec", "minReplicas"), ("spec", "maxReplicas")),
}
"""Fields that set how many pods a kind runs, besides ``spec.replicas``: a Job runs ``parallelism`` pods at once and
``completions`` in all (a CronJob each time it fires); an autoscaler scales its target between its bounds."""


def _scale_counts(kind: str, pre: Obj | None, after: Obj) -> Iterator[tuple[str, int, Any]]:
    """(field, value after, value before) of every pod-count field of ``after`` (an int, not a bool)."""
    for path in (("spec", "replicas"), *_SCALE_FIELDS.get(kind, ())):
        value, before = _at(after, path), _at(pre, path)
        if isinstance(value, int) and not isinstance(value, bool):
            yield ".".join(path), value, before


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


# --- image references -------------------------------------------------------------------------------------------

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(?:localhost|{_LABEL}(?:\.{_LABEL})*)(?::\d{{1,5}})?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def image_location(ref: str) -> str | None:
    """``registry/repository`` of an image reference, Docker-normalised (``nginx`` -> ``docker.io/library/nginx``);
    None when the reference is not well-formed (whitespace, upper case in the path, unicode, empty parts...)."""
    if not ref or len(ref) > 512 or not ref.isascii() or ref != ref.strip():
        return None
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        return None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            return None
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0].lower(), parts[1:]
        if not _HOST.match(registry):
            return None
    else:
        registry, path = "docker.io", parts
    if registry in _DOCKER_HUB:
        registry = "docker.io"
        if len(path) == 1:
            path = ["library", *path]
    if not path or not all(_COMPONENT.match(p) for p in path):
        return None
    return "/".join([registry, *path])


def _normalise_registry_entry(entry: str) -> str:
    value = entry.strip().lower().rstrip("/")
    head, _, rest = value.partition("/")
    if head in _DOCKER_HUB:
        head = "docker.io"
    return f"{head}/{rest}" if rest else head


def _image_allowed(loc: str, ran_repositories: set[str], allowed: list[str]) -> bool:
    """A new image is trusted when it is another tag or digest of a repository the workload runs or ran (the same
    publisher's code), or when the operator's policy allows its registry or registry path."""
    if loc in ran_repositories:
        return True
    return any(loc == entry or loc.startswith(entry + "/") for entry in allowed)
