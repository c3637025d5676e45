"""Job -> Pod and CronJob -> Job, as kube-controller-manager's job and cronjob controllers do them.

A Job runs pods from its template until ``completions`` of them have Succeeded (``Complete``), or more than
``backoffLimit`` have Failed, or ``activeDeadlineSeconds`` has passed (``Failed``). A pod whose container never exits
(a plain sidecar that keeps listening) keeps the pod Running, so the Job stays active forever: only the pod phase
counts, and a restartable init container (a native sidecar) does not hold the phase back (the kubelet's part).

A CronJob creates a Job at each minute its schedule matches, on the arena's compressed cron clock
(``Timing.cron_minute`` seconds per minute); ``concurrencyPolicy`` Allow/Forbid/Replace and ``suspend`` are honoured,
and finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted. Active Jobs are never
reaped by the history limits.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from arena.errors import ApiError
from arena.objects import condition, controller_of, is_terminating, now, owner_ref, random_suffix, set_condition
from arena.resources import BY_KIND
from arena.store import Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

PODS = BY_KIND["Pod"]
JOBS = BY_KIND["Job"]
CRONJOBS = BY_KIND["CronJob"]


def job_finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition True, else None."""
    for ctype in ("Complete", "Failed"):
        c = condition(job, ctype)
        if c and c.get("status") == "True":
            return ctype
    return None


