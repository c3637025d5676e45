"""Jobs, CronJobs and native sidecars in the arena, from Kubernetes' semantics: a Job completes when its pod
Succeeds; a plain sidecar that never exits keeps the pod Running (the Job stays active, the CronJob piles Jobs up);
a restartable init container (restartPolicy Always) runs beside the main container and is stopped when it is done."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from arena.behaviour.model import AppBehaviour
from arena.cluster import Cluster
from arena.controllers.batch import job_finished, matches, parse_schedule
from arena.resources import BY_KIND
from arena.timing import Timing

NS = "default"
ARCHIVER = {"name": "archiver", "image": "busybox:1.36", "command": ["sleep", "1"]}
SIDECAR = {"name": "log-sidecar", "image": "busybox:1.36", "command": ["nc", "-lk", "-p", "24224"]}


def _cluster(cron_minute: float = 0.6) -> Cluster:
    timing = Timing.fast()
    timing.cron_minute = cron_minute
    return Cluster(behaviour=AppBehaviour(), nodes=1, timing=timing)


def _run_until(cluster: Cluster, pred: Any, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.reconcile_once(force=True)
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def _pod_spec(native: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [copy.deepcopy(ARCHIVER)]}
    if native:
        spec["initContainers"] = [{**SIDECAR, "restartPolicy": "Always"}]
    else:
        spec["containers"].append(copy.deepcopy(SIDECAR))
    return spec


def _job(name: str, native: bool) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": _pod_spec(native)}},
    }


def _get(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    return cluster.rest.get(BY_KIND[kind], NS, name)


def _pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    return [p for p in cluster.store.list("pods") if (p["metadata"].get("labels") or {}).get("app") == app]


def test_a_job_whose_pod_exits_completes_and_its_pod_succeeds() -> None:
    c = _cluster()
    job = _job("one", native=False)
    job["spec"]["template"]["spec"]["containers"] = [ARCHIVER]
    c.rest.create(BY_KIND["Job"], NS, job)
    _run_until(c, lambda: job_finished(_get(c, "Job", "one")) == "Complete")
    st = _get(c, "Job", "one")["status"]
    assert st["succeeded"] == 1 and "active" not in st and st["completionTime"]
    (pod,) = _pods(c, "one")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["labels"]["job-name"] == "one"


def test_a_plain_sidecar_that_never_exits_keeps_the_job_active() -> None:
    c = _cluster()
    c.rest.create(BY_KIND["Job"], NS, _job("stuck", native=False))

    def archiver_done() -> bool:
        pods = _pods(c, "stuck")
        css = {cs["name"]: cs for cs in (pods[0].get("status") or {}).get("containerStatuses") or []} if pods else {}
        return "terminated" in (css.get("archiver") or {}).get("state", {})

    _run_until(c, archiver_done)
    for _ in range(30):
        c.reconcile_once(force=True)
        time.sleep(0.02)
    (pod,) = _pods(c, "stuck")
    css = {cs["name"]: cs for cs in pod["status"]["containerStatuses"]}
    assert pod["status"]["phase"] == "Running"
    assert css["archiver"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in css["log-sidecar"]["state"]
    job = _get(c, "Job", "stuck")
    assert job_finished(job) is None and job["status"]["active"] == 1


def test_a_native_sidecar_does_not_block_completion() -> None:
    c = _cluster()
    c.rest.create(BY_KIND["Job"], NS, _job("native", native=True))
    _run_until(c, lambda: job_finished(_get(c, "Job", "native")) == "Complete")
    (pod,) = _pods(c, "native")
    assert pod["status"]["phase"] == "Succeeded"
    side = pod["status"]["initContainerStatuses"][0]
    assert side["name"] == "log-sidecar" and "terminated" in side["state"]


def test_a_native_sidecar_starts_before_the_main_container_and_counts_for_readiness() -> None:
    c = _cluster()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "initContainers": [{**SIDECAR, "restartPolicy": "Always"}],
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}],
        },
    }
    c.rest.create(BY_KIND["Pod"], NS, pod)

    def ready() -> bool:
        st = _get(c, "Pod", "web").get("status") or {}
        return any(x.get("type") == "Ready" and x.get("status") == "True" for x in st.get("conditions") or [])

    _run_until(c, ready)
    st = _get(c, "Pod", "web")["status"]
    assert st["phase"] == "Running"
    assert "running" in st["initContainerStatuses"][0]["state"] and st["initContainerStatuses"][0]["started"]


def test_a_cronjob_creates_jobs_on_schedule_and_keeps_history_limits() -> None:
    c = _cluster(cron_minute=0.3)
    cj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 2,
            "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "tick"}}, "spec": _pod_spec(True)}}},
        },
    }
    c.rest.create(BY_KIND["CronJob"], NS, cj)
    _run_until(c, lambda: (_get(c, "CronJob", "tick").get("status") or {}).get("lastSuccessfulTime"), timeout=10)
    time.sleep(0.01)
    _run_until(c, lambda: len(c.store.list("jobs.batch")) >= 3, timeout=10)
    seen: set[str] = set()
    for _ in range(60):
        c.reconcile_once(force=True)
        seen |= {j["metadata"]["name"] for j in c.store.list("jobs.batch")}
        time.sleep(0.03)
    finished = [j for j in c.store.list("jobs.batch") if job_finished(j) == "Complete"]
    assert 1 <= len(finished) <= 3  # the limit (2), plus one that finished after the CronJob's last pass
    assert len(seen) >= 4 and min(seen) not in {j["metadata"]["name"] for j in c.store.list("jobs.batch")}
    assert all(j["metadata"]["name"].startswith("tick-") for j in c.store.list("jobs.batch"))


def test_active_jobs_pile_up_with_a_blocking_sidecar_and_forbid_skips() -> None:
    c = _cluster(cron_minute=0.3)
    spec = {"template": {"metadata": {"labels": {"app": "pile"}}, "spec": _pod_spec(False)}}
    c.rest.create(
        BY_KIND["CronJob"],
        NS,
        {
            "kind": "CronJob",
            "apiVersion": "batch/v1",
            "metadata": {"name": "pile"},
            "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1, "jobTemplate": {"spec": spec}},
        },
    )
    _run_until(c, lambda: len((_get(c, "CronJob", "pile").get("status") or {}).get("active") or []) >= 3, timeout=10)
    c.rest.create(
        BY_KIND["CronJob"],
        NS,
        {
            "kind": "CronJob",
            "apiVersion": "batch/v1",
            "metadata": {"name": "once"},
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {"template": {"metadata": {"labels": {"app": "once"}}, "spec": _pod_spec(False)}}
                },
            },
        },
    )
    _run_until(c, lambda: len((_get(c, "CronJob", "once").get("status") or {}).get("active") or []) == 1, timeout=10)
    for _ in range(60):
        c.reconcile_once(force=True)
        time.sleep(0.02)
    assert len(_get(c, "CronJob", "once")["status"]["active"]) == 1


def test_schedule_parsing() -> None:
    sets = parse_schedule("*/15 2-4 * * 1,3")
    assert matches(sets, datetime(2026, 1, 5, 3, 30, tzinfo=UTC))  # a Monday
    assert not matches(sets, datetime(2026, 1, 6, 3, 30, tzinfo=UTC))
    assert not matches(sets, datetime(2026, 1, 5, 5, 0, tzinfo=UTC))
    assert matches(parse_schedule("@hourly"), datetime(2026, 1, 1, 7, 0, tzinfo=UTC))
    with pytest.raises(ValueError):
        parse_schedule("* * *")
    with pytest.raises(ValueError):
        parse_schedule("61 * * * *")


def test_kubectl_columns_for_jobs_cronjobs_and_native_sidecars() -> None:
    from arena.api.tables import PRINTERS, pod_status_reason

    job = {
        "metadata": {"name": "j", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"completions": 1, "template": {"spec": {"containers": [ARCHIVER]}}},
        "status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"},
    }
    row = PRINTERS["Job"][1](job)
    assert row[1:3] == ["Running", "0/1"]
    cj = {
        "metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [ARCHIVER]}}}}},
        "status": {"active": [{"name": "a"}, {"name": "b"}]},
    }
    assert PRINTERS["CronJob"][1](cj)[1:6] == ["* * * * *", "<none>", "False", 2, "<none>"]
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"initContainers": [{**SIDECAR, "restartPolicy": "Always"}], "containers": [ARCHIVER]},
        "status": {
            "phase": "Running",
            "initContainerStatuses": [
                {"name": "log-sidecar", "ready": True, "started": True, "state": {"running": {}}}
            ],
            "containerStatuses": [{"name": "archiver", "ready": True, "state": {"running": {}}}],
        },
    }
    assert pod_status_reason(pod) == "Running"
    assert PRINTERS["Pod"][1](pod)[1] == "2/2"
