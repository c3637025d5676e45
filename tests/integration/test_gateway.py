"""The cluster gateway against the arena's emulated API server, through the official Python client.

Each write kind: the dry run stores nothing, a failing dry run returns the API's message, the pre-image and the undo
record are right, the undo restores the scope's digest; a stale fencing token and a failing journal prevent the write;
a write that would terminate Ready pods is refused before anything is journaled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from stratus.actions import (
    Action,
    Apply,
    Cordon,
    Create,
    Delete,
    Exec,
    Patch,
    Replace,
    RolloutRestart,
    RolloutUndo,
    Scale,
    SetEnv,
    SetImage,
)
from stratus.confinement import Refusal
from stratus.contracts import JournalRecord, Lease, utcnow
from stratus.digest import diff_snapshots
from stratus.gateway import KubeApi, ReadGateway, WriteGateway
from stratus.journal import undo_plan
from stratus.writepolicy import DEFAULT_SCOPES, ScopeRules, WritePolicy

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]

IMAGE = "nginx:1.25"
IMAGE2 = "nginx:1.27"


class Journal:
    """Records what the gateway journals; ``fail`` makes the intent append raise."""

    def __init__(self) -> None:
        self.records: list[JournalRecord] = []
        self.fail = False

    async def intent(self, record: JournalRecord) -> None:
        if self.fail:
            raise ConnectionError("journal unavailable")
        self.records.append(record)

    async def outcome(self, record: JournalRecord) -> None:
        self.records.append(record)

    def phase(self, phase: str) -> list[JournalRecord]:
        return [r for r in self.records if r.phase == phase]


class Fence:
    """The scope's current token; a stale token raises, like ``ALock.ensure_fence``."""

    def __init__(self) -> None:
        self.current: dict[str, int] = {}
        self.calls = 0

    async def __call__(self, scope: str, token: int) -> None:
        self.calls += 1
        if self.current.get(scope) != token:
            raise PermissionError(f"fencing token {token} is not the current writer of {scope}")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def deployment(name: str, ns: str, image: str = IMAGE, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ]
                },
            },
        },
    }


def configmap(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}


@pytest.fixture(scope="module")
def kubeconfig(arena_kubeconfig: Path) -> Path:
    return arena_kubeconfig


async def settled(api: KubeApi, ns: str, name: str, timeout: float = 15.0) -> None:
    """Wait until the Deployment's controllers settled (status writes bump resourceVersion) and all its replicas are
    available, so a test's pre-image stays current."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        dep = await asyncio.to_thread(api.get, "Deployment", ns, name)
        status = (dep or {}).get("status") or {}
        done = status.get("observedGeneration") == dep["metadata"].get("generation") if dep else False
        if done and (status.get("availableReplicas") or 0) == dep["spec"]["replicas"]:
            return
        assert asyncio.get_running_loop().time() < deadline, f"the Deployment {name} did not become available"
        await asyncio.sleep(0.05)


@pytest.fixture
async def ns(kubeconfig: Path) -> AsyncIterator[str]:
    """A fresh namespace with a Deployment ``web`` (2 Ready pods), a Deployment ``idle`` scaled to zero, a Service and
    a ConfigMap."""
    name = f"gw-{uuid.uuid4().hex[:8]}"
    api = KubeApi.from_kubeconfig(kubeconfig)
    await asyncio.to_thread(api.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await asyncio.to_thread(api.create, deployment("web", name))
    await asyncio.to_thread(api.create, deployment("idle", name, replicas=0))
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
    }
    await asyncio.to_thread(api.create, svc)
    await asyncio.to_thread(api.create, configmap("conf", name))
    await settled(api, name, "web")
    await settled(api, name, "idle")
    yield name
    api.close()


@pytest.fixture
async def reader(kubeconfig: Path) -> AsyncIterator[ReadGateway]:
    gw = ReadGateway.from_kubeconfig(kubeconfig)
    yield gw
    gw.close()


POLICY = WritePolicy(
    scopes={"*": ScopeRules(grants=DEFAULT_SCOPES["*"].grants, allowed_registries=["docker.io/library"])}
)
"""The built-in policy, and new workloads may run images of Docker Hub's official repositories (nginx)."""


