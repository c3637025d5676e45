"""PV/PVC binding and provisioning through StorageClasses, and the STRATUS paper's trajectory with kubectl."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, deployment, to_yaml

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def _pvc(name: str, sc: str | None, size: str = "1Gi") -> dict[str, object]:
    spec: dict[str, object] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if sc is not None:
        spec["storageClassName"] = sc
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def test_paper_trajectory_missing_storage_class(arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    """get pods -> describe pod -> describe pvc -> get storageclass -> apply a StorageClass -> the pod runs."""
    sc = f"openebs-{arena_ns}"
    dep = deployment("mongodb", replicas=1)
    dep["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    kubectl("apply", "-f", "-", ns=arena_ns, input=to_yaml(_pvc("data", sc), dep))
    core = client.CoreV1Api(k8s_client)
    wait_for(
        lambda: core.list_namespaced_event(arena_ns, field_selector="reason=FailedScheduling").items,
        what="FailedScheduling",
    )
    pods = kubectl("get", "pods", ns=arena_ns)
    assert "Pending" in pods
    name = pods.splitlines()[1].split()[0]
    desc = kubectl("describe", "pod", name, ns=arena_ns)
    assert (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling."
    ) in desc
    desc = kubectl("describe", "pvc", "data", ns=arena_ns)
    assert "Status:        Pending" in desc and f'storageclass.storage.k8s.io "{sc}" not found' in desc
    assert "ProvisioningFailed" in desc and f"Used By:       {name}" in desc
    assert sc not in kubectl("get", "storageclass")
    out = kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {sc}
provisioner: openebs.io/local
reclaimPolicy: Delete
volumeBindingMode: Immediate
""",
    )
    assert f"storageclass.storage.k8s.io/{sc} created" in out
    assert sc in kubectl("get", "storageclass")
    wait_for(lambda: "Bound" in kubectl("get", "pvc", "data", ns=arena_ns), what="the claim bound")
    wait_for(lambda: "1/1" in kubectl("get", "deploy", "mongodb", ns=arena_ns), 15, what="the pod running")
    assert "ProvisioningSucceeded" in kubectl("describe", "pvc", "data", ns=arena_ns)
    kubectl("delete", "ns", arena_ns, "--wait=false")
    kubectl("delete", "storageclass", sc)


def test_static_binding_and_released_volume_with_stale_claim_ref(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    cls = f"manual-{arena_ns}"
    pv_name = f"pv-{arena_ns}"
    core.create_persistent_volume(
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": cls,
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": "/tmp/x"},
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(arena_ns, _pvc("claim", cls, "2Gi"))
    wait_for(
        lambda: core.read_namespaced_persistent_volume_claim("claim", arena_ns).status.phase == "Bound", what="bound"
    )
    pvc = core.read_namespaced_persistent_volume_claim("claim", arena_ns)
    assert pvc.spec.volume_name == pv_name and pvc.status.capacity == {"storage": "5Gi"}
    core.delete_namespaced_persistent_volume_claim("claim", arena_ns)
    wait_for(lambda: core.read_persistent_volume(pv_name).status.phase == "Released", what="released")
    # A new claim with the same name does not bind the released volume: its claimRef names the old claim's uid.
    core.create_namespaced_persistent_volume_claim(arena_ns, _pvc("claim", cls, "2Gi"))
    wait_for(
        lambda: core.list_namespaced_event(arena_ns, field_selector="involvedObject.name=claim").items,
        what="an event on the claim",
    )
    assert core.read_namespaced_persistent_volume_claim("claim", arena_ns).status.phase == "Pending"
    assert core.read_persistent_volume(pv_name).status.phase == "Released"
    kubectl("patch", "pv", pv_name, "--type=json", "-p", '[{"op":"remove","path":"/spec/claimRef"}]')
    wait_for(
        lambda: core.read_namespaced_persistent_volume_claim("claim", arena_ns).status.phase == "Bound",
        what="bound again once the claimRef is cleared",
    )
    assert "Bound" in kubectl("get", "pv", pv_name)
    core.delete_namespaced_persistent_volume_claim("claim", arena_ns)
    core.delete_persistent_volume(pv_name)


def test_claim_without_class_or_volume_stays_pending(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_persistent_volume_claim(arena_ns, _pvc("orphan", ""))
    wait_for(
        lambda: (
            "no persistent volumes available for this claim and no storage class is set"
            in kubectl("describe", "pvc", "orphan", ns=arena_ns)
        ),
        what="FailedBinding",
    )
    assert core.read_namespaced_persistent_volume_claim("orphan", arena_ns).status.phase == "Pending"
