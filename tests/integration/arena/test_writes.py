"""Writes with both conformance clients: scale, the three patch types, set image/env, apply, create, delete."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from arena.server import ArenaServer
from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, CLIENTS, deployment, to_yaml

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def _ready(apps: client.AppsV1Api, ns: str, name: str, n: int) -> None:
    def ok() -> bool:
        d = apps.read_namespaced_deployment(name, ns)
        return (
            d.status.observed_generation == d.metadata.generation
            and d.status.ready_replicas == n
            and d.status.updated_replicas == n
            and (d.status.replicas or 0) == n
        )

    wait_for(ok, 15, what=f"deployment {name} to have {n} ready replicas")


@pytest.mark.parametrize("via", CLIENTS)
def test_scale(via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=1))
    if via == "python":
        apps.patch_namespaced_deployment_scale("web", arena_ns, {"spec": {"replicas": 3}})
        assert apps.read_namespaced_deployment_scale("web", arena_ns).spec.replicas == 3
    else:
        assert "scaled" in kubectl("scale", "deploy", "web", "--replicas=3", ns=arena_ns)
    _ready(apps, arena_ns, "web", 3)
    pods = client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns, label_selector="app=web").items
    assert len(pods) == 3


@pytest.mark.parametrize("via", CLIENTS)
@pytest.mark.parametrize("kind", ["strategic", "merge", "json"])
def test_patch_types(kind: str, via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    dep = deployment("web", replicas=1)
    dep["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    apps.create_namespaced_deployment(arena_ns, dep)
    patches = {
        # Strategic merge: containers merge by name, env by name, ports by containerPort.
        "strategic": {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "env": [{"name": "EXTRA", "value": "1"}],
                                "ports": [{"containerPort": 9090}],
                            }
                        ]
                    }
                }
            }
        },
        "merge": {"spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}},
        "json": [
            {"op": "replace", "path": "/spec/replicas", "value": 2},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "J", "value": "x"}},
        ],
    }
    if via == "python":
        if kind == "strategic":
            apps.patch_namespaced_deployment("web", arena_ns, patches[kind])
        else:
            ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}[kind]
            k8s_client.set_default_header("Content-Type", ctype)
            try:
                apps.patch_namespaced_deployment("web", arena_ns, patches[kind], _content_type=ctype)
            finally:
                k8s_client.default_headers.pop("Content-Type", None)
    else:
        kubectl("patch", "deploy", "web", f"--type={kind}", "-p", json.dumps(patches[kind]), ns=arena_ns)
    d = apps.read_namespaced_deployment("web", arena_ns)
    main = next(c for c in d.spec.template.spec.containers if c.name == "main")
    assert [c.name for c in d.spec.template.spec.containers] == ["main", "side"]
    if kind == "strategic":
        assert [e.name for e in main.env] == ["MODE", "EXTRA"]
        assert sorted(p.container_port for p in main.ports) == [8080, 9090]
    elif kind == "merge":
        assert d.spec.replicas == 2 and d.spec.template.metadata.labels == {"app": "web", "v": "2"}
    else:
        assert d.spec.replicas == 2 and [e.name for e in main.env] == ["MODE", "J"]
    assert d.metadata.generation == 2


@pytest.mark.parametrize("via", CLIENTS)
def test_set_image_and_env(via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=2))
    _ready(apps, arena_ns, "web", 2)
    if via == "kubectl":
        kubectl("set", "image", "deploy/web", "main=nginx:1.27", ns=arena_ns)
        kubectl("set", "env", "deploy/web", "MODE=debug", "NEW=1", ns=arena_ns)
    else:
        apps.patch_namespaced_deployment(
            "web",
            arena_ns,
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "nginx:1.27",
                                    "env": [{"name": "MODE", "value": "debug"}, {"name": "NEW", "value": "1"}],
                                }
                            ]
                        }
                    }
                }
            },
        )
    _ready(apps, arena_ns, "web", 2)
    pods = client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns, label_selector="app=web").items
    live = [p for p in pods if not p.metadata.deletion_timestamp]
    assert {p.spec.containers[0].image for p in live} == {"nginx:1.27"}
    assert {(e.name, e.value) for e in live[0].spec.containers[0].env} == {("MODE", "debug"), ("NEW", "1")}


def test_apply_creates_then_updates_with_last_applied(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    dep = deployment("web", replicas=1)
    dep["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "DROP", "value": "me"})
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    out = kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(dep, svc))
    assert "deployment.apps/web created" in out and "service/web created" in out
    ann = apps.read_namespaced_deployment("web", arena_ns).metadata.annotations
    assert "kubectl.kubernetes.io/last-applied-configuration" in ann
    # A field removed from the manifest is removed from the object (3-way merge); others are kept.
    dep["spec"]["replicas"] = 2
    dep["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    out = kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(dep, svc))
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out
    d = apps.read_namespaced_deployment("web", arena_ns)
    assert d.spec.replicas == 2 and [e.name for e in d.spec.template.spec.containers[0].env] == ["MODE"]
    wait_for(
        lambda: client.CoreV1Api(k8s_client).read_namespaced_endpoints("web", arena_ns).subsets,
        what="service endpoints",
    )


@pytest.mark.parametrize("via", CLIENTS)
def test_create(via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    if via == "kubectl":
        assert "created" in kubectl("create", "-f", "-", ns=arena_ns, input=to_yaml(deployment("a")))
        assert "created" in kubectl("create", "deployment", "b", "--image=nginx:1.25", "--replicas=2", ns=arena_ns)
        assert "created" in kubectl("create", "configmap", "cfg", "--from-literal=k=v", ns=arena_ns)
        assert "created" in kubectl("create", "secret", "generic", "pw", "--from-literal=p=s3cret", ns=arena_ns)
    else:
        apps.create_namespaced_deployment(arena_ns, deployment("a"))
        apps.create_namespaced_deployment(arena_ns, deployment("b"))
    _ready(apps, arena_ns, "a", 2)
    _ready(apps, arena_ns, "b", 2)
    if via == "kubectl":
        core = client.CoreV1Api(k8s_client)
        assert core.read_namespaced_config_map("cfg", arena_ns).data == {"k": "v"}
        assert core.read_namespaced_secret("pw", arena_ns).data == {"p": "czNjcmV0"}


@pytest.mark.parametrize("via", CLIENTS)
@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_cascades_through_owner_references(
    cascade: str, via: str, arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    core = client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=2))
    _ready(apps, arena_ns, "web", 2)
    if via == "kubectl":
        kubectl("delete", "deploy", "web", f"--cascade={cascade}", ns=arena_ns)
    else:
        apps.delete_namespaced_deployment("web", arena_ns, propagation_policy=cascade.capitalize())
    wait_for(lambda: not apps.list_namespaced_deployment(arena_ns).items, what="deployment gone")
    if cascade == "orphan":
        rs = apps.list_namespaced_replica_set(arena_ns).items
        assert len(rs) == 1 and not rs[0].metadata.owner_references
        assert len(core.list_namespaced_pod(arena_ns).items) == 2
        return
    wait_for(lambda: not apps.list_namespaced_replica_set(arena_ns).items, what="replica sets deleted")
    wait_for(lambda: not core.list_namespaced_pod(arena_ns).items, what="pods deleted")
    reasons = {e.reason for e in core.list_namespaced_event(arena_ns).items}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Killing"} <= reasons


def test_deletecollection_and_pod_replacement(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    core = client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=3))
    _ready(apps, arena_ns, "web", 3)
    old = {p.metadata.name for p in core.list_namespaced_pod(arena_ns).items}
    victim = sorted(old)[0]
    kubectl("delete", "pod", victim, ns=arena_ns)
    _ready(apps, arena_ns, "web", 3)
    now = {p.metadata.name for p in core.list_namespaced_pod(arena_ns).items if not p.metadata.deletion_timestamp}
    assert victim not in now and len(now) == 3
    core.delete_collection_namespaced_pod(arena_ns, label_selector="app=web")
    wait_for(
        lambda: not (old | now) & {p.metadata.name for p in core.list_namespaced_pod(arena_ns).items},
        what="the collection deleted",
    )
    _ready(apps, arena_ns, "web", 3)


def test_kubectl_run_expose_and_server_side_apply(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    assert "pod/box created" in kubectl(
        "run", "box", "--image=nginx:1.25", "--labels=app=box", "--port=80", ns=arena_ns
    )
    assert "exposed" in kubectl("expose", "pod", "box", "--port=80", "--name=box", ns=arena_ns)
    wait_for(lambda: core.read_namespaced_endpoints("box", arena_ns).subsets, what="endpoints of the exposed pod")
    dep = deployment("ssa", replicas=1)
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", ns=arena_ns, input=to_yaml(dep))
    dep["spec"]["replicas"] = 3
    kubectl("apply", "--server-side", "-f", "-", ns=arena_ns, input=to_yaml(dep))
    assert client.AppsV1Api(k8s_client).read_namespaced_deployment("ssa", arena_ns).spec.replicas == 3
