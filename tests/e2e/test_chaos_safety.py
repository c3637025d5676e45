"""The safety net under a hostile mitigator (issue 5's chaos acceptance).

Faults of the AIOpsLab catalogue are injected into both applications; the mitigator runs the *chaos* policy: random
writes that confinement permits (scales, image and env changes, patches, restarts, deletes, creates), mostly harmful.
Every transaction is validated and, when it does not help, undone from its journal. Over at least
``CHAOS_TRANSACTIONS`` transactions the test asserts that every abort restores the checkpoint's digest with no
divergence and that no visible mu exceeds its incident's b; a regression is printed with the writes that caused it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
from pathlib import Path

import pytest

from arena.apps import APPS
from arena.scenarios.engine import Engine, PlaneClient, Registry
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from stratus.bus import Bus
from stratus.localinfra import LocalServer
from stratus.supervisor import Supervisor
from tests.e2e.apps import healthy, slo_probes
from tests.e2e.harness import Timeline, baseline, running_system

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHAOS_TRANSACTIONS = int(os.environ.get("STRATUS_TEST_CHAOS_TRANSACTIONS", "100"))
"""100 in ``make test`` (about 4 minutes on 2 cores; the suite must stay under 20). Issue 5's 200-transaction run:
``STRATUS_TEST_CHAOS_TRANSACTIONS=200`` here, or ``stratus bench --suite chaos --transactions 200``."""
FAULTS = {
    "test-hotel-reservation": [
        "revoke_auth_mongodb-mitigation-1",
        "misconfig_app_hotel_res-mitigation-1",
        "wrong_bin_usage-mitigation-1",
        "user_unregistered_mongodb-mitigation-2",
    ],
    "test-social-network": [
        "k8s_target_port-misconfig-mitigation-1",
        "scale_pod_zero_social_net-mitigation-1",
        "assign_to_non_existent_node_social_net-mitigation-1",
    ],
}


@pytest.mark.timeout(2400)
async def test_chaos_never_regresses_the_visible_mu(
    apps_arena: AppsArena, nats_server: LocalServer, redis_server: LocalServer, bus: Bus, uid: str, tmp_path: Path
) -> None:
    kubeconfig = Path(apps_arena.write_kubeconfig(tmp_path / "kubeconfig"))
    scopes = list(FAULTS)
    # One client per app: the two apps are driven from two threads, and the official client's exec (websocket)
    # swaps the request function of its ApiClient while it runs, so a client must not be shared across threads.
    kubes = {ns: Kube.from_kubeconfig(str(kubeconfig)) for ns in scopes}
    planes = {ns: PlaneClient(apps_arena.plane_url) for ns in scopes}
    engines = {ns: Engine(kubes[ns], planes[ns], time_scale=0.1) for ns in scopes}
    registry = Registry()
    timelines: dict[str, Timeline] = {}
    try:
        await _run(apps_arena, nats_server, redis_server, bus, uid, kubeconfig, engines, registry, timelines)
    finally:
        for timeline in timelines.values():
            await timeline.stop()
        for ns in scopes:
            planes[ns].close()
            kubes[ns].close()


async def wait_until_quiet(timeline: Timeline, timeout: float = 900) -> None:
    """Until every incident opened in the timeline's scope has closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(timeline.of("incident_closed")) < len(timeline.of("incident_opened")):
        assert loop.time() < deadline, f"{timeline.scope}: an incident stayed open for {timeout}s"
        await asyncio.sleep(0.5)


