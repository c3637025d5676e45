"""The kubectl tool: command lines (including the STRATUS paper's trajectory) into typed actions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stratus.actions import (
    Apply,
    Create,
    Delete,
    Describe,
    Events,
    Get,
    ListObjects,
    Logs,
    Patch,
    RolloutRestart,
    RolloutStatus,
    RolloutUndo,
    Scale,
    SetEnv,
    SetImage,
)
from stratus.confinement import Refusal
from stratus.kubectl import parse_command, render_describe, render_table


def one(line: str, **kw: Any) -> Any:
    actions = parse_command(line, role="write", namespace="default", **kw)
    assert len(actions) == 1
    return actions[0]


# --- the STRATUS paper's trajectory (a pod stuck on an unbound PVC; the StorageClass is missing) ---------------

SC_YAML = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: openebs-hostpath
provisioner: openebs.io/local
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
"""


def test_paper_trajectory(tmp_path: Path) -> None:
    (tmp_path / "sc.yaml").write_text(SC_YAML)
    ns = "test-social-network"
    pods = one(f"kubectl get pods -n {ns}")
    assert pods == ListObjects(kind="Pod", namespace=ns)
    pod = one(f"kubectl describe pod user-timeline-mongodb-658f54fd68-k2pc2 -n {ns}")
    assert pod == Describe(kind="Pod", namespace=ns, name="user-timeline-mongodb-658f54fd68-k2pc2")
    pvc = one(f"kubectl describe pvc user-timeline-pvc -n {ns}")
    assert pvc == Describe(kind="PersistentVolumeClaim", namespace=ns, name="user-timeline-pvc")
    assert one("kubectl get storageclass") == ListObjects(kind="StorageClass")
    apply = one("kubectl apply -f sc.yaml", workdir=tmp_path)
    assert isinstance(apply, Apply)
    assert (apply.kind, apply.name, apply.scope) == ("StorageClass", "openebs-hostpath", "cluster")


# --- reads ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kubectl get po web-0 -n shop -o yaml", Get(kind="Pod", namespace="shop", name="web-0", output="yaml")),
        ("kubectl get pod/web-0 --namespace=shop", Get(kind="Pod", namespace="shop", name="web-0")),
        ("kubectl get deploy -A -o wide", ListObjects(kind="Deployment", all_namespaces=True, output="wide")),
        ("kubectl get svc -l app=web", ListObjects(kind="Service", namespace="default", label_selector="app=web")),
        ("kubectl get no", ListObjects(kind="Node")),
        ("kubectl get pv", ListObjects(kind="PersistentVolume")),
        ("kubectl -n shop get cm -ojson", ListObjects(kind="ConfigMap", namespace="shop", output="json")),
        ("kubectl get events -n shop", Events(namespace="shop")),
        ("kubectl events -n shop --for pod/web-0", Events(namespace="shop", for_kind="Pod", for_name="web-0")),
        ("kubectl get ev -A", Events(all_namespaces=True)),
        ("kubectl describe deploy/web -n s", Describe(kind="Deployment", namespace="s", name="web")),
        ("kubectl describe pods -l app=x", Describe(kind="Pod", namespace="default", label_selector="app=x")),
        (
            "kubectl logs web-0 -c app --tail=50 --previous -n s",
            Logs(namespace="s", name="web-0", container="app", tail=50, previous=True),
        ),
        ("kubectl logs web-0 app -p", Logs(namespace="default", name="web-0", container="app", previous=True)),
        ("kubectl logs deploy/web --tail 5", Logs(kind="Deployment", namespace="default", name="web", tail=5)),
        ("kubectl rollout status deploy/web", RolloutStatus(kind="Deployment", namespace="default", name="web")),
    ],
)
def test_reads(line: str, expected: Any) -> None:
    assert parse_command(line, role="read") == [expected]


def test_several_objects() -> None:
    assert [a.kind for a in parse_command("kubectl get po,svc -n s")] == ["Pod", "Service"]
    assert len(parse_command("kubectl get all -n s")) == 5
    assert [a.name for a in parse_command("kubectl get pod a b")] == ["a", "b"]
    assert [a.name for a in parse_command("kubectl delete pod/a pod/b", role="write")] == ["a", "b"]


# --- writes ---------------------------------------------------------------------------------------------------


def test_scale() -> None:
    expected = Scale(kind="Deployment", namespace="s", name="web", replicas=3)
    assert one("kubectl scale deploy/web --replicas=3 -n s") == expected
    assert one("kubectl scale deployment web --replicas 3 -n s") == expected
    assert one("kubectl scale --replicas=3 -n s deployment web") == expected


