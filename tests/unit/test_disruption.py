"""The ready-capacity guard: every write that would terminate Ready pods is refused, every other write is not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stratus.disruption import ready_capacity_loss, resolve_max_unavailable

Obj = dict[str, Any]

TEMPLATE: Obj = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
}


def workload(
    kind: str,
    replicas: int,
    ready: int,
    *,
    strategy: Obj | None = None,
    update_strategy: Obj | None = None,
    template: Obj | None = None,
) -> Obj:
    spec: Obj = {"selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(template or TEMPLATE)}
    status: Obj = {"readyReplicas": ready} if ready else {}
    if kind == "DaemonSet":
        status = {"numberReady": ready, "desiredNumberScheduled": replicas}
    else:
        spec["replicas"] = replicas
    if strategy is not None:
        spec["strategy"] = strategy
    if update_strategy is not None:
        spec["updateStrategy"] = update_strategy
    return {"kind": kind, "metadata": {"name": "web", "namespace": "shop"}, "spec": spec, "status": status}


def changed(obj: Obj, **spec: Any) -> Obj:
    """The dry-run result: ``obj`` with spec fields replaced, and without a status worth reading."""
    out = copy.deepcopy(obj)
    out["spec"].update(copy.deepcopy(spec))
    return out


def restarted(obj: Obj) -> Obj:
    """What ``kubectl rollout restart`` makes of a workload: an annotation in the pod template."""
    template = copy.deepcopy(obj["spec"]["template"])
    template["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    return changed(obj, template=template)


def new_image(obj: Obj, image: str = "nginx:1.27") -> Obj:
    template = copy.deepcopy(obj["spec"]["template"])
    template["spec"]["containers"][0]["image"] = image
    return changed(obj, template=template)


def scale(replicas: int) -> Obj:
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": replicas}}


def pod(ready: bool, image: str = "nginx:1.25") -> Obj:
    return {
        "kind": "Pod",
        "metadata": {"name": "web-abc", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def deploy(replicas: int = 2, ready: int = 2, **kw: Any) -> Obj:
    return workload("Deployment", replicas, ready, **kw)


def sts(replicas: int = 2, ready: int = 2, **kw: Any) -> Obj:
    return workload("StatefulSet", replicas, ready, **kw)


def ds(nodes: int = 3, ready: int = 3, **kw: Any) -> Obj:
    return workload("DaemonSet", nodes, ready, **kw)


def rs(replicas: int = 2, ready: int = 2) -> Obj:
    return workload("ReplicaSet", replicas, ready)


RECREATE = {"type": "Recreate"}
SURGE_ONLY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
SERVICE = {"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "targetPort": 80}]}}

# verb, kind, pre, after, what the reason must say (None: allowed)
REFUSED = [
    pytest.param("delete", "Pod", pod(ready=True), None, "the pod is Ready", id="delete-ready-pod"),
    pytest.param(
        "set_image", "Pod", pod(ready=True), pod(True, "nginx:1.27"), "restarts its container", id="ready-pod-image"
    ),
    pytest.param(
        "scale", "Deployment", deploy(3, 3), scale(1), "scaling it to 1 replica terminates", id="scale-below-ready"
    ),
    pytest.param("scale", "Deployment", deploy(2, 2), changed(deploy(), replicas=0), "of its 2 Ready", id="scale-0"),
    pytest.param("scale", "ReplicaSet", rs(2, 2), scale(1), "not Ready are removed first", id="rs-scale-down"),
    pytest.param("scale", "StatefulSet", sts(3, 3), scale(2), "Keep at least 3 replicas.", id="sts-scale-down"),
    pytest.param(
        "patch",
        "Deployment",
        deploy(4, 4),
        changed(deploy(4, 4), replicas=2),
        "scaling it to 2",
        id="patch-replicas-below-ready",
    ),
    pytest.param(
        "rollout_restart",
        "Deployment",
        deploy(1, 1, strategy=RECREATE),
        restarted(deploy(1, 1, strategy=RECREATE)),
        "strategy Recreate",
        id="recreate-restart",
    ),
    pytest.param(
        "set_image", "Deployment", deploy(4, 4), new_image(deploy(4, 4)), "maxUnavailable resolves to 1", id="25%-of-4"
    ),
    pytest.param(
        "set_env",
        "Deployment",
        deploy(2, 1, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        new_image(deploy(2, 1, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})),
        "take down 1 of its 1 Ready pod ",
        id="int-max-unavailable",
    ),
    pytest.param(
        "set_image",
        "Deployment",
        deploy(10, 10, strategy={"rollingUpdate": {"maxUnavailable": "10%"}}),
        new_image(deploy(10, 10, strategy={"rollingUpdate": {"maxUnavailable": "10%"}})),
        "resolves to 1 of 10",
        id="10%-of-10",
    ),
    pytest.param(
        "rollout_restart",
        "Deployment",
        deploy(1, 1, strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}),
        restarted(deploy(1, 1, strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}})),
        "resolves to 1 of 1",
        id="both-zero-means-one-unavailable",
    ),
    pytest.param(
        "patch",
        "Deployment",
        deploy(1, 1, strategy=RECREATE),
        changed(new_image(deploy(1, 1)), strategy=SURGE_ONLY),
        "or its undo",
        id="undo-under-the-pre-image-strategy",
    ),
    pytest.param("rollout_restart", "StatefulSet", sts(), restarted(sts()), "set spec.updateStrategy.type to OnDelete"),
    pytest.param(
        "set_image",
        "StatefulSet",
        sts(update_strategy={"type": "RollingUpdate"}),
        new_image(sts(update_strategy={"type": "RollingUpdate"})),
        "RollingUpdate strategy",
        id="sts-explicit-rolling-update",
    ),
    pytest.param("rollout_restart", "DaemonSet", ds(), restarted(ds()), "RollingUpdate strategy", id="ds-default"),
    pytest.param("delete", "Deployment", deploy(2, 2), None, "it has 2 Ready pods", id="delete-deployment"),
    pytest.param("delete", "ReplicaSet", rs(1, 1), None, "Restart its Deployment", id="delete-replicaset"),
    pytest.param("delete", "StatefulSet", sts(3, 1), None, "it has 1 Ready pod,", id="delete-statefulset"),
    pytest.param("delete", "DaemonSet", ds(3, 2), None, "it has 2 Ready pods", id="delete-daemonset"),
]

ALLOWED = [
    pytest.param("scale", "Deployment", deploy(2, 2), scale(3), id="scale-up"),
    pytest.param("scale", "Deployment", deploy(3, 2), changed(deploy(3, 2), replicas=2), id="scale-down-to-ready"),
    pytest.param("scale", "StatefulSet", sts(3, 1), scale(1), id="sts-scale-down-to-ready"),
    pytest.param("rollout_restart", "Deployment", deploy(1, 1), restarted(deploy(1, 1)), id="1-replica-default"),
    pytest.param("set_image", "Deployment", deploy(2, 2), new_image(deploy(2, 2)), id="25%-of-2-floors-to-0"),
    pytest.param(
        "set_image",
        "Deployment",
        deploy(9, 9, strategy={"rollingUpdate": {"maxUnavailable": "10%"}}),
        new_image(deploy(9, 9, strategy={"rollingUpdate": {"maxUnavailable": "10%"}})),
        id="10%-of-9-floors-to-0",
    ),
    pytest.param(
        "rollout_restart",
        "Deployment",
        deploy(4, 4, strategy=SURGE_ONLY),
        restarted(deploy(4, 4, strategy=SURGE_ONLY)),
        id="max-unavailable-0",
    ),
    pytest.param(
        "patch",
        "Deployment",
        deploy(1, 1, strategy=RECREATE),
        changed(deploy(1, 1), strategy=SURGE_ONLY),
        id="strategy",
    ),
    pytest.param("delete", "Pod", pod(ready=False), None, id="delete-pod-not-ready"),
    pytest.param("patch", "Pod", pod(ready=True), pod(ready=True), id="ready-pod-same-images"),
    pytest.param("exec", "Pod", pod(ready=True), {"dryRun": "exec: the pod is running"}, id="exec"),
    pytest.param("set_image", "Pod", pod(ready=False), pod(False, "nginx:1.27"), id="not-ready-pod-image"),
    pytest.param(
        "rollout_restart",
        "StatefulSet",
        sts(update_strategy={"type": "OnDelete"}),
        restarted(sts(update_strategy={"type": "OnDelete"})),
        id="sts-on-delete",
    ),
    pytest.param(
        "rollout_restart",
        "DaemonSet",
        ds(update_strategy=SURGE_ONLY),
        restarted(ds(update_strategy=SURGE_ONLY)),
        id="ds-surge",
    ),
    pytest.param("set_image", "ReplicaSet", rs(), new_image(rs()), id="rs-template-applies-to-new-pods"),
    pytest.param("delete", "Deployment", deploy(2, 0), None, id="delete-deployment-0-ready"),
    pytest.param("scale", "Deployment", deploy(2, 0), scale(0), id="scale-0-ready-to-0"),
    pytest.param(
        "set_image",
        "Deployment",
        deploy(1, 0, strategy=RECREATE),
        new_image(deploy(1, 0, strategy=RECREATE)),
        id="recreate-0-ready",
    ),
    pytest.param("rollout_restart", "StatefulSet", sts(2, 0), restarted(sts(2, 0)), id="sts-0-ready"),
    pytest.param("patch", "Service", SERVICE, SERVICE, id="service-patch"),
    pytest.param("delete", "Service", SERVICE, None, id="service-delete"),
    pytest.param("delete", "ConfigMap", {"kind": "ConfigMap", "data": {}}, None, id="configmap-delete"),
    pytest.param("apply", "Deployment", None, deploy(2, 0), id="create-new"),
]


@pytest.mark.parametrize(("verb", "kind", "pre", "after", "says"), REFUSED)
def test_refused(verb: str, kind: str, pre: Obj, after: Obj | None, says: str) -> None:
    reason = ready_capacity_loss(verb, kind, pre, after)
    assert reason is not None and says in reason, reason
    assert "undo restores specs, not running processes" in reason


@pytest.mark.parametrize(("verb", "kind", "pre", "after"), ALLOWED)
def test_allowed(verb: str, kind: str, pre: Obj | None, after: Obj | None) -> None:
    assert ready_capacity_loss(verb, kind, pre, after) is None


def test_delete_ready_pod_message() -> None:
    assert ready_capacity_loss("delete", "Pod", pod(ready=True), None) == (
        "the pod is Ready, and undo restores specs, not running processes. Restart its workload with `kubectl rollout "
        "restart` (a rolling update keeps Ready pods until their replacements are Ready), or act on pods that are not "
        "Ready."
    )


@pytest.mark.parametrize(
    ("rolling", "replicas", "expected"),
    [
        ({}, 1, 0),
        ({}, 3, 0),
        ({}, 4, 1),
        ({}, 10, 2),
        ({"maxUnavailable": 2}, 1, 2),
        ({"maxUnavailable": "50%"}, 3, 1),
        ({"maxUnavailable": "0%", "maxSurge": "0%"}, 5, 1),
        ({"maxUnavailable": 0, "maxSurge": "10%"}, 5, 0),
    ],
)
def test_resolve_max_unavailable(rolling: Obj, replicas: int, expected: int) -> None:
    assert resolve_max_unavailable(rolling, replicas) == expected


def node(*taints: Obj, unschedulable: bool = False) -> Obj:
    return {
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"taints": list(taints), "unschedulable": unschedulable},
    }


NO_EXECUTE = {"key": "k", "value": "v", "effect": "NoExecute"}


def test_a_no_execute_taint_on_a_node_is_refused() -> None:
    # the taint manager evicts every pod on the node that does not tolerate it, in every namespace
    loss = ready_capacity_loss("patch", "Node", node(), node(NO_EXECUTE))
    assert loss is not None and "k=v:NoExecute" in loss and "kubectl cordon" in loss
    assert ready_capacity_loss("patch", "Node", node(NO_EXECUTE), node(NO_EXECUTE, {"key": "x", "effect": "NoExecute"}))
    # a value change is a new taint too
    assert ready_capacity_loss("patch", "Node", node(NO_EXECUTE), node({**NO_EXECUTE, "value": "w"}))


def test_cordoning_or_removing_a_taint_keeps_the_pods() -> None:
    assert ready_capacity_loss("cordon", "Node", node(), node(unschedulable=True)) is None
    assert ready_capacity_loss("patch", "Node", node(), node({"key": "k", "effect": "NoSchedule"})) is None
    assert ready_capacity_loss("patch", "Node", node(NO_EXECUTE), node()) is None  # the fix of a tainting fault
    assert ready_capacity_loss("patch", "Node", node(NO_EXECUTE), node(NO_EXECUTE)) is None


def test_a_pod_deadline_on_a_workload_is_refused() -> None:
    pre = workload("Deployment", 2, 2, strategy={"rollingUpdate": {"maxUnavailable": 0}})
    after = copy.deepcopy(pre)
    after["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 60
    loss = ready_capacity_loss("patch", "Deployment", pre, after)
    assert loss is not None and "activeDeadlineSeconds 60" in loss
    assert ready_capacity_loss("patch", "Deployment", after, after) is None
