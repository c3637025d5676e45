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

from stratus.actions import Action, Create, Exec, Patch, RolloutRestart, RolloutUndo, Scale
from stratus.reasoners.rulebook.analyzers import Finding

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


def fix_target_port(f: Finding, ns: str) -> Plan:
    i, old, new = f.facts["index"], f.facts["from"], f.facts["to"]
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"/spec/ports/{i}/targetPort", "value": old},
        {"op": "replace", "path": f"/spec/ports/{i}/targetPort", "value": new},
    ]
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
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"/spec/template/spec/containers/{i}/command", "value": f.facts["old"]},
        {"op": "replace", "path": f"/spec/template/spec/containers/{i}/command", "value": f.facts["command"]},
    ]
    patch = Patch(kind="Deployment", namespace=ns, name=f.facts["name"], patch_type="json", patch=ops)
    return Plan("restore_program", f, [patch], note=f"command -> {f.facts['command']}")


def _js_roles(roles: list[dict[str, str]]) -> str:
    return "[" + ", ".join(f"{{role: '{r['role']}', db: '{r['db']}'}}" for r in roles) + "]"


def fix_database_auth(f: Finding, ns: str) -> Plan | None:
    admin = f.facts.get("admin") or {}
    if not admin:
        return None
    db, user, roles = f.facts["auth_db"], f.facts["user"], f.facts["roles"]
    target = f"db.getSiblingDB('{db}')"
    if f.facts["repair"] == "grant":
        script = f"{target}.grantRolesToUser('{user}', {_js_roles(roles)})"
        inverse = f"{target}.revokeRolesFromUser('{user}', {_js_roles(roles)})"
    else:
        script = f"{target}.createUser({{user: '{user}', pwd: '{f.facts['pwd']}', roles: {_js_roles(roles)}}})"
        inverse = f"{target}.dropUser('{user}')"
    shell = ["mongo", admin["db"], "--quiet", "-u", admin["user"], "-p", admin["pwd"], "--authenticationDatabase"]
    shell.append(admin["db"])
    exe = Exec(
        namespace=ns,
        name=f.facts["db_pod"],
        container=f.facts.get("db_container"),
        command=[*shell, "--eval", script],
        inverse=[*shell, "--eval", inverse],
    )
    restarts: list[Action] = [
        RolloutRestart(kind="Deployment", namespace=ns, name=c) for c in f.facts.get("clients") or [] if c
    ]
    return Plan("database_user_repair", f, [exe], then=restarts, note=script)


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


def fix_crash_loop(f: Finding, ns: str) -> Plan | None:
    if f.facts["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
        return None
    return Plan("restart", f, [RolloutRestart(kind=f.facts["kind"], namespace=ns, name=f.facts["name"])])


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
}
"""Mechanism -> recipe. Mechanisms without one (symptoms such as ``upstream_unavailable``) only inform."""


def plan_for(finding: Finding, namespace: str) -> Plan | None:
    recipe = RECIPES.get(finding.mechanism)
    return recipe(finding, namespace) if recipe else None


def tried_before(plan: Plan, reflections: list[str]) -> bool:
    """Whether an earlier, aborted attempt already ran this plan's first write (as the reflections describe it)."""
    return any(plan.signature in r for r in reflections)