def test_patch() -> None:
    p = one("""kubectl patch svc web -n s -p '{"spec":{"ports":[{"port":80,"targetPort":8080}]}}'""")
    assert p == Patch(
        kind="Service", namespace="s", name="web", patch={"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    )
    j = one("""kubectl patch deploy web --type=json -p '[{"op":"replace","path":"/spec/replicas","value":2}]'""")
    assert j.patch_type == "json" and j.patch == [{"op": "replace", "path": "/spec/replicas", "value": 2}]
    y = one("kubectl patch deploy web --type merge -p 'spec: {replicas: 2}'")
    assert y.patch_type == "merge" and y.patch == {"spec": {"replicas": 2}}


def test_set_image_and_env() -> None:
    assert one("kubectl set image deploy/web app=nginx:1.25 side=envoy:1") == SetImage(
        kind="Deployment", namespace="default", name="web", images={"app": "nginx:1.25", "side": "envoy:1"}
    )
    assert one("kubectl set env deployment web DB_HOST=db FOO- -c app -e X=1") == SetEnv(
        kind="Deployment",
        namespace="default",
        name="web",
        container="app",
        env={"DB_HOST": "db", "X": "1"},
        unset=["FOO"],
    )


def test_rollouts() -> None:
    assert isinstance(one("kubectl rollout restart deploy/web"), RolloutRestart)
    assert one("kubectl rollout undo deployment web --to-revision=2") == RolloutUndo(
        kind="Deployment", namespace="default", name="web", to_revision=2
    )
    assert one("kubectl rollout undo deploy/web").to_revision is None


def test_delete() -> None:
    assert one("kubectl delete pod web-0 -n s") == Delete(kind="Pod", namespace="s", name="web-0")
    assert one("kubectl delete deploy/web") == Delete(kind="Deployment", namespace="default", name="web")


def test_apply_multi_doc_and_create(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        SC_YAML + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\n"
    )
    actions = parse_command("kubectl apply -f m.yaml -n shop", role="write", workdir=tmp_path)
    assert [(a.kind, a.namespace) for a in actions] == [("StorageClass", None), ("ConfigMap", "shop")]
    created = parse_command(f"kubectl create -f {tmp_path / 'm.yaml'}", role="write")
    assert all(isinstance(a, Create) for a in created)


def test_cordon_exec() -> None:
    assert one("kubectl cordon node-1").scope == "cluster"
    assert one("kubectl uncordon node/node-1").name == "node-1"
    with pytest.raises(Refusal) as info:
        one("kubectl exec web-0 -n s -c app -- touch /tmp/ready", exec_inverse=["rm", "/tmp/ready"])
    assert info.value.rule == "dataplane" and "mongodb.grant_roles" in str(info.value)


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "rule", "text"),
    [
        ("kubectl top pods", "unsupported", "Supported commands:"),
        ("kubectl get pods -o jsonpath={.items}", "unsupported", "-o yaml"),
        ("kubectl get pods --foo", "syntax", "Supported flags:"),
        ("kubectl scale deploy/web --replicas=2 --selector=a", "selector_write", "pre-image"),
        ("kubectl delete deploy", "selector_write", "name of each object"),
        ("kubectl scale deploy web", "syntax", "--replicas"),
        ("kubectl get widgets", "unsupported", "Unknown resource type"),
        ("kubectl apply -f /nonexistent/x.yaml", "syntax", "Cannot read manifest file"),
        ("kubectl apply -f /dev/zero", "bounds", "under /dev"),
        ("kubectl create deployment web", "unsupported", "-f FILE"),
        ("kubectl exec web -- touch /x", "dataplane", "catalogue"),
        ("kubectl rollout pause deploy/web", "unsupported", "restart, undo, status or history"),
        ("kubectl scale svc/web --replicas=1", "syntax", "scale does not apply to Service"),
        ("kubectl patch deploy web -p '{'", "syntax", "not valid JSON or YAML"),
    ],
)
def test_refusals(line: str, rule: str, text: str) -> None:
    with pytest.raises(Refusal) as info:
        parse_command(line, role="write")
    assert info.value.rule == rule
    assert text in str(info.value)


def test_read_role_refuses_parsed_writes() -> None:
    with pytest.raises(Refusal, match="Write operation 'delete' refused: this agent has a read-only role"):
        parse_command("kubectl delete pod web-0", role="read")


# --- rendering ------------------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_pod_table_shows_the_waiting_reason() -> None:
    pod = {
        "metadata": {"name": "web-0", "namespace": "s", "creationTimestamp": "2026-01-01T11:55:00Z"},
        "spec": {"containers": [{"name": "app"}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [
                {"ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        },
    }
    lines = render_table("Pod", [pod], wide=True, namespace_column=True, now=NOW).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert lines[1].split() == ["s", "web-0", "0/1", "CrashLoopBackOff", "4", "5m", "10.0.0.5", "n1"]
    assert render_table("Pod", [], now=NOW) == "No resources found."


def test_pvc_and_storageclass_tables() -> None:
    pvc = {
        "metadata": {"name": "data", "creationTimestamp": "2026-01-01T10:00:00Z"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "openebs-hostpath"},
        "status": {"phase": "Pending"},
    }
    lines = render_table("PersistentVolumeClaim", [pvc], now=NOW).splitlines()
    assert lines[0].startswith("NAME") and "STORAGECLASS" in lines[0]
    assert lines[1].split() == ["data", "Pending", "RWO", "openebs-hostpath", "120m"]
    sc = {"metadata": {"name": "fast"}, "provisioner": "openebs.io/local", "volumeBindingMode": "WaitForFirstConsumer"}
    assert render_table("StorageClass", [sc], now=NOW).splitlines()[1].split()[:4] == [
        "fast",
        "openebs.io/local",
        "Delete",
        "WaitForFirstConsumer",
    ]


def test_describe_includes_events() -> None:
    obj = {"kind": "Pod", "metadata": {"name": "p", "namespace": "s", "labels": {"a": "b"}}, "spec": {"x": 1}}
    event = {
        "type": "Warning",
        "reason": "FailedScheduling",
        "message": "0/3 nodes are available",
        "involvedObject": {"kind": "Pod", "name": "p"},
        "lastTimestamp": "2026-01-01T11:59:00Z",
    }
    text = render_describe(obj, [event], now=NOW)
    assert "Name:         p" in text and "Labels:       a=b" in text and "x: 1" in text
    assert "FailedScheduling" in text and "pod/p" in text and "0/3 nodes are available" in text
    assert render_describe(obj, [], now=NOW).endswith("Events:  <none>")
