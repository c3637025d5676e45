"""The last-known-good memory's pure parts: normalisation, the healthy clock, capture and bounds."""

from __future__ import annotations

import asyncio
from typing import Any

from stratus.contracts import Severity
from stratus.lastgood import (
    HealthyClock,
    LastGood,
    LastGoodRecorder,
    attach,
    bounded,
    capture,
    normalise,
)

Obj = dict[str, Any]


def deployment(image: str = "app:1", rv: str = "1") -> Obj:
    return {
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": rv,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": rv, "team": "a"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": rv}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
        "status": {"replicas": 1, "readyReplicas": 1},
    }


def test_normalise_drops_what_the_server_writes() -> None:
    a, b = normalise("Deployment", deployment(rv="1")), normalise("Deployment", deployment(rv="7"))
    assert a == b
    assert "status" not in a and "uid" not in a["metadata"]
    assert a["metadata"]["annotations"] == {"team": "a"}
    assert normalise("Deployment", deployment(image="app:2")) != a


def test_secrets_are_kept_by_hash_only() -> None:
    secret = {"metadata": {"name": "db", "namespace": "ns"}, "data": {"password": "c2VjcmV0"}}
    norm = normalise("Secret", secret)
    assert "data" not in norm and norm["keys"] == ["password"] and norm["hash"].startswith("sha256:")
    assert "c2VjcmV0" not in str(norm)
    rotated = normalise("Secret", {**secret, "data": {"password": "b3RoZXI="}})
    assert rotated["hash"] != norm["hash"]


def test_nodes_keep_schedulability_taints_and_capacity() -> None:
    node = {
        "metadata": {"name": "n1", "labels": {"zone": "a"}, "resourceVersion": "9"},
        "spec": {
            "unschedulable": True,
            "podCIDR": "10.0.0.0/24",
            "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule", "timeAdded": "t"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
            ],
        },
        "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    norm = normalise("Node", node)
    assert norm["spec"] == {
        "unschedulable": True,
        "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    }
    assert norm["allocatable"] == {"cpu": "4"}


def test_the_clock_records_after_the_settle_time_and_refreshes() -> None:
    clock = HealthyClock(settle_s=10, refresh_s=100)
    assert not clock.observe("ns", True, 0)
    assert not clock.observe("ns", True, 9)
    assert clock.observe("ns", True, 10)
    clock.recorded("ns", 10)
    assert not clock.observe("ns", True, 50)
    assert clock.observe("ns", True, 110)
    assert not clock.observe("ns", False, 111)  # unhealthy: the settle time starts again
    assert not clock.observe("ns", True, 112)
    assert clock.observe("ns", True, 122)  # healthy again after an incident: a fresh record at once


class Lister:
    def __init__(self, objects: dict[str, list[Obj]]) -> None:
        self.objects = objects

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        if kind not in self.objects:
            raise RuntimeError(f"the server does not serve {kind}")
        return self.objects[kind]


CLUSTER = {
    "Deployment": [deployment()],
    "Service": [
        {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"selector": {"app": "web"}, "clusterIP": "1"}}
    ],
    "PersistentVolumeClaim": [{"metadata": {"name": "data", "namespace": "ns"}, "spec": {"storageClassName": "sc"}}],
    "PersistentVolume": [
        {"metadata": {"name": "pv-mine"}, "spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "x"}}},
        {"metadata": {"name": "pv-other"}, "spec": {"claimRef": {"namespace": "other", "name": "x"}}},
    ],
    "Node": [{"metadata": {"name": "n1"}, "spec": {}}],
}


def test_capture_keeps_the_scope_and_its_dependencies_and_notes_what_was_read() -> None:
    snap = asyncio.run(capture(Lister(CLUSTER), "ns", now=5.0))
    assert set(snap.objects) == {
        "Deployment/ns/web",
        "Service/ns/web",
        "PersistentVolumeClaim/ns/data",
        "PersistentVolume/pv-mine",
        "Node/n1",
    }
    assert "NetworkPolicy" not in snap.kinds and "Deployment" in snap.kinds
    assert snap.objects["PersistentVolume/pv-mine"]["spec"]["claimRef"] == {"namespace": "ns", "name": "data"}
    assert LastGood.from_bytes(snap.to_bytes()) == snap


def test_a_snapshot_is_bounded() -> None:
    big = {"metadata": {"name": "cfg", "namespace": "ns"}, "data": {f"k{i}": "x" * 60 for i in range(60)}}
    snap = asyncio.run(capture(Lister({"ConfigMap": [big]}), "ns"))
    assert "data" in snap.objects["ConfigMap/ns/cfg"] or "keys" in snap.objects["ConfigMap/ns/cfg"]
    small = LastGood(
        scope="ns", taken_at=0, objects={f"ConfigMap/ns/c{i}": {"data": {"k": str(i) * 3000}} for i in range(40)}
    )
    assert bounded(small, 100) is None
    assert bounded(small, 1_000_000) is not None


class Store:
    def __init__(self) -> None:
        self.put_count = 0

    async def put(self, snap: LastGood) -> bool:
        self.put_count += 1
        return True


def test_the_recorder_records_only_a_settled_healthy_scope() -> None:
    store = Store()
    rec = LastGoodRecorder(store, Lister(CLUSTER), HealthyClock(settle_s=5, refresh_s=60))  # type: ignore[arg-type]

    sick, well = Severity(mu=2.0), Severity(mu=0.0)

    async def run(probes: list[tuple[Severity, float]]) -> list[bool]:
        return [await rec.observe("ns", s, t) for s, t in probes]

    # Healthy from 4; at 9 it has settled: a snapshot is taken, and kept at 14 if nothing went wrong meanwhile.
    assert asyncio.run(run([(well, 0), (sick, 3), (well, 4), (well, 9), (well, 10), (well, 14), (well, 15)])) == [
        *[False] * 5,
        True,
        False,
    ]
    assert store.put_count == 1
    # A snapshot taken just before the harm shows is dropped, never recorded.
    rec.clock.recorded_at.clear()
    assert asyncio.run(run([(well, 20), (sick, 23), (well, 24), (well, 27), (well, 28)])) == [False] * 5
    assert store.put_count == 1


def test_attach_reaches_wrapped_rulebook_reasoners() -> None:
    from stratus.reasoners.rulebook import RulebookDiagnosisReasoner, RulebookMitigationReasoner

    async def source(scope: str) -> LastGood | None:
        return None

    diag = RulebookDiagnosisReasoner()
    assert attach(diag, source) == 1 and diag.lastgood is source
    mit = RulebookMitigationReasoner()
    assert attach(mit, source) == 1
