"""Namespaces, watches, describe and events, with both conformance clients."""

from __future__ import annotations

import subprocess
import threading

import pytest
from kubernetes import client, watch

from arena.server import ArenaServer
from tests.fixtures_arena import KUBECTL, Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, CLIENTS, deployment, pod, to_yaml

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


@pytest.mark.parametrize("via", CLIENTS)
def test_namespace_deletion_terminates_then_removes_contents(
    via: str, arena: ArenaServer, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    ns = f"gone-{via}"
    core.create_namespace({"metadata": {"name": ns}})
    client.AppsV1Api(k8s_client).create_namespaced_deployment(ns, deployment("web", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod(ns).items) == 2, what="pods")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    if via == "python":
        core.delete_namespace(ns)
        assert core.read_namespace(ns).status.phase == "Terminating"
        with pytest.raises(client.ApiException) as exc:
            core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
        assert exc.value.status == 403 and "because it is being terminated" in exc.value.body
    else:
        kubectl("delete", "namespace", ns, "--wait=false")
        assert "Terminating" in kubectl("get", "ns", ns)
    wait_for(lambda: not core.list_namespaced_pod(ns).items, what="pods deleted while the namespace terminates")
    assert core.read_namespace(ns).status.phase == "Terminating"
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    wait_for(lambda: ns not in {n.metadata.name for n in core.list_namespace().items}, 15, what="namespace gone")
    assert not [p for p in core.list_pod_for_all_namespaces().items if p.metadata.namespace == ns]
    r = kubectl.run("delete", "namespace", "default", check=False)
    assert r.returncode == 1 and 'namespaces "default" is forbidden: this namespace may not be deleted' in r.stderr


def test_watch_with_python_client(arena_ns: str, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    seen: list[tuple[str, str]] = []
    rv = core.list_namespaced_pod(arena_ns).metadata.resource_version
    done = threading.Event()

    def watch_pods() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, arena_ns, resource_version=rv, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].status.phase or ""))
            if ev["type"] == "DELETED":
                w.stop()
        done.set()

    t = threading.Thread(target=watch_pods, daemon=True)
    t.start()
    core.create_namespaced_pod(arena_ns, pod("watched"))
    wait_for(lambda: ("MODIFIED", "Running") in seen, what="a MODIFIED Running event")
    core.delete_namespaced_pod("watched", arena_ns)
    assert done.wait(10)
    assert seen[0][0] == "ADDED" and seen[-1][0] == "DELETED"


def test_kubectl_get_watch(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "--cache-dir",
            str(kubectl.cache / "cache"),
            "-n",
            arena_ns,
            "get",
            "pods",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=kubectl.env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        client.CoreV1Api(k8s_client).create_namespaced_pod(arena_ns, pod("w1"))
        wait_for(lambda: any("w1" in line and "Running" in line for line in lines), what="kubectl -w to show Running")
    finally:
        proc.terminate()
        proc.wait(5)
        reader.join(5)
        proc.stdout.close()  # type: ignore[union-attr]
    assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]


def test_describe_pod_deployment_service_pvc_node(arena_ns: str, kubectl: Kubectl) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(deployment("web", replicas=2), svc, pvc))
    wait_for(lambda: "2/2" in kubectl("get", "deploy", "web", ns=arena_ns), what="ready")
    name = kubectl("get", "pods", "-o", "name", ns=arena_ns).split()[0].split("/")[1]
    out = kubectl("describe", "pod", name, ns=arena_ns)
    for want in (
        "Status:           Running",
        "Controlled By:  ReplicaSet/web-",
        "State:          Running",
        "Successfully assigned",
        "Started container main",
        "Ready                       True",
    ):
        assert want in out, want
    out = kubectl("describe", "deployment", "web", ns=arena_ns)
    assert "2 desired | 2 updated | 2 total | 2 available | 0 unavailable" in out and "ScalingReplicaSet" in out
    out = kubectl("describe", "service", "web", ns=arena_ns)
    assert "TargetPort:               8080/TCP" in out and out.count(":8080") >= 2
    out = kubectl("describe", "pvc", "data", ns=arena_ns)
    assert "Status:        Pending" in out and "FailedBinding" in out
    out = kubectl("describe", "node", "node-1")
    assert "Ready            True" in out and "Non-terminated Pods:" in out and "Allocated resources:" in out
    events = kubectl("get", "events", ns=arena_ns)
    assert "LAST SEEN" in events.splitlines()[0] and "SuccessfulCreate" in events
