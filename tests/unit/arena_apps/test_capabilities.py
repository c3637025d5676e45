"""Pure rules of the new arena capabilities: pod DNS, ResourceQuota/LimitRange admission, scheduler placement."""

from __future__ import annotations

from typing import Any

import pytest

from arena.behaviour import dns
from arena.controllers import placement
from arena.errors import ApiError
from arena.quota import admit_pod_quota, apply_limit_ranges
from arena.resources import BY_KIND
from arena.store import Store

PODS = BY_KIND["Pod"]


class View:
    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = list(objs)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for o in self.objs:
            m = o["metadata"]
            if o["kind"] == kind and m["name"] == name and m.get("namespace") in (namespace, None):
                return o
        return None

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Any]:
        return [o for o in self.objs if o["kind"] == kind]


def _svc(name: str, ns: str = "app") -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}}


def _pod(ns: str = "app", **spec: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": "p", "namespace": ns, "uid": "u1"}, "spec": spec}


def test_cluster_first_resolves_short_and_qualified_names() -> None:
    view = View(_svc("geo"), _svc("db", "other"))
    assert dns.resolve(view, _pod(), "geo", "app")[0] == "geo.app.svc.cluster.local"
    assert dns.resolve(view, _pod(), "db.other", "app")[0] == "db.other.svc.cluster.local"
    assert dns.resolve(view, _pod(), "db", "app") == (None, "lookup db on 10.96.0.10:53: no such host")


def test_dns_policy_none_and_default_lose_cluster_names() -> None:
    view = View(_svc("geo"))
    none = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["8.8.8.8"], "searches": []})
    assert dns.resolve(view, none, "geo", "app") == (None, "lookup geo on 8.8.8.8:53: no such host")
    no_search = _pod(dnsPolicy="None", dnsConfig={"nameservers": [dns.CLUSTER_DNS_IP]})
    assert dns.resolve(view, no_search, "geo", "app")[0] is None
    assert dns.resolve(view, no_search, "geo.app.svc.cluster.local", "app")[0] == "geo.app.svc.cluster.local"
    assert dns.resolve(view, _pod(dnsPolicy="Default"), "geo", "app")[0] is None
    assert dns.resolve(view, _pod(hostNetwork=True), "geo", "app")[0] is None
    assert dns.resolve(view, _pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), "geo", "app")[0]


def test_corefile_template_nxdomain_shadows_its_zone_only() -> None:
    corefile = dns.DEFAULT_COREFILE.replace(
        "    kubernetes",
        "    template ANY ANY geo.app.svc.cluster.local {\n       rcode NXDOMAIN\n    }\n    kubernetes",
        1,
    )
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": corefile},
    }
    view = View(_svc("geo"), _svc("rate"), cm)
    assert dns.resolve(view, _pod(), "geo", "app")[0] is None
    assert dns.resolve(view, _pod(), "rate", "app")[0] == "rate.app.svc.cluster.local"


def _store(*objs: tuple[str, dict[str, Any]]) -> Store:
    store = Store()
    for key, obj in objs:
        store.put(key, obj)
    return store


def _qpod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "search-1", "namespace": "app"}, "spec": {"containers": list(containers)}}


def test_quota_needs_every_constrained_resource_declared_and_within_hard() -> None:
    quota = {"metadata": {"name": "mem", "namespace": "app"}, "spec": {"hard": {"memory": "1Gi"}}}
    store = _store(("resourcequotas", quota))
    with pytest.raises(ApiError) as e:
        admit_pod_quota(store, PODS, _qpod({"name": "search"}))
    assert 'pods "search-1" is forbidden: failed quota: mem: must specify memory for: search' in e.value.message
    admit_pod_quota(store, PODS, _qpod({"name": "search", "resources": {"requests": {"memory": "512Mi"}}}))
    with pytest.raises(ApiError) as e:
        admit_pod_quota(store, PODS, _qpod({"name": "search", "resources": {"requests": {"memory": "2Gi"}}}))
    assert "exceeded quota: mem, requested: memory=2Gi, used: memory=0, limited: memory=1Gi" in e.value.message


def test_limit_range_defaults_make_a_pod_admissible_and_max_refuses() -> None:
    lr = {
        "metadata": {"name": "lr", "namespace": "app"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "512Mi"}, "max": {"memory": "1Gi"}}]},
    }
    quota = {"metadata": {"name": "mem", "namespace": "app"}, "spec": {"hard": {"requests.memory": "1Gi"}}}
    store = _store(("limitranges", lr), ("resourcequotas", quota))
    pod = _qpod({"name": "search"})
    apply_limit_ranges(store, PODS, pod)
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"memory": "512Mi"}}
    admit_pod_quota(store, PODS, pod)
    with pytest.raises(ApiError, match="maximum memory usage per Container is 1Gi, but limit is 2Gi"):
        apply_limit_ranges(store, PODS, _qpod({"name": "c", "resources": {"limits": {"memory": "2Gi"}}}))


def _node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def _placed(uid: str, node: str, labels: dict[str, str], host_port: int | None = None) -> dict[str, Any]:
    ports = [{"containerPort": 80, "hostPort": host_port}] if host_port else []
    return {
        "metadata": {"name": uid, "namespace": "app", "uid": uid, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}]},
    }