class JobController:
    watches = frozenset({"jobs.batch", "pods"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.started: dict[str, float] = {}

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        pods_by_owner: dict[str, list[Obj]] = {}
        for p in store.list(PODS.key):
            ref = controller_of(p)
            if ref and ref.get("kind") == "Job":
                pods_by_owner.setdefault(ref["uid"], []).append(p)
        for job in store.list(JOBS.key):
            if is_terminating(job):
                continue
            self._sync(job, pods_by_owner.get(job["metadata"]["uid"], []), t)

    def next_due(self, t: float) -> float:
        return t + 1.0 if self.started else t + 60.0

    def _sync(self, job: Obj, pods: list[Obj], t: float) -> None:
        spec = job.get("spec") or {}
        old = job.get("status") or {}
        uid = job["metadata"]["uid"]
        events = self.cluster.events
        status: Obj = copy.deepcopy(old)
        status.setdefault("startTime", now())
        self.started.setdefault(uid, t)
        live = [p for p in pods if not is_terminating(p)]
        phases = [(p.get("status") or {}).get("phase") for p in live]
        succeeded = max(int(old.get("succeeded", 0) or 0), phases.count("Succeeded"))
        failed = max(int(old.get("failed", 0) or 0), phases.count("Failed"))
        active = [p for p in live if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        completions = int(spec.get("completions", 1) or 1)
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
        finished = job_finished(job)
        failure: tuple[str, str] | None = None
        if finished is None:
            deadline = spec.get("activeDeadlineSeconds")
            scale = self.cluster.timing.cron_minute / 60.0
            if deadline is not None and t - self.started[uid] >= float(deadline) * scale:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            elif failed > int(spec.get("backoffLimit", 6)):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if finished is None and failure is None and succeeded >= completions:
            for p in active:
                self._delete_pod(job, p)
            active = []
            set_condition(
                status, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"
            )
            set_condition(status, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
            status["completionTime"] = now()
            events.emit(job, "Normal", "Completed", "Job completed", "job-controller")
        elif finished is None and failure is not None:
            for p in active:
                self._delete_pod(job, p)
            active = []
            set_condition(status, "FailureTarget", "True", failure[0], failure[1])
            set_condition(status, "Failed", "True", failure[0], failure[1])
            events.emit(job, "Warning", failure[0], failure[1], "job-controller")
        elif finished is None and not spec.get("suspend"):
            want = min(parallelism, completions - succeeded) - len(active)
            for _ in range(max(want, 0)):
                try:
                    pod = self._new_pod(job)
                except ApiError as e:
                    events.emit(job, "Warning", "FailedCreate", f"Error creating: {e.message}", "job-controller")
                    break
                active.append(pod)
                events.emit(
                    job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller"
                )
        if job_finished({"status": status}) is not None:
            self.started.pop(uid, None)
        status["active"] = len(active)
        status["succeeded"] = succeeded
        status["failed"] = failed
        status["ready"] = sum(1 for p in active if (condition(p, "Ready") or {}).get("status") == "True")
        status["terminating"] = sum(1 for p in pods if is_terminating(p))
        for k in ("active", "succeeded", "failed", "terminating"):
            if not status[k]:
                status.pop(k)
        if status != old:
            new = dict(job)
            new["status"] = status
            self.cluster.rest.write(JOBS, new)

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        try:
            self.cluster.rest.delete(PODS, pod["metadata"].get("namespace"), pod["metadata"]["name"])
        except ApiError:
            return
        self.cluster.events.emit(
            job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", "job-controller"
        )

    def _new_pod(self, job: Obj) -> Obj:
        tpl = (job.get("spec") or {}).get("template") or {}
        tmeta = tpl.get("metadata") or {}
        name, uid = job["metadata"]["name"], job["metadata"]["uid"]
        labels = dict(tmeta.get("labels") or {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{random_suffix()}",
                "generateName": f"{name}-",
                "namespace": job["metadata"].get("namespace"),
                "labels": labels,
                "ownerReferences": [owner_ref(job)],
            },
            "spec": copy.deepcopy(tpl.get("spec") or {}),
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        return self.cluster.rest.create(PODS, job["metadata"].get("namespace"), pod)


# ---------------------------------------------------------------------------------------------------------- cron
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _field(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            step = int(s)
            if step <= 0:
                raise ValueError(f"bad step in {text!r}")
        if part in ("*", "?"):
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = int(x), int(y)
        else:
            a = int(part)
            b = hi if step > 1 else a
        if a < lo or b > hi or a > b:
            raise ValueError(f"{text!r} is out of range {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return out


def parse_schedule(schedule: str) -> list[set[int]]:
    """A standard five-field cron schedule (or a macro such as ``@hourly``) as the sets of minute, hour,
    day-of-month, month and day-of-week it matches. Raises ValueError on a malformed schedule."""
    text = _MACROS.get(schedule.strip(), schedule.strip())
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(parts)}: {schedule!r}")
    sets = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
    if 7 in sets[4]:
        sets[4].add(0)
    return sets


def matches(sets: list[set[int]], when: datetime) -> bool:
    minute, hour, dom, month, dow = sets
    dow_py = (when.weekday() + 1) % 7  # cron: 0 = Sunday
    return when.minute in minute and when.hour in hour and when.month in month and when.day in dom and dow_py in dow


class CronJobController:
    watches = frozenset({"cronjobs.batch", "jobs.batch"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.origin_mono = time.monotonic()
        self.origin_wall = datetime.now(UTC).timestamp()
        self.last_minute: dict[str, int] = {}

    def cron_now(self, t: float) -> float:
        """The cron clock: wall time at the arena's start, running ``60 / Timing.cron_minute`` times faster."""
        return self.origin_wall + (t - self.origin_mono) * 60.0 / self.cluster.timing.cron_minute

    def next_due(self, t: float) -> float:
        if not self.last_minute:
            return t + 60.0
        minute = self.cluster.timing.cron_minute
        return t + min(minute - (self.cron_now(t) % 60.0) * minute / 60.0 + 0.01, 1.0)

    def reconcile(self, t: float) -> None:
        store = self.cluster.store
        jobs_by_owner: dict[str, list[Obj]] = {}
        for j in store.list(JOBS.key):
            ref = controller_of(j)
            if ref and ref.get("kind") == "CronJob":
                jobs_by_owner.setdefault(ref["uid"], []).append(j)
        seen = set()
        for cj in store.list(CRONJOBS.key):
            if is_terminating(cj):
                continue
            seen.add(cj["metadata"]["uid"])
            self._sync(cj, jobs_by_owner.get(cj["metadata"]["uid"], []), t)
        for uid in list(self.last_minute):
            if uid not in seen:
                del self.last_minute[uid]

    def _sync(self, cj: Obj, jobs: list[Obj], t: float) -> None:
        spec = cj.get("spec") or {}
        uid = cj["metadata"]["uid"]
        events = self.cluster.events
        old = cj.get("status") or {}
        status: Obj = copy.deepcopy(old)
        jobs = [j for j in jobs if not is_terminating(j)]
        current = int(self.cron_now(t) // 60)
        last = self.last_minute.setdefault(uid, current)  # a new CronJob waits for its next matching minute
        due: int | None = None
        if current > last:
            self.last_minute[uid] = current
            try:
                sets = parse_schedule(str(spec.get("schedule", "")))
            except ValueError as e:
                events.emit(cj, "Warning", "UnparseableSchedule", f"unparseable schedule: {e}", "cronjob-controller")
                sets = None
            if sets is not None and not spec.get("suspend"):
                for m in range(current, max(last, current - 100), -1):  # the most recent missed time only
                    if matches(sets, datetime.fromtimestamp(m * 60, UTC)):
                        due = m
                        break
        active = [j for j in jobs if job_finished(j) is None]
        if due is not None:
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Forbid" and active:
                events.emit(
                    cj,
                    "Normal",
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                    "cronjob-controller",
                )
            else:
                if policy == "Replace":
                    for j in active:
                        self._delete_job(cj, j)
                    active = []
                job = self._new_job(cj, due)
                if job is not None:
                    active.append(job)
                    jobs.append(job)
                    status["lastScheduleTime"] = now()
        done = sorted(
            (j for j in jobs if job_finished(j) is not None),
            key=lambda j: j["metadata"].get("creationTimestamp") or "",
        )
        for kind, limit in (
            ("Complete", spec.get("successfulJobsHistoryLimit", 3)),
            ("Failed", spec.get("failedJobsHistoryLimit", 1)),
        ):
            of_kind = [j for j in done if job_finished(j) == kind]
            for j in of_kind[: max(len(of_kind) - int(limit), 0)]:
                self._delete_job(cj, j)
            if kind == "Complete" and of_kind:
                ct = (of_kind[-1].get("status") or {}).get("completionTime")
                if ct and ct != old.get("lastSuccessfulTime"):
                    status["lastSuccessfulTime"] = ct
        refs = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": j["metadata"]["name"],
                "namespace": j["metadata"].get("namespace"),
                "uid": j["metadata"]["uid"],
                "resourceVersion": j["metadata"].get("resourceVersion"),
            }
            for j in sorted(active, key=lambda j: j["metadata"]["name"])
        ]
        if refs:
            status["active"] = refs
        else:
            status.pop("active", None)
        if status != old:
            new = dict(cj)
            new["status"] = status
            self.cluster.rest.write(CRONJOBS, new)

    def _delete_job(self, cj: Obj, job: Obj) -> None:
        try:
            self.cluster.rest.delete(JOBS, job["metadata"].get("namespace"), job["metadata"]["name"])
        except ApiError:
            return
        self.cluster.events.emit(
            cj, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}", "cronjob-controller"
        )

    def _new_job(self, cj: Obj, minute: int) -> Obj | None:
        tpl = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = tpl.get("metadata") or {}
        name = f"{cj['metadata']['name']}-{minute}"
        annotations = dict(tmeta.get("annotations") or {})
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = datetime.fromtimestamp(
            minute * 60, UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        job: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": cj["metadata"].get("namespace"),
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [owner_ref(cj)],
            },
            "spec": copy.deepcopy(tpl.get("spec") or {}),
        }
        try:
            created = self.cluster.rest.create(JOBS, cj["metadata"].get("namespace"), job)
        except ApiError as e:
            self.cluster.events.emit(
                cj, "Warning", "FailedCreate", f"Error creating job: {e.message}", "cronjob-controller"
            )
            return None
        self.cluster.events.emit(cj, "Normal", "SuccessfulCreate", f"Created job {name}", "cronjob-controller")
        return created
