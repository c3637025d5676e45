"""The rulebook with the last-known-good memory on faults it was not written against (``tests/data/unseen``).

Opt-in (``STRATUS_UNSEEN=1``; ``STRATUS_UNSEEN_DIR`` picks another folder of scenario files): a measurement, not a
gate. Each scenario runs like the catalogue's (the arena with
both apps, the six services, the strict oracle, TNR checked on every incident), after the detector has recorded the
scope's last-known-good snapshot. ``test_report`` prints the table quoted in the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena.apps import APPS
from arena.bench.detection_terms import example_slo_queries, slo_query_env, start_slo_prometheus, wait_latency
from arena.scenarios.engine import Engine, Registry
from arena.telemetry.plane import AppsArena
from stratus.bus import Bus
from stratus.lastgood import LastGoodStore, bucket_name
from stratus.localinfra import LocalServer
from stratus.supervisor import wait_healthy
from tests.e2e.apps import healthy, slo_probes
from tests.e2e.harness import Timeline, baseline, running_system
from tests.fixtures_apps import engine_fixture

UNSEEN = Path(os.environ.get("STRATUS_UNSEEN_DIR") or Path(__file__).parents[1] / "data" / "unseen")
"""The scenario folder to measure (``STRATUS_UNSEEN_DIR``, e.g. the arena's SREGym catalogue); default the data here."""
REGISTRY = Registry([UNSEEN])
ONLY = {p.strip() for p in os.environ.get("STRATUS_UNSEEN_ONLY", "").split(",") if p.strip()}
"""``STRATUS_UNSEEN_ONLY``: comma-separated scenario ids to run (default every mitigation id of the folder)."""
SETTLE_S = float(os.environ.get("STRATUS_UNSEEN_LASTGOOD_SETTLE_S", "2"))
"""How long the scope must be healthy before a last-known-good is recorded (the product's default is 60 s; 2 s keeps
a run short, but lets an intermittent fault's clean stretches be recorded as healthy: raise it for those)."""
PROMETHEUS = os.environ.get("STRATUS_UNSEEN_PROMETHEUS") == "1"
"""``STRATUS_UNSEEN_PROMETHEUS=1``: a real Prometheus scrapes the app plane, and the services get its URL and the SLO
queries of ``STRATUS_SLO_QUERIES`` (default: the examples in deploy/prometheus/slo-queries.yml)."""
SLO_QUERIES = os.environ.get("STRATUS_SLO_QUERIES") or example_slo_queries()
COORD_SETTLE_S = os.environ.get("STRATUS_UNSEEN_SETTLE_S", "")
"""``STRATUS_UNSEEN_SETTLE_S``: the coordinator's wait before mu_post (the harness's 2 s by default; the product's 5 s
lets a fix that reaches the program through a mounted file's sync show)."""
LATENCY = os.environ.get("STRATUS_LATENCY_SLO_ENABLED", "").lower() in ("1", "true")
"""With the latency term on, each scenario waits for the scope's healthy latency samples before its fault."""


def _settings(text: str) -> dict[str, str]:
    """``STRATUS_UNSEEN_SET``: a JSON object of ``STRATUS_*`` settings given to the services (an operator's grant:
    ``{"STRATUS_WRITE_POLICY": "path/to/policy.yaml", "STRATUS_LEASE_WIDENING_SCOPES": ["cluster", "kube-system"]}``);
    a list or object value is passed as JSON, as the settings read it."""
    data = json.loads(text or "{}")
    if not isinstance(data, dict) or not all(isinstance(k, str) and k.startswith("STRATUS_") for k in data):
        raise ValueError("STRATUS_UNSEEN_SET must be a JSON object of STRATUS_* settings")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


SETTINGS = _settings(os.environ.get("STRATUS_UNSEEN_SET", ""))
"""Settings every run's services get on top of the harness's (the default: none, the built-in write policy)."""
MITIGATION = sorted(
    pid for pid, (_, task) in REGISTRY.by_id.items() if task == "mitigation" and (not ONLY or pid in ONLY)
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("STRATUS_UNSEEN"), reason="a measurement: set STRATUS_UNSEEN=1 to run it"),
]
RESULTS: list[dict[str, Any]] = []

engine = engine_fixture("module", time_scale=0.1)


@pytest.fixture(scope="module")
def prometheus_env(apps_arena: AppsArena) -> Iterator[dict[str, str]]:
    if not PROMETHEUS:
        yield {}
        return
    prom = start_slo_prometheus(apps_arena.plane_url)
    try:
        yield slo_query_env(prom.url, SLO_QUERIES)
    finally:
        prom.stop()