def test_host_port_and_anti_affinity_filters() -> None:
    n1, n2 = _node("node-1"), _node("node-2")
    taken = [_placed("exp", "node-1", {"app": "exporter"}, host_port=9100)]
    pod = _placed("new", "", {"app": "media"}, host_port=9100)
    pod["spec"].pop("nodeName")
    assert placement.host_ports(pod, n1, taken) == placement.FREE_PORTS
    assert placement.host_ports(pod, n2, taken) is None
    anti = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    pod["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti]}}
    web = [_placed("w1", "node-1", {"app": "web"})]
    nodes = {"node-1": n1, "node-2": n2}
    assert placement.inter_pod_affinity(pod, n1, nodes, web) == placement.ANTI_AFFINITY
    assert placement.inter_pod_affinity(pod, n2, nodes, web) is None


def test_volume_node_affinity_conflict() -> None:
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}
    pv = {"metadata": {"name": "pv"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [term]}}}}
    pvc = {"metadata": {"name": "c", "namespace": "app"}, "spec": {"volumeName": "pv"}}
    store = _store(("persistentvolumes", pv), ("persistentvolumeclaims", pvc))
    pod = {"metadata": {"namespace": "app"}, "spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "c"}}]}}
    assert placement.volume_node_affinity(pod, _node("node-2"), store) == placement.VOLUME_AFFINITY
    assert placement.volume_node_affinity(pod, _node("node-1"), store) is None


def test_pod_security_restricted_refuses_with_every_violation() -> None:
    from arena.podsecurity import admit_pod

    ns = {"metadata": {"name": "app", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    store = _store(("namespaces", ns))
    pod = _qpod({"name": "web"})
    with pytest.raises(ApiError) as e:
        admit_pod(store, PODS, pod)
    msg = e.value.message
    assert msg.startswith('pods "search-1" is forbidden: violates PodSecurity "restricted:latest": ')
    for part in ("allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccomp"):
        assert part in msg
    pod["spec"]["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    admit_pod(store, PODS, pod)
    ns["metadata"]["labels"] = {}
    admit_pod(store, PODS, _qpod({"name": "web"}))


def test_a_webhook_without_backend_fails_closed_unless_ignored() -> None:
    from arena.webhooks import VALIDATING, admit_pod

    hook = {
        "name": "pod-policy.example",
        "rules": [{"apiGroups": [""], "operations": ["CREATE"], "resources": ["pods"]}],
        "clientConfig": {"service": {"namespace": "policy", "name": "hook", "path": "/validate", "port": 443}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "app"}},
        "timeoutSeconds": 5,
    }
    config = {"metadata": {"name": "pod-policy"}, "webhooks": [hook]}
    store = _store((VALIDATING, config), ("namespaces", {"metadata": {"name": "app"}}))
    pod = _qpod({"name": "web"})
    with pytest.raises(ApiError) as e:
        admit_pod(store, pod)
    assert e.value.message == (
        'Internal error occurred: failed calling webhook "pod-policy.example": failed to call webhook: Post '
        '"https://hook.policy.svc:443/validate?timeout=5s": service "hook" not found'
    )
    hook["failurePolicy"] = "Ignore"
    admit_pod(store, pod)
    hook["failurePolicy"] = "Fail"
    hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "other"}}
    admit_pod(store, pod)


def test_a_reachable_mutating_backend_applies_its_patch() -> None:
    from arena.webhooks import MUTATING, admit_pod

    patch = '[{"op": "replace", "path": "/spec/containers/0/resources", "value": {"limits": {"memory": "16Mi"}}}]'
    backend = {
        "metadata": {"name": "ctl-1", "namespace": "ops", "labels": {"app": "ctl"}},
        "spec": {"containers": [{"name": "ctl", "env": [{"name": "WEBHOOK_PATCH", "value": patch}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    svc = {"metadata": {"name": "ctl", "namespace": "ops"}, "spec": {"selector": {"app": "ctl"}}}
    hook = {
        "name": "mutation.example",
        "rules": [{"apiGroups": [""], "operations": ["CREATE"], "resources": ["pods"]}],
        "clientConfig": {"service": {"namespace": "ops", "name": "ctl", "path": "/mutate"}},
    }
    store = _store((MUTATING, {"metadata": {"name": "m"}, "webhooks": [hook]}), ("pods", backend), ("services", svc))
    pod = _qpod({"name": "web", "resources": {"limits": {"memory": "256Mi"}}})
    admit_pod(store, pod)
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"memory": "16Mi"}}


def test_hpa_status_needs_cpu_requests() -> None:
    from arena.controllers.autoscaling import hpa_status

    hpa = {
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "frontend"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"averageUtilization": 60}}}],
        }
    }
    target = {"status": {"replicas": 1}}
    pod = {"metadata": {"name": "frontend-1"}, "spec": {"containers": [{"name": "web"}]}}
    st = hpa_status(hpa, target, [pod])
    active = st["conditions"][1]
    assert (active["type"], active["status"], active["reason"]) == ("ScalingActive", "False", "FailedGetResourceMetric")
    assert "missing request for cpu in container web of Pod frontend-1" in active["message"]
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    st = hpa_status(hpa, target, [pod])
    assert st["conditions"][1]["status"] == "True" and st["currentMetrics"][0]["resource"]["current"] == {
        "averageUtilization": 10,
        "averageValue": "10m",
    }