def writer(kubeconfig: Path, scope: str, journal: Journal, fence: Fence, token: int = 7) -> WriteGateway:
    fence.current.setdefault(scope, token)
    lease = Lease(scope=scope, holder="test", token=token, expires_at=utcnow())
    return WriteGateway.from_kubeconfig(
        kubeconfig,
        lease=lease,
        check_fence=fence,
        journal_intent=journal.intent,
        journal_outcome=journal.outcome,
        incident_id="inc-1",
        tx_id="tx-1",
        attempt=1,
        policy=POLICY,
    )


async def undo_all(gw: WriteGateway, journal: Journal) -> None:
    """What the undoer does: the undo of every journaled intent, back to front."""
    for record in reversed(journal.phase("intent")):
        for spec in record.undo:
            result = await gw.apply_undo(spec)
            assert result.ok, result.message


# --- reads ----------------------------------------------------------------------------------------------------


async def test_reads_render_text(reader: ReadGateway, ns: str) -> None:
    table = await reader.kubectl(f"kubectl get deploy -n {ns}")
    assert table.splitlines()[0].split()[:2] == ["NAME", "READY"] and "web" in table
    assert "app: web" in await reader.kubectl(f"kubectl get deployment web -n {ns} -o yaml")
    described = await reader.kubectl(f"kubectl describe svc web -n {ns}")
    assert "Name:         web" in described and "Events:" in described
    assert "NotFound" in await reader.kubectl(f"kubectl get pod nope -n {ns}")
    refusal = await reader.kubectl(f"kubectl scale deploy/web --replicas=0 -n {ns}")
    assert refusal.startswith("Write operation 'scale' refused: this agent has a read-only role.")
    assert "Pipe detected" in await reader.kubectl("kubectl get pods | grep web")
    sc = await reader.kubectl("kubectl get storageclass")
    assert sc.startswith(("NAME", "No resources"))


async def test_logs_and_events(reader: ReadGateway, ns: str) -> None:
    async def logs() -> bool:
        return "app listening" in await reader.kubectl(f"kubectl logs deploy/web -n {ns} --tail=5")

    await eventually(logs)

    async def events() -> bool:
        text = await reader.kubectl(f"kubectl get events -n {ns}")
        return text.startswith("LAST SEEN") and "pod/web-" in text

    await eventually(events)
    pods = await reader.kubectl(f"kubectl get pods -n {ns} -o wide")
    assert pods.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]


async def test_read_gateway_refuses_typed_writes(reader: ReadGateway, ns: str) -> None:
    with pytest.raises(Refusal, match="read-only role"):
        await reader.run(Scale(kind="deploy", namespace=ns, name="web", replicas=0))


# --- writes: one per kind, each undone back to the checkpoint --------------------------------------------------


def write_cases(ns: str) -> list[tuple[str, Action]]:
    """Writes the ready-capacity guard allows (scaling ``web`` down or deleting it is refused: see below)."""
    return [
        ("scale", Scale(kind="Deployment", namespace=ns, name="web", replicas=3)),
        (
            "patch-strategic",
            Patch(
                kind="Service", namespace=ns, name="web", patch={"spec": {"ports": [{"port": 80, "targetPort": 81}]}}
            ),
        ),
        (
            "patch-merge",
            Patch(kind="ConfigMap", namespace=ns, name="conf", patch_type="merge", patch={"data": {"k": "x"}}),
        ),
        (
            "patch-json",
            Patch(
                kind="Deployment",
                namespace=ns,
                name="web",
                patch_type="json",
                patch=[{"op": "replace", "path": "/spec/replicas", "value": 5}],
            ),
        ),
        ("set-image", SetImage(kind="Deployment", namespace=ns, name="web", images={"app": IMAGE2})),
        ("set-env", SetEnv(kind="Deployment", namespace=ns, name="web", env={"B": "2"}, unset=["A"])),
        ("rollout-restart", RolloutRestart(kind="Deployment", namespace=ns, name="web")),
        ("delete-configmap", Delete(kind="ConfigMap", namespace=ns, name="conf")),
        ("delete-deployment", Delete(kind="Deployment", namespace=ns, name="idle")),
        ("create", Create(manifest=configmap("extra", ns))),
        ("apply-new", Apply(manifest=deployment("api", ns))),
        ("apply-existing", Apply(manifest={**configmap("conf", ns), "data": {"k": "applied"}})),
    ]


