"""Fix recipes: a finding's mechanism and facts -> the typed write actions that repair it.

A recipe never reads the cluster: the analyzers already read everything it needs into the finding's ``facts``. It
returns a ``Plan``: the main writes, then follow-up writes (restarting clients that crashed while their upstream was
broken) to run once ``wait_for`` (a Service) has ready endpoints. Each plan has a ``signature`` (``verb Kind/ns/name``
of its first write, the way the coordinator's reflections describe actions) so that an approach an earlier attempt
tried and aborted is not tried again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratus.actions import Action, Create, Delete, Exec, Patch, RolloutRestart, RolloutUndo, Scale, Uncordon
from stratus.reasoners.rulebook.analyzers import Finding
from stratus.reasoners.rulebook.changes import revert_plan_actions

LAST_RESORT = frozenset({"crash_loop"})
"""Mechanisms whose recipe is a blind restart: used only when no other recipe applies."""


@dataclass
class Plan:
    """What to write for one finding."""

    recipe: str
    finding: Finding
    actions: list[Action]
    then: list[Action] = field(default_factory=list)
    wait_for: str | None = None
    note: str = ""
    marker: str = ""
    """Text that tells this plan's first write apart from another plan's on the same object in a reflection (for a
    JSON patch: its first operation and path, as the coordinator's reflection prints them)."""

    def __post_init__(self) -> None:
        first = self.actions[0] if self.actions else None
        if not self.marker and isinstance(first, Patch) and first.patch_type == "json" and first.patch:
            op = first.patch[0] if isinstance(first.patch, list) else {}
            self.marker = f"{{'op': '{op.get('op')}', 'path': '{op.get('path')}'"

    @property
    def signature(self) -> str:
        first = self.actions[0]
        return f"{first.verb} {first.target}"

    @property
    def last_resort(self) -> bool:
        return self.finding.mechanism in LAST_RESORT


Recipe = Callable[[Finding, str], "Plan | None"]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _replace_if(path: str, old: Any, new: Any) -> list[dict[str, Any]]:
    """A JSON patch that sets ``path`` to ``new`` only while it still holds ``old`` (the API server refuses it
    otherwise, so a fix never lands on a field someone changed since the diagnosis)."""
    return [{"op": "test", "path": path, "value": old}, {"op": "replace", "path": path, "value": new}]


def fix_target_port(f: Finding, ns: str) -> Plan:
    i, old, new = f.facts["index"], f.facts["from"], f.facts["to"]
    ops = _replace_if(f"/spec/ports/{i}/targetPort", old, new)
    patch = Patch(kind="Service", namespace=ns, name=f.facts["service"], patch_type="json", patch=ops)
    return Plan("target_port", f, [patch], note=f"targetPort {old} -> {new}")


def fix_scaled_to_zero(f: Finding, ns: str) -> Plan:
    scale = Scale(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], replicas=f.facts["replicas"])
    return Plan("scale_up", f, [scale], note=f"replicas 0 -> {f.facts['replicas']}")


def fix_placement(f: Finding, ns: str) -> Plan | None:
    ops: list[dict[str, Any]] = []
    if f.facts["bad_keys"]:
        if f.facts["all_keys"]:
            ops.append({"op": "remove", "path": "/spec/template/spec/nodeSelector"})
        else:
            ops += [
                {"op": "remove", "path": f"/spec/template/spec/nodeSelector/{_escape(k)}"} for k in f.facts["bad_keys"]
            ]
    if f.facts["affinity"]:
        ops.append({"op": "remove", "path": "/spec/template/spec/affinity/nodeAffinity"})
    if not ops:
        return None
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("remove_placement", f, [patch], note="remove the node constraint no node satisfies")


def fix_stale_claim_ref(f: Finding, ns: str) -> Plan:
    patch = Patch(kind="PersistentVolume", name=f.facts["pv"], patch_type="merge", patch={"spec": {"claimRef": None}})
    return Plan("release_volume", f, [patch], wait_for=f.component, note="clear the stale claimRef (cluster scope)")


def fix_missing_storage_class(f: Finding, ns: str) -> Plan | None:
    if not f.facts.get("static"):
        return None
    manifest = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": f.facts["storage_class"]},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Retain",
    }
    return Plan("create_storage_class", f, [Create(manifest=manifest)], wait_for=f.component)