async def wait_lastgood(bus: Bus, scope: str, after: float, timeout: float = 60.0) -> None:
    store = LastGoodStore(bus.js, bucket_name("STRATUS"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await store.latest(scope)
        if snap is not None and snap.taken_at >= after:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no last-known-good snapshot of {scope} within {timeout}s")


@pytest.mark.parametrize("pid", MITIGATION)
async def test_unseen(
    pid: str,
    engine: Engine,
    apps_arena: AppsArena,
    apps_kubeconfig: Path,
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    prometheus_env: dict[str, str],
) -> None:
    scenario, _ = REGISTRY.get(pid)
    spec = APPS[scenario.app]
    healthy(engine, scenario.app, redeploy_after=60)
    engine.prepare(scenario)  # the app as the problem deploys it: part of the last-known-good state
    timeline = await Timeline(bus, spec.namespace).start(new_only=True)
    record: dict[str, Any] = {"scenario": pid, **({"settings": SETTINGS} if SETTINGS else {})}
    try:
        with running_system(
            nats_server.url,
            redis_server.url,
            apps_kubeconfig,
            spec.namespace,
            f"t{uid}",
            Path("var/e2e") / f"unseen-{pid}.log",
            STRATUS_POLICY="rulebook",
            STRATUS_SLO_PROBES=slo_probes(apps_arena.plane_url),
            STRATUS_JAEGER_URL=apps_arena.plane_url,
            STRATUS_ESCALATION_COOLDOWN_S="0",
            STRATUS_MAX_RETRIES="5",
            STRATUS_LASTGOOD_SETTLE_S=str(SETTLE_S),
            STRATUS_LASTGOOD_REFRESH_S="600",
            **{
                **prometheus_env,
                **({"STRATUS_SETTLE_S": COORD_SETTLE_S} if COORD_SETTLE_S else {}),
                **SETTINGS,  # an operator's settings last: they win over the harness's
            },
        ):
            started = time.time()
            await wait_healthy(nats_server.url, timeout=60)
            await wait_lastgood(bus, spec.namespace, started, timeout=60 + 3 * SETTLE_S)
            if LATENCY:
                await wait_latency(bus.js, spec.namespace)
            injected = time.monotonic()
            engine.inject(scenario)
            await timeline.wait_for("incident_opened", timeout=90)
            record["ttd_s"] = round(time.monotonic() - injected, 1)
            while True:
                n = len(timeline.of("incident_opened"))
                closed = (await timeline.wait_for("incident_closed", count=n, timeout=300))[-1]
                if len(timeline.of("incident_opened")) == n:
                    break
            record["ttm_s"] = round(time.monotonic() - injected, 1)
            record["outcome"] = closed["outcome"]
            record["attempts"] = sum(c["attempts"] for c in timeline.of("incident_closed"))
            record["decisions"] = [d["decision"] for d in timeline.of("transaction_decided")]
            record["tnr"] = all(
                max(float(m) for m in inc["visible_mu"]) <= baseline(timeline, inc)
                for inc in timeline.of("incident_closed")
            )
            diagnosis = timeline.of("diagnosis")
            record["localisation"] = diagnosis[0]["localisation"][:3] if diagnosis else []
            record["summary"] = diagnosis[0]["summary"][:300] if diagnosis else ""
            evidence = diagnosis[0]["evidence"] if diagnosis else []
            record["operator_grant"] = [e for e in evidence if "an operator must add" in e][:2]
            record["writes"] = [
                f"{e['action']['verb']} {e['action'].get('kind')}/{e['action'].get('name')}"
                for e in timeline.of("action_executed")
            ]
            verdict = engine.wait_check(scenario, "strict", timeout=15)
            record["strict"] = verdict.passed
            record["reasons"] = verdict.reasons[:3]
            assert record["tnr"], "TNR violated"
    finally:
        RESULTS.append(record)
        with (Path("var/e2e") / "unseen-results.jsonl").open("a") as out:  # each row as it ends, for partial runs
            out.write(json.dumps(record) + "\n")
        await timeline.stop()
        engine.recover(scenario)
        healthy(engine, scenario.app, redeploy_after=60)


def test_report() -> None:
    for r in RESULTS:
        print(json.dumps(r))
    solved = [r for r in RESULTS if r.get("strict") and r.get("outcome") == "resolved"]
    print(f"unseen: {len(solved)}/{len(RESULTS)} mitigated to the strict oracle")