CASES = [name for name, _ in write_cases("x")]


@pytest.mark.parametrize("case", CASES)
async def test_write_is_journaled_and_undone(case: str, kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    action = dict(write_cases(ns))[case]
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    checkpoint = await reader.state_digest(ns)
    pre_read = await reader.get_object(action.kind, action.namespace, str(action.name))

    result = await gw.write(action)
    assert result.ok, result.message
    changed = await reader.state_digest(ns)
    assert changed.digest != checkpoint.digest, f"{case} changed nothing"

    intent, outcome = journal.records
    assert (intent.phase, outcome.phase, intent.seq, outcome.seq) == ("intent", "outcome", 1, 1)
    assert intent.action == action and outcome.ok is True
    # The dry run's answer is on an intent journaled after it; an update of an existing object whose undo is a copy of
    # its pre-image is journaled while the dry run is on the wire (stratus.gateway).
    ahead = pre_read is not None and action.kind != "Deployment" and not isinstance(action, (Create, Delete))
    assert (intent.dry_run is None) == ahead
    if pre_read is None:
        assert intent.pre_image is None
        assert [u.verb for u in intent.undo] == ["delete"]
    else:
        assert intent.pre_image is not None
        assert intent.pre_image["metadata"]["resourceVersion"] == pre_read["metadata"]["resourceVersion"]
        expected_verb = "create" if isinstance(action, Delete) else "replace"
        assert [u.verb for u in intent.undo] == [expected_verb]
        restore = intent.undo[0]
        assert isinstance(restore, (Create, Replace))
        assert "resourceVersion" not in restore.manifest["metadata"] and "status" not in restore.manifest
    assert fence.calls == 1

    await undo_all(gw, journal)

    async def restored() -> bool:
        return (await reader.state_digest(ns)).digest == checkpoint.digest

    try:
        await eventually(restored, timeout=5)
    except TimeoutError:
        found = await reader.state_digest(ns)
        pytest.fail(f"{case}: digest not restored: {diff_snapshots(checkpoint.objects, found.objects)}")
    # An undoer that crashed and replays the journal converges on the same state.
    await undo_all(gw, journal)
    assert await restored()
    gw.close()


@pytest.mark.parametrize("case", CASES)
async def test_failing_journal_prevents_the_write_and_dry_run_stores_nothing(
    case: str, kubeconfig: Path, reader: ReadGateway, ns: str
) -> None:
    action = dict(write_cases(ns))[case]
    journal, fence = Journal(), Fence()
    journal.fail = True
    gw = writer(kubeconfig, ns, journal, fence)
    checkpoint = await reader.state_digest(ns)
    with pytest.raises(ConnectionError):
        await gw.write(action)
    assert journal.records == [] and fence.calls <= 1  # the fence is checked while the intent is appended
    # The dry run ran (the failure came after it) and stored nothing.
    assert (await reader.state_digest(ns)).digest == checkpoint.digest
    gw.close()


async def test_stale_fencing_token_prevents_the_write(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence, token=7)
    fence.current[ns] = 8  # another writer took the scope after this lease expired
    checkpoint = await reader.state_digest(ns)
    with pytest.raises(PermissionError, match="fencing token 7"):
        await gw.write(Scale(kind="Deployment", namespace=ns, name="web", replicas=3))
    assert [r.phase for r in journal.records] == ["intent"]  # journaled, never executed: the undo is harmless
    assert (await reader.state_digest(ns)).digest == checkpoint.digest
    with pytest.raises(PermissionError):
        await gw.apply_undo(journal.records[0].undo[0])
    gw.close()


async def test_failing_dry_run_returns_the_api_message(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    checkpoint = await reader.state_digest(ns)
    missing = await gw.write(Scale(kind="Deployment", namespace=ns, name="nope", replicas=1))
    assert not missing.ok and not missing.executed
    assert missing.message.startswith("Dry run failed, nothing was changed: Error from server (NotFound)")
    exists = await gw.write(Create(manifest=configmap("conf", ns)))
    assert not exists.ok and "AlreadyExists" in exists.message
    bad = await gw.write(
        Patch(kind="Deployment", namespace=ns, name="web", patch_type="merge", patch={"spec": {"replicas": "many"}})
    )
    assert not bad.ok and "Error from server" in bad.message
    assert journal.records == [] and fence.calls == 0
    assert (await reader.state_digest(ns)).digest == checkpoint.digest
    gw.close()


async def test_lease_scope_must_cover_the_action(kubeconfig: Path, ns: str) -> None:
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, "some-other-namespace", journal, fence)
    with pytest.raises(Refusal, match="lease covers scope 'some-other-namespace'"):
        await gw.write(Scale(kind="Deployment", namespace=ns, name="web", replicas=0))
    with pytest.raises(Refusal, match="in scope 'cluster'"):
        await gw.write(Cordon(name="node-1"))
    assert journal.records == []
    gw.close()


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def test_controller_owned_pod_delete_needs_no_undo(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    """A pod that is not Ready (its image crashes) may be deleted: its ReplicaSet recreates it."""
    api = KubeApi.from_kubeconfig(kubeconfig)
    await asyncio.to_thread(api.create, deployment("broken", ns, image="crash:1"))
    api.close()

    async def pods() -> list[dict[str, Any]]:
        return await reader.list_objects("Pod", ns, label_selector="app=broken")

    async def two_pods() -> bool:
        return len(await pods()) == 2

    await eventually(two_pods)
    assert not any(is_ready(p) for p in await pods())
    pod = (await pods())[0]["metadata"]["name"]
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    result = await gw.write(Delete(kind="Pod", namespace=ns, name=pod))
    assert result.ok, result.message
    intent = journal.phase("intent")[0]
    assert intent.undo == [] and intent.message.startswith("controller-owned, verified: ReplicaSet/")
    assert intent.pre_image is not None and intent.pre_image["metadata"]["name"] == pod

    async def replaced() -> bool:
        names = [p["metadata"]["name"] for p in await pods()]
        return len(names) == 2 and pod not in names

    await eventually(replaced)
    gw.close()


async def test_undo_of_a_stuck_rollout_removes_its_surge_pod(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    """A rollout of a Deployment whose pods never become Ready is stuck with its surge pod (old pods go only while
    enough stay available). Restoring the template alone would leave that pod; the undo also shrinks the ReplicaSet
    the rollout created, so nothing of the aborted transaction stays."""
    api = KubeApi.from_kubeconfig(kubeconfig)
    await asyncio.to_thread(api.create, deployment("stuck", ns, image="crash:1", replicas=1))
    api.close()

    async def pods() -> set[str]:
        return {p["metadata"]["name"] for p in await reader.list_objects("Pod", ns, label_selector="app=stuck")}

    async def replicasets() -> dict[str, int]:
        items = await reader.list_objects("ReplicaSet", ns, label_selector="app=stuck")
        return {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in items}

    async def one_pod() -> bool:
        return len(await pods()) == 1

    await eventually(one_pod)
    before, sets_before = await pods(), await replicasets()
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    result = await gw.write(SetEnv(kind="Deployment", namespace=ns, name="stuck", container="app", env={"X": "1"}))
    assert result.ok, result.message
    assert journal.phase("intent")[0].undo[0].params["replicasets"] == sets_before

    async def surged() -> bool:
        return len(await pods()) == 2

    await eventually(surged)  # the new ReplicaSet's pod crashes too; the old one stays (maxUnavailable 0)
    await undo_all(gw, journal)

    async def restored() -> bool:
        return await pods() == before

    await eventually(restored)
    assert {name: n for name, n in (await replicasets()).items() if n} == sets_before
    gw.close()


async def test_rollout_undo_and_its_undo(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)

    async def revisions() -> int:
        text = await reader.kubectl(f"kubectl rollout history deploy/web -n {ns}")
        return len(text.splitlines()) - 2

    async def has_one() -> bool:
        return await revisions() >= 1

    await eventually(has_one)
    assert (await gw.write(SetImage(kind="Deployment", namespace=ns, name="web", images={"app": IMAGE2}))).ok

    async def has_two() -> bool:
        return await revisions() >= 2

    await eventually(has_two)
    checkpoint = await reader.state_digest(ns)
    journal.records.clear()
    result = await gw.write(RolloutUndo(kind="Deployment", namespace=ns, name="web"))
    assert result.ok, result.message
    web = await reader.get_object("Deployment", ns, "web")
    assert web is not None and web["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert "pod-template-hash" not in web["spec"]["template"]["metadata"]["labels"]
    await undo_all(gw, journal)
    assert (await reader.state_digest(ns)).digest == checkpoint.digest
    gw.close()


async def a_node(reader: ReadGateway) -> str:
    nodes = await reader.list_objects("Node")
    if not nodes:
        pytest.skip("the arena serves no nodes")
    return str(nodes[0]["metadata"]["name"])


async def test_cluster_scope_cordon_and_undo(kubeconfig: Path, reader: ReadGateway) -> None:
    node = await a_node(reader)
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, "cluster", journal, fence)
    checkpoint = await reader.state_digest("cluster")
    assert (await gw.write(Cordon(name=node))).ok
    after = await reader.state_digest("cluster")
    divergences = diff_snapshots(checkpoint.objects, after.objects)
    assert [(d.object, d.field, d.found) for d in divergences] == [(f"Node/{node}", "spec.unschedulable", True)]
    await undo_all(gw, journal)
    assert (await reader.state_digest("cluster")).digest == checkpoint.digest
    gw.close()


async def test_a_network_policy_may_only_add_to_what_isolated_pods_receive(
    kubeconfig: Path, reader: ReadGateway, ns: str
) -> None:
    api = KubeApi.from_kubeconfig(kubeconfig)  # ns has a Deployment web

    def policy(name: str, **spec: Any) -> dict[str, Any]:
        meta = {"name": name, "namespace": ns}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}

    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    allow = policy("allow-web", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"], ingress=[{}])
    # nothing isolates web yet: this policy would (only what it allows would reach web)
    with pytest.raises(Refusal, match="isolate"):
        await gw.write(Create(manifest=allow))
    # beside a default deny of ingress (the operator's), it only adds what web may receive
    await asyncio.to_thread(api.create, policy("default-deny", podSelector={}, policyTypes=["Ingress"]))
    assert (await gw.write(Create(manifest=allow))).ok
    await undo_all(gw, journal)
    assert await reader.get_object("NetworkPolicy", ns, "allow-web") is None
    gw.close()
    api.close()


async def test_a_no_execute_taint_is_refused_under_a_cluster_lease(kubeconfig: Path, reader: ReadGateway) -> None:
    # the taint manager would evict every pod on the node that does not tolerate it, in every namespace
    node = await a_node(reader)
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, "cluster", journal, fence)
    checkpoint = await reader.state_digest("cluster")
    taint = {"spec": {"taints": [{"key": "drain", "value": "now", "effect": "NoExecute"}]}}
    with pytest.raises(Refusal) as info:
        await gw.write(Patch(kind="Node", namespace=None, name=node, patch_type="merge", patch=taint))
    assert info.value.rule == "ready_capacity" and "NoExecute" in str(info.value)
    await gw.flush()
    # an update's intent is journaled ahead of its judgement and voided: the undoer skips it
    assert [(r.phase, r.ok) for r in journal.records] in ([], [("intent", None), ("outcome", False)])
    assert (await reader.state_digest("cluster")).digest == checkpoint.digest
    gw.close()


async def test_exec_runs_catalogue_operations(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    api = KubeApi.from_kubeconfig(kubeconfig)
    init = (
        "db = db.getSiblingDB('admin');\n"
        "db.createUser({user: 'app', pwd: 'pw', roles: [{role: 'readWrite', db: 'geo-db'}]});\n"
    )
    await asyncio.to_thread(
        api.create,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "initdb", "namespace": ns},
            "data": {"u.js": init},
        },
    )
    db = deployment("db", ns, replicas=1)
    pod_spec = db["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "init", "configMap": {"name": "initdb"}}]
    pod_spec["containers"][0]["volumeMounts"] = [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}]
    await asyncio.to_thread(api.create, db)
    api.close()

    async def running() -> list[str]:
        return [
            p["metadata"]["name"]
            for p in await reader.list_objects("Pod", ns, label_selector="app=db")
            if (p.get("status") or {}).get("phase") == "Running"
        ]

    async def any_running() -> bool:
        return bool(await running())

    await eventually(any_running)
    pod = (await running())[0]
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    user = {"db": "admin", "user": "app"}
    with pytest.raises(Refusal, match="no inverse in the data-plane catalogue"):
        await gw.write(Exec(namespace=ns, name=pod, operation="mongodb.drop_user", args=user))
    # a role the init scripts do not declare for the user is never granted
    root = {**user, "roles": [{"role": "root", "db": "admin"}]}
    refused = await gw.write(Exec(namespace=ns, name=pod, operation="mongodb.grant_roles", args=root))
    assert not refused.ok and not refused.executed and "declare no role root@admin" in refused.message
    roles = {**user, "roles": [{"role": "readWrite", "db": "geo-db"}]}
    result = await gw.write(Exec(namespace=ns, name=pod, operation="mongodb.grant_roles", args=roles))
    assert result.ok, result.message
    await gw.flush()
    intent, outcome = journal.records
    assert intent.undo[0].params["operation"] == "mongodb.revoke_roles" and outcome.ok is True
    assert intent.undo[0].params["args"] == roles
    undone = await gw.apply_undo(intent.undo[0])
    assert undone.ok, undone.message
    gw.close()


async def test_kubectl_lines_on_the_write_face(kubeconfig: Path, reader: ReadGateway, ns: str, tmp_path: Path) -> None:
    """The STRATUS paper's last step, a StorageClass applied from a file, in the cluster scope; and K."""
    (tmp_path / "sc.yaml").write_text(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: sc-"
        + ns
        + "\nprovisioner: openebs.io/local\nvolumeBindingMode: WaitForFirstConsumer\n"
    )
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, "cluster", journal, fence)
    gw.workdir = tmp_path
    checkpoint = await reader.state_digest("cluster")
    text = await gw.kubectl("kubectl apply -f sc.yaml")
    assert text.startswith(f"storageclass/sc-{ns} created (undo: delete the new StorageClass/sc-{ns})"), text
    assert f"sc-{ns}" in await reader.kubectl("kubectl get storageclass")
    await undo_all(gw, journal)
    assert (await reader.state_digest("cluster")).digest == checkpoint.digest
    gw.close()

    journal = Journal()
    gw = writer(kubeconfig, ns, journal, fence)
    gw.max_writes = 1
    assert "scaled" in await gw.kubectl(f"kubectl scale deploy/web --replicas=3 -n {ns}")
    refused = await gw.kubectl(f"kubectl scale deploy/web --replicas=4 -n {ns}")
    assert "bound K=1" in refused and gw.writes_left == 0
    gw.close()