def fix_changed_template(f: Finding, ns: str) -> Plan | None:
    if not f.facts.get("revision"):
        return None
    undo = RolloutUndo(kind="Deployment", namespace=ns, name=f.facts["name"], to_revision=f.facts["revision"])
    return Plan("rollout_undo", f, [undo], note=f"back to revision {f.facts['revision']}")


def fix_wrong_program(f: Finding, ns: str) -> Plan:
    i = f.facts["index"]
    ops = _replace_if(f"/spec/template/spec/containers/{i}/command", f.facts["old"], f.facts["command"])
    patch = Patch(kind="Deployment", namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("restore_program", f, [patch], note=f"command -> {f.facts['command']}")


def fix_database_auth(f: Finding, ns: str) -> Plan | None:
    """Repair the client's database user through the data-plane catalogue (``stratus.dataplane``): grant the roles
    its init scripts declare, or recreate it as they declare it. The admin credentials stay in the container's env."""
    if not f.facts.get("admin"):
        return None
    db, user, roles = f.facts["auth_db"], f.facts["user"], f.facts["roles"]
    if f.facts["repair"] == "grant":
        operation, args = "mongodb.grant_roles", {"db": db, "user": user, "roles": roles}
    else:
        operation, args = "mongodb.create_declared_user", {"db": db, "user": user}
    exe = Exec(
        namespace=ns, name=f.facts["db_pod"], container=f.facts.get("db_container"), operation=operation, args=args
    )
    restarts: list[Action] = [
        RolloutRestart(kind="Deployment", namespace=ns, name=c) for c in f.facts.get("clients") or [] if c
    ]
    role_names = ", ".join(f"{r['role']}@{r['db']}" for r in roles)
    return Plan("database_user_repair", f, [exe], then=restarts, note=f"{operation} {user}@{db} ({role_names})")


def fix_tls_required(f: Finding, ns: str) -> Plan | None:
    """Back to the revision before TLS was required; without history, drop the TLS options from the args."""
    restarts: list[Action] = [RolloutRestart(kind="Deployment", namespace=ns, name=c) for c in f.facts["clients"]]
    if f.facts.get("revision"):
        undo = RolloutUndo(kind="Deployment", namespace=ns, name=f.facts["name"], to_revision=f.facts["revision"])
        return Plan(
            "rollout_undo", f, [undo], then=restarts, wait_for=f.component, note="back to the plaintext revision"
        )
    ops: list[dict[str, Any]] = []
    for c in f.facts.get("tls_args") or []:
        path = f"/spec/template/spec/containers/{c['index']}/args"
        ops.append({"op": "test", "path": path, "value": c["old"]})
        ops.append({"op": "replace", "path": path, "value": c["new"]} if c["new"] else {"op": "remove", "path": path})
    if not ops:
        return None
    patch = Patch(kind="Deployment", namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("plaintext_args", f, [patch], then=restarts, wait_for=f.component, note="accept plaintext clients")


def fix_runtime_state(f: Finding, ns: str) -> Plan | None:
    """Replace the server's pods, which start from what it declares, then restart the clients that crashed on it."""
    if f.facts["kind"] not in ("Deployment", "StatefulSet"):
        return None
    restart = RolloutRestart(kind=f.facts["kind"], namespace=ns, name=f.facts["name"])
    clients: list[Action] = [
        RolloutRestart(kind="Deployment", namespace=ns, name=c) for c in f.facts.get("clients") or [] if c
    ]
    return Plan(
        "restart_to_declared_state",
        f,
        [restart],
        then=clients,
        wait_for=f.facts["service"],
        note="a new pod starts without the run-time credential",
    )


def fix_crash_loop(f: Finding, ns: str) -> Plan | None:
    if f.facts["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
        return None
    return Plan("restart", f, [RolloutRestart(kind=f.facts["kind"], namespace=ns, name=f.facts["name"])])


def fix_revert_change(f: Finding, ns: str) -> Plan | None:
    """Put one changed unit back as the last healthy snapshot had it (one candidate per transaction)."""
    actions = revert_plan_actions(f)
    if not actions:
        return None
    pointer = str(f.facts.get("pointer") or "")
    note = f"revert {f.target} {pointer}".strip() + " to its last healthy value"
    return Plan("revert_change", f, actions, note=note)


def fix_service_selector(f: Finding, ns: str) -> Plan | None:
    if not f.facts.get("new"):
        return None
    ops = _replace_if("/spec/selector", f.facts["old"], f.facts["new"])
    patch = Patch(kind="Service", namespace=ns, name=f.facts["service"], patch_type="json", patch=ops)
    return Plan("service_selector", f, [patch], note=f"selector -> {f.facts['new']}")


def fix_probe_port(f: Finding, ns: str) -> Plan | None:
    if f.facts.get("to") is None:
        return None
    ops = _replace_if(f.facts["path"], f.facts["from"], f.facts["to"])
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("probe_port", f, [patch], note=f"probe port {f.facts['from']!r} -> {f.facts['to']}")


def fix_resources(f: Finding, ns: str) -> Plan | None:
    """Back to the revision whose pods fit; without one, drop the requests (and limits) no node can give."""
    if f.facts.get("revision"):
        undo = RolloutUndo(kind="Deployment", namespace=ns, name=f.facts["name"], to_revision=f.facts["revision"])
        return Plan("rollout_undo", f, [undo], note=f"back to revision {f.facts['revision']}, whose pods fit")
    ops: list[dict[str, Any]] = []
    for field_ in f.facts.get("fields") or []:
        ops += [
            {"op": "test", "path": field_["path"], "value": field_["old"]},
            {"op": "remove", "path": field_["path"]},
        ]
    if not ops:
        return None
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("drop_oversized_resources", f, [patch], note="remove the requests no node can allocate")


def fix_untolerated_taints(f: Finding, ns: str) -> Plan | None:
    tolerations = f.facts.get("tolerations") or []
    if not tolerations:
        return None
    path = "/spec/template/spec/tolerations"
    ops: list[dict[str, Any]] = (
        [{"op": "add", "path": f"{path}/-", "value": t} for t in tolerations]
        if f.facts.get("has_tolerations")
        else [{"op": "add", "path": path, "value": tolerations}]
    )
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("tolerate_taints", f, [patch], note="tolerate the nodes' taints")


def fix_cordoned(f: Finding, ns: str) -> Plan | None:
    nodes = f.facts.get("nodes") or []
    if not nodes:
        return None
    actions: list[Action] = [Uncordon(name=n) for n in nodes]
    return Plan("uncordon", f, actions, note="uncordon the nodes (cluster scope)")


def fix_network_policy(f: Finding, ns: str) -> Plan:
    delete = Delete(kind="NetworkPolicy", namespace=ns, name=f.facts["policy"])
    return Plan(
        "delete_network_policy", f, [delete], note="remove the policy that drops all traffic (undo recreates it)"
    )


def fix_init_container(f: Finding, ns: str) -> Plan | None:
    if not f.facts.get("revision") or f.facts.get("kind") != "Deployment":
        return None
    undo = RolloutUndo(kind="Deployment", namespace=ns, name=f.facts["name"], to_revision=f.facts["revision"])
    return Plan("rollout_undo", f, [undo], note=f"back to revision {f.facts['revision']}, whose init containers ran")


def fix_host_port(f: Finding, ns: str) -> Plan:
    ops: list[dict[str, Any]] = []
    for path, old in zip(f.facts["paths"], f.facts["old"], strict=True):
        ops += [{"op": "test", "path": path, "value": old}, {"op": "remove", "path": path}]
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("drop_host_port", f, [patch], note="serve through the Service instead of a node's port")


def fix_dns_policy(f: Finding, ns: str) -> Plan:
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/template/spec/dnsPolicy", "value": "ClusterFirst"}]
    if f.facts.get("config"):
        ops.append({"op": "remove", "path": "/spec/template/spec/dnsConfig"})
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("cluster_dns", f, [patch], note="dnsPolicy ClusterFirst")


def fix_local_traffic_policy(f: Finding, ns: str) -> Plan:
    ops = _replace_if("/spec/internalTrafficPolicy", "Local", "Cluster")
    patch = Patch(kind="Service", namespace=ns, name=f.facts["service"], patch_type="json", patch=ops)
    return Plan("cluster_traffic_policy", f, [patch], note="internalTrafficPolicy Local -> Cluster")


def fix_duplicate_env(f: Finding, ns: str) -> Plan:
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=f.facts["ops"])
    return Plan("drop_env_duplicates", f, [patch], note="later duplicate env entries removed")


def fix_rollout_strategy(f: Finding, ns: str) -> Plan:
    defaults = {"maxUnavailable": "25%", "maxSurge": "25%"}
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/strategy/rollingUpdate", "value": defaults}]
    patch = Patch(kind="Deployment", namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("rollout_bounds", f, [patch], note="rollingUpdate back to the controller's defaults (25% / 25%)")


def fix_env_address(f: Finding, ns: str) -> Plan | None:
    if not f.facts.get("new"):
        return None
    ops = _replace_if(f.facts["path"], f.facts["old"], f.facts["new"])
    patch = Patch(kind=f.facts["kind"], namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("env_address_port", f, [patch], note=f"{f.facts['old']} -> {f.facts['new']}")


def fix_liveness(f: Finding, ns: str) -> Plan:
    patch = Patch(kind="Deployment", namespace=ns, name=f.facts["name"], patch_type="json", patch=f.facts["ops"])
    if f.facts.get("revision") is None:
        return Plan("liveness_relaxed", f, [patch], note="liveness probe timing relaxed to the kubelet's defaults")
    return Plan("liveness_from_history", f, [patch], note=f"liveness probe as in revision {f.facts['revision']}")


def fix_sidecar_blocks_completion(f: Finding, ns: str) -> Plan | None:
    """The helpers become native sidecars in the CronJob's template (removed from the containers, highest index first,
    each checked by name; appended to the init containers with ``restartPolicy: Always``), then the Jobs that cannot
    complete are deleted."""
    base = "/spec/jobTemplate/spec/template/spec"
    moved = sorted(f.facts.get("containers") or [], key=lambda c: -int(c["index"]))
    ops: list[dict[str, Any]] = []
    for c in moved:
        path = f"{base}/containers/{c['index']}"
        ops += [{"op": "test", "path": f"{path}/name", "value": c["spec"]["name"]}, {"op": "remove", "path": path}]
    sidecars = [{**c["spec"], "restartPolicy": "Always"} for c in reversed(moved)]
    if sidecars and f.facts.get("has_init_containers"):
        ops += [{"op": "add", "path": f"{base}/initContainers/-", "value": s} for s in sidecars]
    elif sidecars:
        ops.append({"op": "add", "path": f"{base}/initContainers", "value": sidecars})
    actions: list[Action] = []
    if ops:
        actions.append(Patch(kind="CronJob", namespace=ns, name=f.facts["cronjob"], patch_type="json", patch=ops))
    actions += [Delete(kind="Job", namespace=ns, name=j) for j in f.facts.get("jobs") or []]
    if not actions:
        return None
    return Plan("native_sidecar", f, actions, note="run the helpers as native sidecars; delete the Jobs that never end")


RECIPES: dict[str, Recipe] = {
    "service_target_port": fix_target_port,
    "scaled_to_zero": fix_scaled_to_zero,
    "unschedulable_placement": fix_placement,
    "stale_claim_ref": fix_stale_claim_ref,
    "missing_storage_class": fix_missing_storage_class,
    "changed_template": fix_changed_template,
    "wrong_program": fix_wrong_program,
    "database_auth": fix_database_auth,
    "tls_required": fix_tls_required,
    "crash_loop": fix_crash_loop,
    "runtime_credential_drift": fix_runtime_state,
    "service_selector_mismatch": fix_service_selector,
    "service_selects_foreign_pods": fix_service_selector,
    "probe_port_mismatch": fix_probe_port,
    "resources_exceed_nodes": fix_resources,
    "untolerated_taints": fix_untolerated_taints,
    "node_cordoned": fix_cordoned,
    "network_policy_deny": fix_network_policy,
    "init_container_failure": fix_init_container,
    "host_port_conflict": fix_host_port,
    "dns_policy": fix_dns_policy,
    "local_traffic_policy": fix_local_traffic_policy,
    "duplicate_env": fix_duplicate_env,
    "env_address_wrong_port": fix_env_address,
    "rollout_strategy_unsafe": fix_rollout_strategy,
    "liveness_kills": fix_liveness,
    "sidecar_blocks_completion": fix_sidecar_blocks_completion,
    "recent_change": fix_revert_change,
    "recent_app_change": fix_revert_change,
}
"""Mechanism -> recipe. Mechanisms without one (symptoms such as ``upstream_unavailable``) only inform."""


def plan_for(finding: Finding, namespace: str) -> Plan | None:
    recipe = RECIPES.get(finding.mechanism)
    return recipe(finding, namespace) if recipe else None


def tried_before(plan: Plan, reflections: list[str]) -> bool:
    """Whether an earlier, aborted attempt already ran this plan's first write (as the reflections describe it)."""
    # A reflection that does not print the patch operations can only be matched on the write's target.
    return any(plan.signature in r and (plan.marker in r or "'op':" not in r) for r in reflections)
