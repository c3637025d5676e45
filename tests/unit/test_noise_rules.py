"""The detector's convergence rule on recorded-shape objects, and the bench noise's bounds and attribution judge."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from arena.bench.noise import (
    NoiseError,
    NoiseEvent,
    NoiseSpec,
    blamed_change,
    equivalent_images,
    fits_somewhere,
    rolls_safely,
    wrong_attribution,
)
from services.detector.settling import converging, gone, without_converging
from stratus.contracts import Severity
from stratus.severity import Snapshot, assess

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def _stamp(age_s: float) -> str:
    return (NOW - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(name: str, replicas: int, available: int, progressing: str = "True") -> Obj:
    return {
        "metadata": {"name": name, "generation": 2},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "availableReplicas": available,
            "readyReplicas": available,
            "updatedReplicas": replicas,
            "conditions": [{"type": "Progressing", "status": progressing}],
        },
    }


def replicaset(name: str, deployment_name: str) -> Obj:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [{"kind": "Deployment", "name": deployment_name, "controller": True}],
        }
    }


def pod(
    name: str,
    rs: str,
    *,
    ready: bool,
    age_s: float = 1.0,
    phase: str = "Running",
    restarts: int = 0,
    waiting: str | None = None,
    scheduled: bool = True,
) -> Obj:
    state: Obj = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": _stamp(age_s),
            "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": True}],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "PodScheduled", "status": "True" if scheduled else "False"},
            ],
            "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts, "state": state}],
        },
    }


def decide(pods: list[Obj], deps: list[Obj], grace_s: float = 30.0) -> Severity:
    rss = [replicaset(f"{d['metadata']['name']}-rs", d["metadata"]["name"]) for d in deps]
    severity = assess(Snapshot(pods=pods, deployments=deps))
    excused = converging(pods, rss, deps, NOW, grace_s) | gone(severity, pods)
    return without_converging(severity, excused, 1.0)


def test_a_rollout_within_budget_and_a_scale_up_are_not_failures() -> None:
    rolling = deployment("search", 1, 1)
    pods = [pod("search-old", "search-rs", ready=True, age_s=600), pod("search-new", "search-rs", ready=False)]
    scaled = deployment("geo", 2, 1)
    pods += [pod("geo-a", "geo-rs", ready=True, age_s=600), pod("geo-b", "geo-rs", ready=False, phase="Pending")]
    assert assess(Snapshot(pods=pods, deployments=[rolling, scaled])).mu == 3  # mu itself still counts them (TNR)
    assert decide(pods, [rolling, scaled]).mu == 0


@pytest.mark.parametrize(
    ("new_pod", "why"),
    [
        (pod("x-new", "x-rs", ready=False, restarts=2), "restarted: a crash, not a start"),
        (pod("x-new", "x-rs", ready=False, waiting="ImagePullBackOff"), "a bad image"),
        (pod("x-new", "x-rs", ready=False, phase="Pending", scheduled=False), "unschedulable"),
        (pod("x-new", "x-rs", ready=False, age_s=120), "never became Ready within the grace"),
    ],
)
def test_a_failing_new_pod_still_counts(new_pod: Obj, why: str) -> None:
    dep = deployment("x", 2, 1)
    pods = [pod("x-old", "x-rs", ready=True, age_s=600), new_pod]
    assert decide(pods, [dep]).mu >= 1, why


def test_a_replaced_pod_of_a_deployment_with_nothing_available_counts() -> None:
    dep = deployment("user", 1, 0)  # the only replica deleted: an outage, whatever replaces it
    assert decide([pod("user-new", "user-rs", ready=False)], [dep]).mu >= 1


def test_a_deployment_whose_rollout_timed_out_counts() -> None:
    dep = deployment("x", 2, 1, progressing="False")  # ProgressDeadlineExceeded
    pods = [pod("x-old", "x-rs", ready=True, age_s=600), pod("x-new", "x-rs", ready=False)]
    assert decide(pods, [dep]).mu == 2


def test_alerts_and_slo_violations_are_never_excused() -> None:
    severity = Severity(mu=2.0, violations=["probe: HTTP 500"], unhealthy=["pod/a: not Ready"])
    assert without_converging(severity, {"pod/a"}, 1.0).mu == 1.0


def test_noise_spec_bounds_and_parsing() -> None:
    spec = NoiseSpec.parse("seed=3,count=5,gap=2,kinds=scale+rollout_restart")
    assert (spec.seed, spec.count, spec.min_gap_s, spec.kinds) == (3, 5, 2.0, ("scale", "rollout_restart"))
    assert NoiseSpec.parse("on") == NoiseSpec()
    sched = spec.schedule()
    assert sched == NoiseSpec.parse("seed=3,count=5,gap=2,kinds=scale+rollout_restart").schedule()
    assert sched != NoiseSpec.parse("seed=4,count=5,gap=2,kinds=scale+rollout_restart").schedule()
    assert len(sched) == 5 and all(b[0] - a[0] >= 2.0 for a, b in itertools.pairwise(sched))
    for bad in ("count=0", "count=51", "gap=0.1", "kinds=drop_database", "before=9", "speed=3", "seed=x"):
        with pytest.raises(NoiseError):
            NoiseSpec.parse(bad)


def test_only_rolling_deployments_without_claims_are_touched() -> None:
    ok = deployment("a", 1, 1)
    assert rolls_safely(ok)
    recreate = deployment("b", 1, 1)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    claims = deployment("c", 1, 1)
    claims["spec"]["template"] = {"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}}
    no_slack = deployment("d", 1, 1)
    no_slack["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    unsettled = deployment("e", 2, 1)
    assert not any(rolls_safely(d) for d in (recreate, claims, no_slack, unsettled))


def test_capacity_and_equivalent_images() -> None:
    node = {
        "metadata": {"name": "n1"},
        "spec": {},
        "status": {"allocatable": {"cpu": "1", "memory": "1Gi"}, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    big = {"containers": [{"resources": {"requests": {"cpu": "600m"}}}]}
    running = {"spec": {"nodeName": "n1", **big}, "status": {"phase": "Running"}}
    assert fits_somewhere(big, [node], [])
    assert not fits_somewhere(big, [node], [running])
    aliases = equivalent_images()
    assert "jaegertracing/all-in-one:1" in aliases["jaegertracing/all-in-one:latest"]
    assert "mongo:8.0.14-rc0" not in aliases.get("mongo:4.4.6", [])  # another version is not the same image


def _event(kind: str, target: str, objects: list[str]) -> NoiseEvent:
    return NoiseEvent(at=NOW, offset_s=1.0, kind=kind, namespace="ns", target=target, objects=objects)


def test_wrong_attribution_is_a_blame_on_what_only_noise_touched() -> None:
    events = [
        _event("config_reload", "search", ["ConfigMap/ns/settings", "Deployment/ns/search"]),
        _event("delete_pod", "geo", ["Pod/ns/geo-abc"]),
    ]
    changed = "changed since the last healthy state: Deployment/ns/search /spec/template: {} -> {}"
    assert blamed_change(["x", changed]) == "Deployment/ns/search"
    assert wrong_attribution({"localisation": ["search"]}, events, {"geo"}) is not None
    assert wrong_attribution({"localisation": ["user"], "evidence": [changed]}, events, {"user"}) is not None
    assert wrong_attribution({"localisation": ["user"], "evidence": ["user crash-looping"]}, events, {"user"}) is None
    # the fault's own component touched by noise too: blaming it is right
    assert wrong_attribution({"localisation": ["geo"]}, events, {"geo"}) is None


def test_data_stores_are_never_touched() -> None:
    store = deployment("mongodb-user", 1, 1)
    store["spec"]["template"] = {"spec": {"containers": [{"name": "m", "image": "mongo:4.4.6"}]}}
    cache = deployment("memcached-rate", 1, 1)
    cache["spec"]["template"] = {"spec": {"containers": [{"name": "m", "image": "memcached:1.6.7"}]}}
    assert not rolls_safely(store)
    assert rolls_safely(cache)