# --- the ready-capacity guard: undo restores specs, not running processes ----------------------------------------


async def test_deleting_a_ready_pod_is_refused(kubeconfig: Path, reader: ReadGateway, ns: str) -> None:
    ready = [p for p in await reader.list_objects("Pod", ns, label_selector="app=web") if is_ready(p)]
    assert ready, "the fixture waits for web's pods to be Ready"
    pod = ready[0]["metadata"]["name"]
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    with pytest.raises(Refusal) as info:
        await gw.write(Delete(kind="Pod", namespace=ns, name=pod))
    assert info.value.rule == "ready_capacity"
    assert str(info.value) == (
        f"Write operation 'delete' on Pod/{ns}/{pod} refused: the pod is Ready, and undo restores specs, not running "
        "processes. Restart its workload with `kubectl rollout restart` (a rolling update keeps Ready pods until their "
        "replacements are Ready), or act on pods that are not Ready."
    )
    assert journal.records == [] and fence.calls == 0 and gw.writes == 0
    still = await reader.get_object("Pod", ns, pod)
    assert still is not None and not still["metadata"].get("deletionTimestamp")
    # An agent's command line gets the same refusal as text.
    text = await gw.kubectl(f"kubectl delete pod {pod} -n {ns}")
    assert text.startswith(f"Write operation 'delete' on Pod/{ns}/{pod} refused: the pod is Ready"), text
    assert journal.records == []
    gw.close()


