"""State digests: server-managed noise is ignored, declared changes are not, divergences are explained."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from stratus.digest import diff_snapshots, digest_of, normalise


def deployment(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "10",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "3", "team": "a"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
                        {"name": "side", "image": "envoy:1"},
                    ]
                },
            },
        },
        "status": {"readyReplicas": 2, "observedGeneration": 3},
    }
    obj.update(changes)
    return obj


def test_server_managed_fields_are_noise() -> None:
    a = deployment()
    b = copy.deepcopy(a)
    b["metadata"].update(uid="u-2", resourceVersion="99", generation=7, creationTimestamp="2026-02-02T00:00:00Z")
    b["metadata"]["managedFields"] = []
    b["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    b["status"] = {"readyReplicas": 0}
    assert digest_of("shop", [a]).digest == digest_of("shop", [b]).digest
    norm = normalise(a)
    assert "status" not in norm and "uid" not in norm["metadata"]
    assert norm["metadata"]["annotations"] == {"team": "a"}


def test_declared_changes_are_not_noise() -> None:
    base = digest_of("shop", [deployment()])
    mutations: list[Callable[[dict[str, Any]], Any]] = [
        lambda d: d["spec"].update(replicas=0),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="web:2"),
        lambda d: d["metadata"]["labels"].update(x="y"),
        lambda d: d["spec"]["template"]["metadata"].update(
            annotations={"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
        ),
    ]
    for mutate in mutations:
        d = deployment()
        mutate(d)
        assert digest_of("shop", [d]).digest != base.digest


def test_key_order_does_not_matter() -> None:
    a = deployment()
    b = {k: a[k] for k in reversed(list(a))}
    assert digest_of("s", [a]).digest == digest_of("s", [b]).digest


def test_diff_explains_field_by_field() -> None:
    expected = digest_of("shop", [deployment()])
    d = deployment()
    d["spec"]["replicas"] = 0
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    d["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "2"}]
    found = digest_of("shop", [d])
    divs = {(x.field, x.expected, x.found) for x in diff_snapshots(expected.objects, found.objects)}
    assert divs == {
        ("spec.replicas", 2, 0),
        ("spec.template.spec.containers[name=app].image", "web:1", "web:2"),
        ("spec.template.spec.containers[name=app].env[name=A].value", "1", "2"),
    }
    assert all(x.object == "Deployment/shop/web" for x in diff_snapshots(expected.objects, found.objects))


def test_diff_missing_and_extra_objects() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"a": "b"}}
    expected = digest_of("shop", [deployment()])
    found = digest_of("shop", [cm])
    divs = {(x.object, x.field, x.expected, x.found) for x in diff_snapshots(expected.objects, found.objects)}
    assert divs == {
        ("Deployment/shop/web", "(object)", "present", None),
        ("ConfigMap/shop/c", "(object)", None, "present"),
    }


def test_service_cluster_ip_and_pv_binding_are_outcomes() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}}
    a = {**svc, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80}]}}
    b = {**svc, "spec": {"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.2"], "ports": [{"port": 80}]}}
    assert digest_of("n", [a]).digest == digest_of("n", [b]).digest
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "n"}}
    bound = {**pvc, "spec": {"volumeName": "pv-1", "storageClassName": "fast"}}
    unbound = {**pvc, "spec": {"storageClassName": "fast"}}
    assert digest_of("n", [bound]).digest == digest_of("n", [unbound]).digest


def test_node_schedulability_only() -> None:
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"x": "y"}},
        "spec": {"podCIDR": "10.1.0.0/24", "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
        "status": {"conditions": []},
    }
    cordoned = copy.deepcopy(node)
    cordoned["spec"]["unschedulable"] = True
    relabelled = copy.deepcopy(node)
    relabelled["metadata"]["labels"] = {}
    assert digest_of("cluster", [node]).digest == digest_of("cluster", [relabelled]).digest
    assert digest_of("cluster", [node]).digest != digest_of("cluster", [cordoned]).digest
    tainted = copy.deepcopy(node)
    tainted["spec"]["taints"].append({"key": "gpu", "effect": "NoSchedule", "timeAdded": "now"})
    assert normalise(tainted)["spec"] == {"unschedulable": False, "taints": [{"key": "gpu", "effect": "NoSchedule"}]}


def test_secret_values_are_hashed() -> None:
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "n"}}
    secret["data"] = {"password": "aHVudGVyMg=="}
    norm = normalise(secret)
    assert "hunter2" not in str(norm) and "aHVudGVyMg==" not in str(norm)
    other = {**secret, "data": {"password": "b3RoZXI="}}
    assert diff_snapshots(digest_of("n", [secret]).objects, digest_of("n", [other]).objects)[0].field == "data.password"
