"""``make demo``: Stratus end to end on the embedded default, rendered live in the terminal.

NATS and Redis (started unless reachable at the configured URLs), the arena with the fault's app (HotelReservation,
SocialNetwork or the Astronomy Shop), the six services (rulebook reasoners unless an LLM endpoint is configured),
one fault from the catalogue (``FAULT=<problem id>``), then the incident as it happens: detection, diagnosis, each
transaction with its hidden and visible mu, commit, abort and undo, and the resolution; a summary at the end.
Everything it started is stopped before it returns.

It lives in the arena package because it drives the arena; the product never imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from arena.apps import APPS
from arena.scenarios.engine import Engine, PlaneClient, Registry, wait_for
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec
from stratus.bus import Bus
from stratus.contracts import ALL_EVENTS, EVENT_ADAPTER, EVENTS_STREAM
from stratus.settings import CommonSettings
from stratus.supervisor import Supervisor, wait_healthy

DEFAULT_FAULT = "revoke_auth_mongodb-mitigation-1"
STYLE = {
    "incident_opened": "bold red",
    "diagnosis": "cyan",
    "checkpointed": "dim",
    "action_executed": "yellow",
    "transaction_decided": "bold",
    "undo_completed": "magenta",
    "incident_closed": "bold green",
    "work_failed": "red",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", default=DEFAULT_FAULT, help=f"problem id to inject (default {DEFAULT_FAULT})")
    parser.add_argument("--timeout", type=float, default=100.0, help="seconds to wait for the incident to close")
    return parser.parse_args(argv)


def line(event: Any, t0: float) -> str:
    e = event
    when = f"{time.monotonic() - t0:6.1f}s"
    match e.kind:
        case "incident_opened":
            text = f"DETECTED  incident {e.incident_id} on {e.scope}: b = mu(s0) = {e.baseline:g}"
            text += "".join(f"\n                 - {x}" for x in e.evidence[:4])
        case "diagnosis":
            cause = f"{e.root_cause.system_level} / {e.root_cause.fault_type}" if e.root_cause else "unknown"
            text = f"DIAGNOSED {', '.join(e.localisation[:3]) or '?'}  [{cause}]"
            if e.summary:
                text += f"\n                 {e.summary[:200]}"
        case "state_changed":
            text = f"state     {e.previous} -> {e.state}" + (f"  ({e.reason[:100]})" if e.reason else "")
        case "checkpointed":
            text = f"CHECKPOINT attempt {e.attempt}: mu = {e.severity.mu:g}, digest {e.digest[:12]}"
        case "action_executed":
            params = ", ".join(f"{k}={v}" for k, v in e.action.params.items() if k != "manifest")[:90]
            target = f"{e.action.kind}/{e.action.name}"
            text = f"  ACTION  #{e.seq} {e.action.verb} {target} {params}  -> hidden mu {e.mu_after}"
        case "transaction_started":
            text = f"TAKEN     {e.tx_id} by mitigator {e.worker or '?'}"
        case "transaction_ended":
            text = f"ENDED     {e.tx_id}: {e.actions} write(s), hidden mu-path {e.hidden_mu}"
        case "transaction_decided":
            text = f"{e.decision.upper():9} {e.tx_id}: mu {e.mu_pre:g} -> {e.mu_post:g}  ({e.reason})"
        case "undo_completed":
            ok = "digest restored" if not e.divergences else f"{len(e.divergences)} divergence(s)"
            text = f"UNDONE    {e.tx_id}: {e.undone} write(s) rolled back, {ok}"
        case "work_failed":
            text = f"FAILED    {e.service}: {e.reason[:160]}"
        case "incident_closed":
            text = f"CLOSED    {e.outcome.upper()} after {e.attempts} attempt(s); visible mu-path {e.visible_mu}"
        case _:
            text = e.kind
    return f"{when}  {text}"


async def follow(console: Console, bus: Bus, scope: str, t0: float, timeout: float) -> list[Any]:
    events: list[Any] = []
    incidents: set[str] = set()
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        try:
            event = EVENT_ADAPTER.validate_json(msg.data)
        except ValueError:
            return
        if event.kind == "incident_opened" and event.scope == scope:
            incidents.add(event.incident_id)
        if event.incident_id not in incidents or event.kind == "state_changed":
            return
        events.append(event)
        console.print(line(event, t0), style=STYLE.get(event.kind, ""))
        if event.kind == "incident_closed":
            done.set()

    from nats.js.api import DeliverPolicy

    sub = await bus.js.subscribe(
        ALL_EVENTS, stream=EVENTS_STREAM, cb=on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        console.print(f"[red]the incident did not close within {timeout:.0f}s[/]")
    finally:
        await sub.unsubscribe()
    return events


def healthy(engine: Engine, app: str) -> None:
    spec = APPS[app]
    engine.deploy(spec)
    engine.wait_ready(spec.namespace, 60)
    probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
    wait_for("a clean workload", lambda: engine._plane().workload(spec.namespace, probe).clean, 60, interval=0.25)


def summary(console: Console, events: list[Any], verdict: Any, t_inject: float, t0: float) -> bool:
    def first(kind: str) -> Any:
        return next((e for e in events if e.kind == kind), None)

    opened, closed = first("incident_opened"), first("incident_closed")
    actions = [e for e in events if e.kind == "action_executed"]
    tokens = sum(e.usage.prompt_tokens + e.usage.completion_tokens for e in events if hasattr(e, "usage"))
    cost = sum(e.usage.cost_usd for e in events if hasattr(e, "usage"))
    baseline = closed.baseline if closed and closed.baseline is not None else (opened.baseline if opened else math.nan)
    visible = closed.visible_mu if closed else []
    table = Table(title="Summary", show_header=False)
    table.add_row("time to detect", f"{opened.ts.timestamp() - t_inject:.1f} s" if opened else "-")
    table.add_row("time to mitigate", f"{closed.ts.timestamp() - t_inject:.1f} s" if closed else "-")
    table.add_row("outcome", closed.outcome if closed else "not closed")
    table.add_row("attempts (transactions)", str(closed.attempts if closed else 0))
    table.add_row("actions (writes)", str(len(actions)))
    table.add_row("LLM tokens / cost", f"{tokens} / ${cost:.4f}")
    table.add_row(f"visible mu-path (b = {baseline:g})", " -> ".join(f"{m:g}" for m in visible) or "-")
    table.add_row("TNR held (visible mu <= b)", "yes" if visible and max(visible) <= baseline else "no")
    table.add_row("strict oracle", "PASS" if verdict.passed else f"FAIL: {'; '.join(verdict.reasons)[:200]}")
    table.add_row("wall time", f"{time.monotonic() - t0:.1f} s")
    console.print(table)
    return bool(closed and closed.outcome == "resolved" and verdict.passed)


async def run(args: argparse.Namespace, console: Console) -> bool:
    t0 = time.monotonic()
    scenario, _ = Registry().get(args.fault)
    spec = APPS[scenario.app]
    settings = CommonSettings()
    console.rule(f"[bold]Stratus demo: {args.fault} on {spec.namespace}")
    arena = AppsArena(timing=Timing.fast())
    arena.start()
    sup = Supervisor(str(settings.nats_url), str(settings.redis_url), echo=lambda _: None)
    workdir = Path(tempfile.mkdtemp(prefix="stratus-demo-"))
    kube: Kube | None = None
    try:
        sup.ensure_infrastructure()
        kubeconfig = arena.write_kubeconfig(workdir / "kubeconfig")
        kube = Kube.from_kubeconfig(str(kubeconfig))
        engine = Engine(kube, PlaneClient(arena.plane_url), time_scale=0.1)
        console.print(f"arena at {arena.url} (kubeconfig {kubeconfig}); nats {sup.nats_url}; redis {sup.redis_url}")
        await asyncio.to_thread(healthy, engine, scenario.app)
        console.print(f"{spec.name}: every pod Ready, workload clean ({time.monotonic() - t0:.1f}s)")
        probes = {
            spec.namespace: [
                f"{arena.plane_url}/probe/{spec.namespace}{r.path}?method={r.method}"
                for r in spec.workload
                if r.weight >= 1
            ]
        }
        sup.env = {
            "STRATUS_KUBECONFIG": str(kubeconfig),
            "STRATUS_SCOPES": json.dumps([spec.namespace]),
            "STRATUS_REDIS_PREFIX": f"demo-{uuid.uuid4().hex[:8]}",
            "STRATUS_SLO_PROBES": json.dumps(probes),
            "STRATUS_JAEGER_URL": arena.plane_url,
            "STRATUS_PROBE_INTERVAL_S": "0.5",
            "STRATUS_SETTLE_S": "2",
            # the app was checked healthy just now: its state is recorded as last good at once, as a long-running
            # deployment has it (change analysis and the write policy's "ran before" read it), not after 60 s
            "STRATUS_LASTGOOD_SETTLE_S": "0",
            "STRATUS_PORT": "0",
        }
        sup.start_services()
        replies = await wait_healthy(sup.nats_url, timeout=30)
        healthy_services = sorted(s for s, rs in replies.items() if any(r.ok for r in rs))
        console.print(f"services healthy: {', '.join(healthy_services)}")
        bus = await Bus.connect(sup.nats_url, name="stratus-demo")
        try:
            await bus.ensure_streams()
            console.print(f"[bold]injecting {args.fault}[/]")
            t_inject = time.time()
            follower = asyncio.create_task(follow(console, bus, spec.namespace, t0, args.timeout))
            await asyncio.to_thread(engine.inject, scenario)
            events = await follower
        finally:
            await bus.close()
        verdict = await asyncio.to_thread(engine.wait_check, scenario, "strict", 15)
        return summary(console, events, verdict, t_inject, t0)
    finally:
        sup.stop()
        if kube is not None:
            kube.close()
        arena.stop()
        console.print("stopped everything the demo started")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        ok = asyncio.run(run(args, console))
    except KeyboardInterrupt:
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
