"""The scheduler: cordoned nodes, node selectors, taints and tolerations, resource requests, with real wording."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from arena.server import ArenaServer
from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, deployment, pod

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def _failed_scheduling(core: client.CoreV1Api, ns: str, name: str) -> str:
    def msg() -> str | None:
        for e in core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items:
            if e.reason == "FailedScheduling":
                return str(e.message)
        return None

    return str(wait_for(msg, what=f"FailedScheduling for {name}"))


@pytest.fixture
def cordoned(kubectl: Kubectl) -> Iterator[list[str]]:
    nodes = ["node-1", "node-2"]
    for n in nodes:
        assert "cordoned" in kubectl("cordon", n)
    yield nodes
    for n in nodes:
        kubectl("uncordon", n)


def test_cordoned_nodes_get_no_new_pods(
    cordoned: list[str], arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    assert "SchedulingDisabled" in kubectl("get", "node", "node-1")
    node = client.CoreV1Api(k8s_client).read_node("node-1")
    assert node.spec.unschedulable and any(t.key == "node.kubernetes.io/unschedulable" for t in node.spec.taints)
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=4))
    wait_for(lambda: apps.read_namespaced_deployment("web", arena_ns).status.ready_replicas == 4, what="ready")
    pods = client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns).items
    assert {p.spec.node_name for p in pods} == {"node-3"}


def test_node_selector_mismatch_reports_failed_scheduling(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("lost", nodeSelector={"kubernetes.io/hostname": "node-9"}))
    msg = _failed_scheduling(core, arena_ns, "lost")
    assert msg == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 "
        "nodes are available: 3 Preemption is not helpful for scheduling."
    )
    p = core.read_namespaced_pod("lost", arena_ns)
    assert p.status.phase == "Pending" and p.status.conditions[0].reason == "Unschedulable"
    assert "FailedScheduling" in kubectl("describe", "pod", "lost", ns=arena_ns)


def test_insufficient_cpu(arena_ns: str, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    big = pod("big")
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64", "memory": "1Gi"}}
    core.create_namespaced_pod(arena_ns, big)
    assert _failed_scheduling(core, arena_ns, "big") == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims "
        "found for incoming pod."
    )


def test_taints_and_tolerations(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    kubectl("taint", "nodes", "node-1", "dedicated=db:NoSchedule")
    try:
        core.create_namespaced_pod(arena_ns, pod("pinned", nodeSelector={"kubernetes.io/hostname": "node-1"}))
        assert _failed_scheduling(core, arena_ns, "pinned") == (
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) didn't match Pod's "
            "node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        )
        tolerant = pod(
            "tolerant",
            nodeSelector={"kubernetes.io/hostname": "node-1"},
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        )
        core.create_namespaced_pod(arena_ns, tolerant)
        wait_for(lambda: core.read_namespaced_pod("tolerant", arena_ns).status.phase == "Running", what="running")
        assert core.read_namespaced_pod("tolerant", arena_ns).spec.node_name == "node-1"
    finally:
        kubectl("taint", "nodes", "node-1", "dedicated=db:NoSchedule-")


def test_node_not_ready_and_node_deletion(
    arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    apps = client.AppsV1Api(k8s_client)
    arena.cluster.add_node("node-extra", labels={"pool": "extra"})
    try:
        dep = deployment("web", replicas=2)
        dep["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "extra"}
        apps.create_namespaced_deployment(arena_ns, dep)
        wait_for(lambda: apps.read_namespaced_deployment("web", arena_ns).status.ready_replicas == 2, what="ready")
        arena.cluster.set_node_ready("node-extra", False)
        assert "NotReady" in kubectl("get", "node", "node-extra")
        wait_for(
            lambda: not apps.read_namespaced_deployment("web", arena_ns).status.ready_replicas,
            what="pods of a NotReady node to turn unready",
        )
        arena.cluster.set_node_ready("node-extra", True)
        wait_for(lambda: apps.read_namespaced_deployment("web", arena_ns).status.ready_replicas == 2, what="ready")
        kubectl("delete", "node", "node-extra")
        wait_for(
            lambda: (
                all(p.status.phase == "Pending" for p in core.list_namespaced_pod(arena_ns).items)
                and len(core.list_namespaced_pod(arena_ns).items) == 2
            ),
            what="replacement pods pending",
        )
    finally:
        arena.cluster.delete("Node", None, "node-extra")