@pytest.mark.parametrize(
    ("action", "says"),
    [
        (Scale(kind="Deployment", namespace="x", name="web", replicas=0), "scaling it to 0 replicas terminates"),
        (
            Scale(kind="Deployment", namespace="x", name="web", replicas=1),
            "scaling it to 1 replica terminates some of its 2 Ready pods",
        ),
        (Delete(kind="Deployment", namespace="x", name="web"), "it has 2 Ready pods, and deleting it terminates"),
    ],
    ids=["scale-to-0", "scale-below-ready", "delete-deployment"],
)
async def test_taking_down_ready_replicas_is_refused(
    action: Action, says: str, kubeconfig: Path, reader: ReadGateway, ns: str
) -> None:
    action = action.model_copy(update={"namespace": ns})
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    checkpoint = await reader.state_digest(ns)
    with pytest.raises(Refusal) as info:
        await gw.write(action)
    assert info.value.rule == "ready_capacity"
    assert str(info.value).startswith(f"Write operation '{action.verb}' on Deployment/{ns}/web refused: ")
    assert says in str(info.value) and "undo restores specs, not running processes" in str(info.value)
    assert journal.records == [] and fence.calls == 0
    assert (await reader.state_digest(ns)).digest == checkpoint.digest
    web = await reader.get_object("Deployment", ns, "web")
    assert web is not None and web["spec"]["replicas"] == 2
    gw.close()