async def _run(
    apps_arena: AppsArena,
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    kubeconfig: Path,
    engines: dict[str, Engine],
    registry: Registry,
    timelines: dict[str, Timeline],
) -> None:
    scopes = list(engines)
    for ns in scopes:
        healthy(engines[ns], next(name for name, spec in APPS.items() if spec.namespace == ns))
    for ns in scopes:
        timelines[ns] = await Timeline(bus, ns).start(new_only=True)
    counts = {"transactions": 0, "aborts": 0, "commits": 0, "digest_restored": 0, "incidents": 0, "regressions": 0}
    problems: list[str] = []  # visible-mu regressions
    undo_problems: list[str] = []

    def decided() -> int:
        return sum(len(t.of("transaction_decided")) for t in timelines.values())

    paused: list[str] = []  # the apps being recovered; the detector is stopped while there is any

    async def one_app(ns: str, system: Supervisor) -> None:
        timeline, engine = timelines[ns], engines[ns]
        for pid in itertools.cycle(FAULTS[ns]):
            if decided() >= CHAOS_TRANSACTIONS:
                return
            scenario, _ = registry.get(pid)
            closed_before = len(timeline.of("incident_closed"))
            await asyncio.to_thread(engine.inject, scenario)
            await timeline.wait_for("incident_closed", count=closed_before + 1, timeout=900)
            # The test's own recovery must not race Stratus: with the fault still there the detector would open a
            # new incident at once, and its chaos writes (or the redeploy below deleting the namespace under a
            # running undo) would mix the test's repairs with the system under test. Detection is paused (SIGSTOP)
            # while any app recovers, after the scope's last incident has closed.
            paused.append(ns)
            if len(paused) == 1:
                for pid_ in system.pids("detector"):
                    os.kill(pid_, signal.SIGSTOP)
            try:
                await wait_until_quiet(timeline)
                await asyncio.to_thread(engine.recover, scenario)
                # A chaos transaction that happened to lower mu was committed, so its writes stay (TNR allows it:
                # the visible mu went down); the scenario's recovery does not know them, hence the redeploy fallback.
                await asyncio.to_thread(healthy, engine, scenario.app, 45)
            finally:
                paused.remove(ns)
                if not paused:
                    for pid_ in system.pids("detector"):
                        os.kill(pid_, signal.SIGCONT)

    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        scopes,
        f"t{uid}",
        Path("var/e2e") / f"chaos-{uid}.log",
        STRATUS_POLICY="chaos",
        STRATUS_SLO_PROBES=slo_probes(apps_arena.plane_url),
        STRATUS_DIAGNOSIS_POLICY="rulebook",
        STRATUS_CHAOS_SEED=str(int(uid, 16)),
        STRATUS_MAX_RETRIES="9",
        STRATUS_SETTLE_S="0.5",
        STRATUS_PROBE_INTERVAL_S="0.3",
        STRATUS_ESCALATION_COOLDOWN_S="0",
        STRATUS_UNDO_SETTLE_S="30",  # the wait ends as soon as mu is back at or under b
    ) as system:
        await asyncio.gather(*(one_app(ns, system) for ns in scopes))

    for ns, timeline in timelines.items():
        opened = {e["incident_id"]: float(e["baseline"]) for e in timeline.of("incident_opened")}
        checkpoints = {e["tx_id"]: e["digest"] for e in timeline.of("checkpointed")}
        counts["incidents"] += len(opened)
        aborted: set[str] = set()
        for d in timeline.of("transaction_decided"):
            counts["transactions"] += 1
            counts["aborts" if d["decision"] == "abort" else "commits"] += 1
            if d["decision"] == "abort":
                aborted.add(d["tx_id"])
        # An undo re-issued under a fresh lease (its first undoer picked the request up late, on a busy machine)
        # may complete twice; each run must restore the digest, and a transaction counts once.
        restored: set[str] = set()
        for u in timeline.of("undo_completed"):
            if not u["divergences"] and u["restored_digest"] == checkpoints.get(u["tx_id"]):
                restored.add(u["tx_id"])
            else:
                undo_problems.append(f"{ns} {u['tx_id']}: undo left {u['divergences'][:3]}")
        counts["digest_restored"] += len(restored & aborted)
        undo_problems += [
            f"{ns} {tx}: aborted, and no undo restored its checkpoint" for tx in sorted(aborted - restored)
        ]
        undo_problems += [f"{ns} {tx}: undone but never aborted" for tx in sorted(restored - aborted)]
        for c in timeline.of("incident_closed"):
            b = baseline(timeline, c)
            over = [float(m) for m in c["visible_mu"] if float(m) > b]
            if over:
                counts["regressions"] += 1
                mine = [e for e in timeline.events if e.get("incident_id") == c["incident_id"]]
                story = [
                    f"{e['kind']} {e.get('tx_id', '')} "
                    + (f"{e['action']['verb']} {e['action']['kind']}/{e['action']['name']}" if "action" in e else "")
                    + (
                        f" mu={e['severity']['mu']} {e['severity']['unhealthy'] + e['severity']['violations']}"
                        if "severity" in e
                        else ""
                    )
                    for e in mine
                    if e["kind"] in ("action_executed", "checkpointed")
                ]
                problems.append(f"{ns} {c['incident_id']}: visible mu {c['visible_mu']} over b={b}: {story}")
    print("chaos safety:", json.dumps(counts))
    assert counts["transactions"] >= CHAOS_TRANSACTIONS
    # What the undo guarantees in code: every aborted transaction is rolled back to the checkpoint's digest.
    assert counts["digest_restored"] == counts["aborts"] and not undo_problems, undo_problems[:10]
    # The visible-mu promise: no state a transaction left visible is worse than b. It rests on the gateway refusing
    # writes whose harm no undo reaches (terminating Ready pods: rule ready_capacity), on the undo shrinking what a
    # stuck rollout added, and on b being taken once the fault stopped unfolding.
    for p in problems:
        print("visible-mu regression:", p[:2000])
    assert counts["regressions"] == 0, [p[:2000] for p in problems]
