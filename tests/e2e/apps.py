"""The two AIOpsLab applications on an arena for end-to-end tests: readiness and black-box SLO probes."""

from __future__ import annotations

import json

from arena.apps import APPS
from arena.scenarios.engine import Engine, wait_for
from arena.workload.generator import WorkloadSpec


def healthy(engine: Engine, app: str, redeploy_after: float | None = None) -> None:
    """Deploy ``app`` if needed, then wait for every pod Ready and a clean probe workload. With ``redeploy_after``,
    an app not Ready, or Ready but not serving cleanly, by then is deployed afresh: a policy may have committed changes
    no recovery step undoes (a chaos transaction that rode on a recovery's fall of mu keeps its writes, and a Service
    or env change leaves every pod Ready while requests fail)."""
    spec = APPS[app]
    if engine.kube.get("Namespace", None, spec.namespace) is None:
        engine.deploy(spec)
    probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
    last: list[str] = []

    def clean() -> bool:
        report = engine._plane().workload(spec.namespace, probe)
        last[:] = [report.text(), json.dumps(report.errors)[:500]]
        return report.clean

    if redeploy_after is None:
        engine.wait_ready(spec.namespace, 120)
        wait_for("a clean workload", clean, 120, interval=0.25)
        return
    try:
        engine.wait_ready(spec.namespace, redeploy_after)
        wait_for("a clean workload", clean, redeploy_after, interval=0.25)
    except TimeoutError as exc:
        print(f"{spec.namespace}: {exc} ({' '.join(last)}); deploying afresh")
        engine.redeploy(spec)
        engine.wait_ready(spec.namespace, 120)
        wait_for("a clean workload", clean, 120, interval=0.25)


def slo_probes(plane_url: str) -> str:
    """STRATUS_SLO_PROBES for both apps: each front-end route of the workload mix, probed through the app plane."""
    probes = {
        spec.namespace: [
            f"{plane_url}/probe/{spec.namespace}{route.path}?method={route.method}"
            for route in spec.workload
            if route.weight >= 1
        ]
        for spec in APPS.values()
    }
    return json.dumps(probes)