async def test_rollout_restart_of_a_one_replica_deployment_is_allowed(
    kubeconfig: Path, reader: ReadGateway, ns: str
) -> None:
    """maxUnavailable 25% of 1 replica rounds down to 0: the Ready pod stays until its replacement is Ready."""
    api = KubeApi.from_kubeconfig(kubeconfig)
    await asyncio.to_thread(api.create, deployment("solo", ns, replicas=1))
    await settled(api, ns, "solo")
    api.close()
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    result = await gw.write(RolloutRestart(kind="Deployment", namespace=ns, name="solo"))
    assert result.ok, result.message
    await gw.flush()
    assert [r.phase for r in journal.records] == ["intent", "outcome"] and fence.calls == 1

    async def rolled_out() -> bool:
        text = await reader.kubectl(f"kubectl rollout status deploy/solo -n {ns}")
        return text == 'deployment "solo" successfully rolled out'

    await eventually(rolled_out)
    gw.close()


@pytest.mark.slow
async def test_write_overhead_benchmark(
    kubeconfig: Path, ns: str, nats_server: Any, redis_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-write cost of the gateway (dry run + pre-image + JetStream journal + Redis fence + write) vs a bare write,
    and the time to undo 20 journaled writes. Prints the figures (run with -s to see them)."""
    import statistics
    import time

    import redis.asyncio as aioredis

    from stratus.alock import ALock
    from stratus.bus import Bus
    from stratus.journal import Journal as JetStreamJournal

    n = 50
    api = KubeApi.from_kubeconfig(kubeconfig)
    bare: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        await asyncio.to_thread(api.patch, "ConfigMap", ns, "conf", {"data": {"k": str(i)}}, "merge")
        bare.append(time.perf_counter() - t)
    bus = await Bus.connect(nats_server.url)
    await bus.ensure_streams()
    journal = JetStreamJournal(bus)
    redis = aioredis.Redis.from_url(redis_server.url)
    lock = ALock(redis, prefix=f"bench-{uuid.uuid4().hex[:6]}")
    lease = await lock.acquire_write(ns, "bench", 60)
    tx = f"tx-{uuid.uuid4().hex[:8]}"
    gw = WriteGateway(
        api,
        lease=lease,
        check_fence=lock.ensure_fence,
        journal_intent=journal.append,
        journal_outcome=journal.append,
        incident_id="bench",
        tx_id=tx,
        attempt=1,
    )
    gated: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        result = await gw.write(
            Patch(kind="ConfigMap", namespace=ns, name="conf", patch_type="merge", patch={"data": {"k": f"g{i}"}})
        )
        gated.append(time.perf_counter() - t)
        assert result.ok, result.message
    await gw.flush()
    intents = [r for r in await journal.read(tx) if r.phase == "intent"][-20:]
    t = time.perf_counter()
    for record in reversed(intents):
        for spec in record.undo:
            assert (await gw.apply_undo(spec)).ok
    undo_s = time.perf_counter() - t
    b50, g50 = statistics.median(bare), statistics.median(gated)
    with capsys.disabled():
        print(
            f"\ngateway write p50 {g50 * 1000:.1f} ms vs bare API write p50 {b50 * 1000:.1f} ms "
            f"(ratio {g50 / b50:.1f}x, n={n}); undo of 20 journaled writes {undo_s * 1000:.0f} ms"
        )
    assert g50 / b50 < 20
    await lock.release(lease)
    await lock.aclose()
    await bus.close()
    await redis.aclose()
    api.close()


async def test_a_second_write_reuses_its_own_response_as_pre_image_and_an_outside_change_is_caught(
    kubeconfig: Path, ns: str
) -> None:
    """Writing a status-less object twice reads it once: the first write's response is the second's candidate
    pre-image, proved current by the resourceVersion precondition of the dry run. When something else changed the
    object in between, the dry run conflicts and the gateway reads it again: the journaled pre-image (and so the undo)
    is the object as it really was before the second write."""
    journal, fence = Journal(), Fence()
    gw = writer(kubeconfig, ns, journal, fence)
    reads: list[str] = []
    pre_image_sync = gw._pre_image_sync

    def counting(action: Action) -> Any:
        reads.append(action.verb)
        return pre_image_sync(action)

    gw._pre_image_sync = counting  # type: ignore[method-assign]

    def patch(value: str) -> Patch:
        return Patch(kind="ConfigMap", namespace=ns, name="conf", patch_type="merge", patch={"data": {"k": value}})

    assert (await gw.write(patch("1"))).ok
    assert (await gw.write(patch("2"))).ok
    assert reads == ["patch"]  # the second write's pre-image is the first write's response
    intents = journal.phase("intent")
    assert intents[1].pre_image is not None and intents[1].pre_image["data"] == {"k": "1"}

    outside = KubeApi.from_kubeconfig(kubeconfig)
    await asyncio.to_thread(outside.patch, "ConfigMap", ns, "conf", {"data": {"k": "outside"}}, "merge")
    outside.close()
    assert (await gw.write(patch("3"))).ok
    assert reads == ["patch", "patch"]  # the remembered object was stale: read again
    # The intent journaled beside the dry run on the stale pre-image is voided (the undoer skips it); the write's own
    # intent holds the object as it really was.
    stale, third = journal.phase("intent")[2:]
    voids = [r for r in journal.phase("outcome") if r.seq == stale.seq]
    assert stale.pre_image is not None and stale.pre_image["data"] == {"k": "2"} and [v.ok for v in voids] == [False]
    assert [r.seq for r in undo_plan(journal.records)] == [third.seq, 2, 1]
    assert third.pre_image is not None and third.pre_image["data"] == {"k": "outside"}
    restore = third.undo[0]
    assert isinstance(restore, Replace) and restore.manifest["data"] == {"k": "outside"}
    await gw.apply_undo(third.undo[0])
    got = await asyncio.to_thread(gw.api.get, "ConfigMap", ns, "conf")
    assert got is not None and got["data"] == {"k": "outside"}
    gw.close()
