"""RBAC as the authorizer decides it, and a controller pod whose API calls follow from its ServiceAccount's RBAC and
from whether it runs: with patch it clears the finalizer of a terminating object, without it logs 403 Forbidden."""

from __future__ import annotations

import time
from typing import Any

from arena.behaviour.model import AppBehaviour
from arena.cluster import Cluster
from arena.rbac import allowed
from arena.resources import BY_KIND
from arena.timing import Timing

NS = "default"
FIN = "example.io/cleanup"


def _cluster() -> Cluster:
    return Cluster(behaviour=AppBehaviour(), nodes=1, timing=Timing.fast())


def _role(c: Cluster, verbs: list[str]) -> None:
    body = {
        "metadata": {"name": "cm-cleaner"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}],
    }
    if c.store.get(BY_KIND["ClusterRole"].key, None, "cm-cleaner") is None:
        c.rest.create(BY_KIND["ClusterRole"], None, body)
    else:
        cur = c.rest.get(BY_KIND["ClusterRole"], None, "cm-cleaner")
        c.rest.write(BY_KIND["ClusterRole"], {**cur, "rules": body["rules"]})


def _bind(c: Cluster) -> None:
    c.rest.create(
        BY_KIND["ClusterRoleBinding"],
        None,
        {
            "metadata": {"name": "cm-cleaner"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-cleaner"},
            "subjects": [{"kind": "ServiceAccount", "name": "cleaner", "namespace": NS}],
        },
    )


def test_rbac_bindings_rules_and_wildcards() -> None:
    c = _cluster()
    v = c.view
    assert not allowed(v, NS, "cleaner", "list", "configmaps", NS)
    _role(c, ["get", "list"])
    assert not allowed(v, NS, "cleaner", "list", "configmaps", NS)  # a role alone grants nothing
    _bind(c)
    assert allowed(v, NS, "cleaner", "list", "configmaps", NS)
    assert not allowed(v, NS, "cleaner", "patch", "configmaps", NS)
    assert not allowed(v, "other", "cleaner", "list", "configmaps", NS)  # another namespace's account
    assert not allowed(v, NS, "cleaner", "list", "secrets", NS)
    c.rest.create(
        BY_KIND["Role"],
        NS,
        {
            "metadata": {"name": "all"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"], "resourceNames": ["x"]}],
        },
    )
    c.rest.create(
        BY_KIND["RoleBinding"],
        NS,
        {
            "metadata": {"name": "all"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "all"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}],
        },
    )
    assert allowed(v, NS, "bot", "delete", "secrets", NS, name="x")
    assert not allowed(v, NS, "bot", "delete", "secrets", NS, name="y")
    assert not allowed(v, NS, "bot", "delete", "secrets", "kube-system", name="x")  # a Role binds in its namespace


def _controller_pod(c: Cluster) -> None:
    c.rest.create(BY_KIND["ServiceAccount"], NS, {"metadata": {"name": "cleaner"}})
    c.rest.create(
        BY_KIND["Pod"],
        NS,
        {
            "metadata": {"name": "cleaner", "labels": {"app": "cleaner"}},
            "spec": {
                "serviceAccountName": "cleaner",
                "containers": [
                    {
                        "name": "controller",
                        "image": "python:3.12-alpine",
                        "command": ["python", "/scripts/controller.py"],
                        "env": [
                            {"name": "WATCH_SELECTOR", "value": "tier=cleanup"},
                            {"name": "FINALIZER", "value": FIN},
                        ],
                    }
                ],
            },
        },
    )


def _stuck_configmap(c: Cluster, name: str) -> None:
    c.rest.create(
        BY_KIND["ConfigMap"], NS, {"metadata": {"name": name, "labels": {"tier": "cleanup"}, "finalizers": [FIN]}}
    )
    c.rest.delete(BY_KIND["ConfigMap"], NS, name)


def _spin(c: Cluster, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c.reconcile_once(force=True)
        time.sleep(0.02)


def _cm(c: Cluster, name: str) -> Any:
    return c.store.get("configmaps", NS, name)


def test_the_controller_clears_finalizers_only_with_patch_and_logs_403_without() -> None:
    c = _cluster()
    _role(c, ["get", "list", "watch"])
    _bind(c)
    _controller_pod(c)
    _spin(c, 1.0)
    _stuck_configmap(c, "token")
    _spin(c, 2.5)
    cm = _cm(c, "token")
    assert cm is not None and cm["metadata"]["deletionTimestamp"] and cm["metadata"]["finalizers"] == [FIN]
    logs = "\n".join(line for _, line in c.kubelet.logs(NS, "cleaner", "controller", False))
    assert "HTTP 403 Forbidden" in logs and 'cannot patch resource "configmaps"' in logs
    _role(c, ["get", "list", "watch", "patch"])
    _spin(c, 2.5)
    assert _cm(c, "token") is None


def test_without_a_running_controller_nothing_clears_the_finalizer() -> None:
    c = _cluster()
    _role(c, ["get", "list", "watch", "patch"])
    _bind(c)
    _stuck_configmap(c, "token")
    _spin(c, 2.0)
    assert _cm(c, "token") is not None


def test_the_sregym_coverage_table_is_up_to_date() -> None:
    from arena.scenarios.coverage import FOLDER, render

    text = (FOLDER / "README.md").read_text()
    assert render(text) == text, "run: python -m arena.scenarios.coverage"
