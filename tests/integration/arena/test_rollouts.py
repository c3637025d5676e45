"""Deployment rollouts through ReplicaSets: restart, undo, status, history, with kubectl and the Python client."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, deployment

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def test_rollout_restart_undo_status_history(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=3))
    out = kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    assert 'deployment "web" successfully rolled out' in out
    kubectl("set", "image", "deploy/web", "main=nginx:1.27", ns=arena_ns)
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    kubectl("rollout", "restart", "deploy/web", ns=arena_ns)
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    tpl = apps.read_namespaced_deployment("web", arena_ns).spec.template
    assert "kubectl.kubernetes.io/restartedAt" in tpl.metadata.annotations
    history = kubectl("rollout", "history", "deploy/web", ns=arena_ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2", "3"]
    assert "main=nginx:1.25" not in history
    # Undo to revision 1: the old ReplicaSet is scaled back up and becomes revision 4.
    kubectl("rollout", "undo", "deploy/web", "--to-revision=1", ns=arena_ns)
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    d = apps.read_namespaced_deployment("web", arena_ns)
    assert d.spec.template.spec.containers[0].image == "nginx:1.25"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    rss = {
        r.metadata.annotations["deployment.kubernetes.io/revision"]: r
        for r in apps.list_namespaced_replica_set(arena_ns).items
    }
    assert sorted(rss) == ["2", "3", "4"] and rss["4"].spec.replicas == 3
    assert rss["4"].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    pods = client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns).items
    assert {p.spec.containers[0].image for p in pods if not p.metadata.deletion_timestamp} == {"nginx:1.25"}
    desc = kubectl("describe", "deploy", "web", ns=arena_ns)
    assert f"NewReplicaSet:   {rss['4'].metadata.name} (3/3 replicas created)" in desc
    assert "Scaled up replica set" in desc


def test_broken_rollout_keeps_old_pods_and_exceeds_deadline(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    dep = deployment("web", replicas=2)
    dep["spec"]["progressDeadlineSeconds"] = 20  # x progress_deadline_factor 0.05 = 1 s
    apps.create_namespaced_deployment(arena_ns, dep)
    kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    kubectl("set", "image", "deploy/web", "main=missing:404", ns=arena_ns)
    r = kubectl.run("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns, check=False)
    assert r.returncode == 1 and 'deployment "web" exceeded its progress deadline' in r.stderr
    d = apps.read_namespaced_deployment("web", arena_ns)
    assert d.status.available_replicas == 2  # maxUnavailable 25% of 2 = 0: the old pods keep serving
    pods = client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns).items
    assert sum(1 for p in pods if p.spec.containers[0].image == "nginx:1.25") == 2
    kubectl("rollout", "undo", "deploy/web", ns=arena_ns)
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", "--timeout=20s", ns=arena_ns)
    wait_for(
        lambda: all(
            p.spec.containers[0].image == "nginx:1.25"
            for p in client.CoreV1Api(k8s_client).list_namespaced_pod(arena_ns).items
        ),
        what="broken pods gone",
    )


def test_statefulset_creates_ordered_pods_with_claims(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    client.StorageV1Api(k8s_client)
    sc = f"fast-{arena_ns}"
    kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {sc}}}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
""",
    )
    kubectl(
        "apply",
        "-f",
        "-",
        ns=arena_ns,
        input=f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: mongo, image: mongo:7, volumeMounts: [{{name: data, mountPath: /data/db}}]}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], storageClassName: {sc}, resources: {{requests: {{storage: 1Gi}}}}}}
""",
    )
    apps = client.AppsV1Api(k8s_client)
    wait_for(
        lambda: apps.read_namespaced_stateful_set("db", arena_ns).status.ready_replicas == 2,
        20,
        what="statefulset ready",
    )
    pvcs = client.CoreV1Api(k8s_client).list_namespaced_persistent_volume_claim(arena_ns).items
    assert sorted((p.metadata.name, p.status.phase) for p in pvcs) == [("data-db-0", "Bound"), ("data-db-1", "Bound")]
    assert "2/2" in kubectl("get", "sts", "db", ns=arena_ns)
    kubectl("delete", "storageclass", sc)
