"""Jobs that can never complete, from the batch API's own semantics.

A Job completes when enough of its pods have Succeeded, and a pod Succeeds only once *every* regular container has
terminated. A helper that runs beside the program (a log shipper, a proxy) and never exits keeps the pod Running after
the program is done: the Job stays active for ever, and a CronJob adds one more such Job at each tick. The Kubernetes
answer is a native sidecar: the helper declared as an init container with ``restartPolicy: Always``, which the kubelet
stops once the regular containers have terminated. A Job's pod template cannot be changed, so the Jobs already stuck
are deleted (their pods with them); the CronJob's template is what is repaired.

A container counts as the helper when, in a pod of an active Job with ``restartPolicy`` Never or OnFailure, another
regular container has terminated with exit code 0 while it keeps running.
"""

from __future__ import annotations

from typing import Any

from stratus.reasoners.rulebook.analyzers import Finding
from stratus.reasoners.rulebook.snapshot import Snapshot, meta, name_of, spec, status

Obj = dict[str, Any]


def _owner(obj: Obj, kind: str) -> str | None:
    return next(
        (str(r.get("name")) for r in meta(obj).get("ownerReferences") or [] if r.get("kind") == kind and r.get("name")),
        None,
    )


def _finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status(job).get("conditions") or []
    )


def _blocking(pod: Obj) -> list[str]:
    """The regular containers still running after another one finished its work (exit 0), in a pod that should end."""
    if spec(pod).get("restartPolicy") not in ("Never", "OnFailure") or status(pod).get("phase") != "Running":
        return []
    regular = {c.get("name") for c in spec(pod).get("containers") or []}
    states = [(cs.get("name"), cs.get("state") or {}) for cs in status(pod).get("containerStatuses") or []]
    done = [n for n, s in states if n in regular and (s.get("terminated") or {}).get("exitCode") == 0]
    running = [str(n) for n, s in states if n in regular and "running" in s]
    return running if done else []


def _job_template(job: Obj) -> Obj:
    return (spec(job).get("template") or {}).get("spec") or {}


def jobs_never_complete(snap: Snapshot) -> list[Finding]:
    """CronJobs whose Jobs stay active because a regular container outlives the program (a sidecar that should be a
    native one): move it to the init containers with ``restartPolicy: Always`` and delete the Jobs that cannot end."""
    helpers: dict[str, list[str]] = {}
    examples: dict[str, str] = {}
    for pod in snap.live_pods():
        job_name = _owner(pod, "Job")
        job = snap.get("Job", job_name) if job_name else None
        cron = _owner(job, "CronJob") if job is not None else None
        blocking = _blocking(pod) if job is not None and not _finished(job) else []
        if cron is None or not blocking:
            continue
        for name in blocking:
            if name not in helpers.setdefault(cron, []):
                helpers[cron].append(name)
        examples.setdefault(cron, f"pod {name_of(pod)} of Job/{job_name}: {', '.join(blocking)} still running")
    out: list[Finding] = []
    for cron_name, names in sorted(helpers.items()):
        cronjob = snap.get("CronJob", cron_name)
        if cronjob is None:
            continue
        template = ((spec(cronjob).get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        pod_spec = template.get("spec") or {}
        regular = [c.get("name") for c in pod_spec.get("containers") or []]
        move = [n for n in names if n in regular and len(regular) > 1]
        stuck = [
            name_of(j)
            for j in snap.of("Job")
            if _owner(j, "CronJob") == cron_name
            and not _finished(j)
            and any(c.get("name") in names for c in _job_template(j).get("containers") or [])
        ]
        if not move and not stuck:
            continue
        out.append(
            Finding(
                analyzer="jobs_never_complete",
                mechanism="sidecar_blocks_completion",
                component=cron_name,
                target=f"CronJob/{cron_name}",
                confidence=0.85,
                evidence=[
                    f"{examples[cron_name]} after the other container exited 0: the pod cannot Succeed",
                    f"CronJob/{cron_name} has {len(stuck)} active Job(s) that cannot complete",
                ],
                facts={
                    "cronjob": cron_name,
                    "containers": [
                        {"index": regular.index(n), "spec": pod_spec["containers"][regular.index(n)]} for n in move
                    ],
                    "has_init_containers": bool(pod_spec.get("initContainers")),
                    "jobs": sorted(stuck),
                },
            )
        )
    return out


BATCH = (jobs_never_complete,)
"""The batch analyzers, run with the relation analyzers."""
