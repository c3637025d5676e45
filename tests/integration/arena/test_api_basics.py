"""Discovery, reads with selectors, Status errors and server-side dry run, with both conformance clients."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from arena.server import ArenaServer
from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, CLIENTS, deployment, pod, status_of, to_yaml

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def test_discovery_serves_every_resource_kubectl_needs(kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    out = kubectl("api-resources", "-o", "name")
    for name in (
        "pods",
        "services",
        "persistentvolumeclaims",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "storageclasses.storage.k8s.io",
        "networkpolicies.networking.k8s.io",
        "events",
        "configmaps",
        "secrets",
        "nodes",
        "namespaces",
        "endpoints",
        "serviceaccounts",
    ):
        assert name in out.split()
    assert client.VersionApi(k8s_client).get_code().git_version.startswith("v1.37")
    assert "apps" in [g.name for g in client.ApisApi(k8s_client).get_api_versions().groups]


@pytest.mark.parametrize("via", CLIENTS)
def test_list_with_label_and_field_selectors(
    via: str, arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("a", labels={"app": "shop", "tier": "web"}))
    core.create_namespaced_pod(arena_ns, pod("b", labels={"app": "shop", "tier": "db"}))
    core.create_namespaced_pod(arena_ns, pod("c", labels={"app": "other"}, nodeSelector={"disk": "none"}))
    wait_for(lambda: core.read_namespaced_pod("b", arena_ns).status.phase == "Running", what="pod b running")
    wait_for(lambda: core.read_namespaced_pod("a", arena_ns).spec.node_name, what="pod a scheduled")
    node_a = core.read_namespaced_pod("a", arena_ns).spec.node_name

    def names(label: str | None = None, field: str | None = None) -> set[str]:
        if via == "python":
            kw = {k: v for k, v in (("label_selector", label), ("field_selector", field)) if v}
            return {p.metadata.name for p in core.list_namespaced_pod(arena_ns, **kw).items}
        args = (
            ["get", "pods", "-o", "name"]
            + (["-l", label] if label else [])
            + (["--field-selector", field] if field else [])
        )
        return {line.split("/", 1)[1] for line in kubectl(*args, ns=arena_ns).split()}

    assert names("app=shop") == {"a", "b"}
    assert names("app=shop,tier!=db") == {"a"}
    assert names("tier in (web,db)") == {"a", "b"}
    assert names("!tier") == {"c"}
    assert names(field="status.phase=Pending") == {"c"}
    assert names(field="status.phase=Running") == {"a", "b"}
    assert names(field="metadata.name=b") == {"b"}
    assert "a" in names(field=f"spec.nodeName={node_a}")


def test_kubectl_get_prints_server_side_tables(arena_ns: str, kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(deployment("web", replicas=2)))
    wait_for(lambda: "2/2" in kubectl("get", "deploy", "web", ns=arena_ns), what="deployment ready")
    out = kubectl("get", "pods", "-o", "wide", ns=arena_ns)
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and "NODE" in header
    assert out.count("Running") == 2
    assert "NAMESPACE" in kubectl("get", "pods", "-A").splitlines()[0]
    sc = kubectl.run("get", "storageclass")
    assert "PROVISIONER" in sc.stdout or "No resources found" in sc.stderr


@pytest.mark.parametrize("via", CLIENTS)
def test_errors_are_status_objects_with_real_codes(
    via: str, arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    core = client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web"))
    bad_replicas = deployment("bad", replicas=-1)
    wrong_type = deployment("typo")
    wrong_type["spec"]["replicas"] = "3"
    no_image = deployment("noimage")
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    if via == "python":
        cases = [
            (lambda: core.read_namespaced_pod("nope", arena_ns), 404, "NotFound", 'pods "nope" not found'),
            (
                lambda: apps.create_namespaced_deployment(arena_ns, deployment("web")),
                409,
                "AlreadyExists",
                'deployments.apps "web" already exists',
            ),
            (
                lambda: apps.create_namespaced_deployment(arena_ns, bad_replicas),
                422,
                "Invalid",
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                lambda: apps.create_namespaced_deployment(arena_ns, no_image),
                422,
                "Invalid",
                "spec.template.spec.containers[0].image: Required value",
            ),
            (
                lambda: core.create_namespaced_config_map(arena_ns, {"metadata": {"name": "Bad_Name"}}),
                422,
                "Invalid",
                'metadata.name: Invalid value: "Bad_Name"',
            ),
            (
                lambda: apps.patch_namespaced_deployment("web", arena_ns, [{"op": "remove", "path": "/spec/nope"}]),
                422,
                "Invalid",
                "the server rejected our request",
            ),
        ]
        for call, code, reason, message in cases:
            with pytest.raises(client.ApiException) as exc:
                call()
            st = status_of(exc.value)
            assert (exc.value.status, st["kind"], st["reason"]) == (code, "Status", reason)
            assert message in st["message"]
        with pytest.raises(client.ApiException) as exc:
            apps.create_namespaced_deployment(arena_ns, bad_replicas)
        causes = status_of(exc.value)["details"]["causes"]
        assert causes[0]["field"] == "spec.replicas"
        # Stale resourceVersion: 409 Conflict with the apiserver's wording.
        dep = apps.read_namespaced_deployment("web", arena_ns)
        apps.patch_namespaced_deployment("web", arena_ns, {"spec": {"replicas": 3}})
        dep.spec.replicas = 1
        with pytest.raises(client.ApiException) as exc:
            apps.replace_namespaced_deployment("web", arena_ns, dep)
        assert exc.value.status == 409 and status_of(exc.value)["message"] == (
            'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply '
            "your changes to the latest version and try again"
        )
        # An unknown resource is a 404 too.
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(f"{arena.url}/apis/apps/v1/namespaces/{arena_ns}/widgets")
        assert http.value.code == 404 and json.loads(http.value.read())["kind"] == "Status"
        # A field of the wrong JSON type is refused while decoding, as by the apiserver.
        req = urllib.request.Request(
            f"{arena.url}/apis/apps/v1/namespaces/{arena_ns}/deployments",
            data=json.dumps(wrong_type).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(req)
        assert http.value.code == 400 and json.loads(http.value.read())["message"].endswith(
            "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32"
        )
    else:
        r = kubectl.run("get", "pod", "nope", ns=arena_ns, check=False)
        assert r.returncode == 1 and 'Error from server (NotFound): pods "nope" not found' in r.stderr
        r = kubectl.run("get", "widgets", ns=arena_ns, check=False)
        assert 'the server doesn\'t have a resource type "widgets"' in r.stderr
        r = kubectl.run("create", "deployment", "web", "--image=x", ns=arena_ns, check=False)
        assert 'deployments.apps "web" already exists' in r.stderr
        r = kubectl.run("apply", "-f", "-", ns=arena_ns, input=to_yaml(bad_replicas), check=False)
        assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in r.stderr
        r = kubectl.run(
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/spec/nope"}]',
            ns=arena_ns,
            check=False,
        )
        assert r.returncode == 1 and "The request is invalid" in r.stderr
        r = kubectl.run("patch", "deploy", "web", "-p", "{bad", ns=arena_ns, check=False)
        assert r.returncode == 1
        r = kubectl.run("scale", "deploy", "web", "--replicas=-2", ns=arena_ns, check=False)
        assert r.returncode == 1


def test_every_write_with_server_dry_run_stores_nothing(
    arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(deployment("web", replicas=2)))
    wait_for(lambda: "2/2" in kubectl("get", "deploy", "web", ns=arena_ns), what="deployment ready")
    before = kubectl("get", "deploy", "web", "-o", "json", ns=arena_ns)
    rv = str(arena.cluster.store.resource_version)
    d = "--dry-run=server"
    outs = [
        kubectl("scale", "deploy", "web", "--replicas=5", d, ns=arena_ns),
        kubectl("set", "image", "deploy/web", "main=nginx:9", d, ns=arena_ns),
        kubectl("set", "env", "deploy/web", "X=1", d, ns=arena_ns),
        kubectl("patch", "deploy", "web", "-p", '{"spec":{"replicas":7}}', d, ns=arena_ns),
        kubectl("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"replicas":7}}', d, ns=arena_ns),
        kubectl(
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/spec/replicas","value":7}]',
            d,
            ns=arena_ns,
        ),
        kubectl("apply", "-f", "-", d, ns=arena_ns, input=to_yaml(deployment("web", replicas=9))),
        kubectl("apply", "-f", "-", d, ns=arena_ns, input=to_yaml(deployment("other"))),
        kubectl("create", "deployment", "made", "--image=nginx", d, ns=arena_ns),
        kubectl("create", "configmap", "cm", "--from-literal=a=b", d, ns=arena_ns),
        kubectl("delete", "deploy", "web", d, ns=arena_ns),
        kubectl("cordon", "node-1", d),
        kubectl("label", "deploy", "web", "x=y", d, ns=arena_ns),
        kubectl("annotate", "deploy", "web", "x=y", d, ns=arena_ns),
    ]
    assert all("(server dry run)" in o or o.strip().endswith(" patched") for o in outs), outs
    after = kubectl("get", "deploy", "web", "-o", "json", ns=arena_ns)
    assert json.loads(before)["metadata"]["resourceVersion"] == json.loads(after)["metadata"]["resourceVersion"]
    assert kubectl("get", "deploy", "-o", "name", ns=arena_ns).split() == ["deployment.apps/web"]
    assert "SchedulingDisabled" not in kubectl("get", "node", "node-1")
    # The Python client's dry run: the would-be object comes back, nothing is stored.
    apps = client.AppsV1Api(k8s_client)
    made = apps.create_namespaced_deployment(arena_ns, deployment("py"), dry_run="All")
    assert made.metadata.uid and made.spec.replicas == 2
    assert (
        apps.patch_namespaced_deployment("web", arena_ns, {"spec": {"replicas": 4}}, dry_run="All").spec.replicas == 4
    )
    apps.delete_namespaced_deployment("web", arena_ns, dry_run="All")
    assert [d.metadata.name for d in apps.list_namespaced_deployment(arena_ns).items] == ["web"]
    assert apps.read_namespaced_deployment("web", arena_ns).spec.replicas == 2
    assert int(rv) <= arena.cluster.store.resource_version


def test_list_pagination_with_limit_and_continue(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    for i in range(5):
        core.create_namespaced_config_map(arena_ns, {"metadata": {"name": f"cm-{i}"}})
    seen: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(arena_ns, limit=2, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == sorted(seen) and {f"cm-{i}" for i in range(5)} <= set(seen)
    out = kubectl("get", "cm", "--chunk-size=2", "-o", "name", ns=arena_ns)
    assert len(out.split()) == len(seen)
