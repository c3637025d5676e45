"""The incident pipeline end to end: ``python -m stratus.benchmarks.pipeline [--samples 20] [-k 8] [--hold 1.0]``.

Starts everything itself: an arena (``stratus arena serve``, as a separate process: the kernel never imports the
arena), ``nats-server -js``, ``redis-server`` and the six services as processes (``stratus.supervisor``), and stops
all of it at the end. Two measurements:

1. **Webhook -> incident opened.** One namespace (Deployments ``web`` and ``db``) whose ``web`` is really down
   (scaled to zero, its pods gone). An Alertmanager v4 webhook is POSTed to the bridge (bearer token) and the time
   until ``incident_opened`` of that scope arrives on the events stream is taken. The detector opens on an alert at
   once when the scope's mu is at or over the threshold, while its probes need ``STRATUS_CONFIRM_PROBES`` consecutive
   bad rounds; the probes are set never to confirm here, so every incident is opened by the webhook. Each sample
   waits for the incident to be resolved (scripted one-action fix) and breaks ``web`` again: the latency is the quiet
   system's.
2. **Throughput.** ``-k`` namespaces break at once (``web`` scaled to zero); the probes detect them; each incident is
   diagnosed (rulebook), mitigated by a scripted one-action transaction (the fix, after ``--hold`` seconds standing in
   for an agent's reasoning time) and validated. Run with 1 and then 2 replicas of diagnoser, mitigator and undoer
   (one coordinator): incidents closed per second and incident events per second, from the first ``incident_opened``
   to the last ``incident_closed``; scaling efficiency = throughput(2) / (2 * throughput(1)).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from nats.js.api import DeliverPolicy

from stratus.actions import Scale
from stratus.bus import Bus
from stratus.contracts import (
    ALL_EVENTS,
    EVENTS_STREAM,
    SERVICES,
    WORK_STREAM,
    ActionExecuted,
    DiagnosisReady,
    IncidentOpened,
    Severity,
    TransactionEnded,
    TransactionStarted,
    events_subject,
)
from stratus.localinfra import LocalServer, free_port, start_nats, start_redis
from stratus.supervisor import Supervisor, gather_health, wait_healthy

TOKEN = "pipeline-benchmark-token"
FAST = {
    "STRATUS_PROBE_INTERVAL_S": "0.5",
    "STRATUS_CONFIRM_PROBES": "2",
    "STRATUS_SETTLE_S": "2",
    "STRATUS_LOG_LEVEL": "INFO",
}
AGENTS = ("diagnoser", "mitigator", "undoer")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- the arena, as a process, and the workload on it ---------------------------------------------------------


@contextlib.contextmanager
def arena_process(workdir: Path) -> Iterator[Path]:
    """``stratus arena serve`` on a free port; yields its kubeconfig once the API answers."""
    kubeconfig = workdir / "arena.kubeconfig"
    log = (workdir / "arena.log").open("wb")
    cmd = [sys.executable, "-m", "stratus.cli", "arena", "serve", "--port", "0", "--kubeconfig", str(kubeconfig)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the arena exited ({proc.returncode}); see {workdir / 'arena.log'}")
            if kubeconfig.exists():
                with contextlib.suppress(Exception):
                    api, core, _ = kube(kubeconfig)
                    core.list_namespace()
                    api.close()
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the arena did not come up within 60s")
            time.sleep(0.1)
        yield kubeconfig
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def kube(kubeconfig: Path) -> tuple[Any, Any, Any]:
    """The official client's ApiClient, CoreV1Api and AppsV1Api for the arena (plain dicts as bodies)."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api, k8s.CoreV1Api(api), k8s.AppsV1Api(api)


def deploy_app(kubeconfig: Path, ns: str) -> None:
    """A namespace with Deployments ``web`` and ``db`` (one replica each), each behind its Service. Only ``web``
    breaks, so the scope is degraded (finite mu), not down (mu = inf)."""
    api, core, apps = kube(kubeconfig)
    core.create_namespace({"metadata": {"name": ns}})
    for name in ("web", "db"):
        labels = {"app": name}
        container = {"name": name, "image": f"shop/{name}:1.0", "ports": [{"containerPort": 8080}]}
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
                },
            },
        )
        core.create_namespaced_service(
            ns,
            {"metadata": {"name": name}, "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}},
        )
    api.close()


def scale_web(kubeconfig: Path, ns: str, replicas: int) -> None:
    api, _, apps = kube(kubeconfig)
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": replicas}})
    api.close()


async def wait_pods(
    kubeconfig: Path, namespaces: list[str], ready: int, app: str = "web", timeout: float = 120.0
) -> None:
    """Until every namespace has ``ready`` Ready pods labelled ``app`` and no other such pod."""
    api, core, _ = kube(kubeconfig)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = True
            for ns in namespaces:
                pods = core.list_namespaced_pod(ns, label_selector=f"app={app}").items
                ok = [
                    p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                ]
                done = done and len(pods) == ready and len(ok) == ready
            if done:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"web pods did not reach {ready} Ready in {namespaces} within {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        api.close()


# --- the system ----------------------------------------------------------------------------------------------


@dataclass
class Events:
    """Incident events as they arrive on STRATUS_EVENTS (receipt time on this process's clock)."""

    scope_of: dict[str, str] = field(default_factory=dict)
    by_incident: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on(self, msg: Any) -> None:
        now = time.perf_counter()
        data = json.loads(msg.data)
        incident = data.get("incident_id")
        if incident is None:
            return
        if data.get("kind") == "incident_opened":
            self.scope_of[incident] = data["scope"]
        self.by_incident[incident].append((now, data))
        self.changed.set()

    def find(self, kind: str, scope: str) -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, e)
            for incident, events in self.by_incident.items()
            if self.scope_of.get(incident) == scope
            for t, e in events
            if e["kind"] == kind
        ]

    async def wait(self, kind: str, scope: str, count: int = 1, timeout: float = 120.0) -> list[tuple[float, Any]]:
        deadline = time.monotonic() + timeout
        while len(found := self.find(kind, scope)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no {count} x {kind} on {scope} within {timeout}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))
        return found


@contextlib.asynccontextmanager
async def system(
    nats: LocalServer,
    redis: LocalServer,
    kubeconfig: Path,
    scopes: list[str],
    plan: Path,
    log: Path,
    replicas: dict[str, int],
    **env: str,
) -> Any:
    bridge_port = free_port()
    settings = {
        **FAST,
        "STRATUS_KUBECONFIG": str(kubeconfig),
        "STRATUS_SCOPES": json.dumps(scopes),
        "STRATUS_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "STRATUS_PORT": str(bridge_port),
        "STRATUS_WEBHOOK_TOKEN": TOKEN,
        "STRATUS_POLICY": "scripted",
        "STRATUS_SCRIPTED_PLAN": str(plan),
        **env,
    }
    with log.open("w") as sink:

        def echo(line: str) -> None:
            sink.write(line + "\n")

        sup = Supervisor(nats.url, redis.url, env=settings, replicas=replicas, echo=echo)
        sup.start_services()
        try:
            await all_replicas_healthy(nats.url, {s: replicas.get(s, 1) for s in SERVICES}, log)
            yield f"http://127.0.0.1:{bridge_port}/webhook"
        finally:
            sup.stop()


async def follow(nats: LocalServer) -> tuple[Bus, Events, Any]:
    bus = await Bus.connect(nats.url, name="pipeline-benchmark")
    await bus.ensure_streams()
    events = Events()
    sub = await bus.js.subscribe(
        ALL_EVENTS, stream=EVENTS_STREAM, cb=events.on, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )
    return bus, events, sub


async def all_replicas_healthy(nats_url: str, expected: dict[str, int], log: Path, timeout: float = 180.0) -> None:
    """Until every replica of every service answers its health request as ready."""
    await wait_healthy(nats_url, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        health = await gather_health(nats_url, window=0.5)
        up = {s: sum(r.ok for r in health.get(s, [])) for s in expected}
        if all(up[s] >= n for s, n in expected.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every replica is healthy: {up} of {expected}; see {log}")
        await asyncio.sleep(0.3)


def webhook_body(ns: str, i: int) -> dict[str, Any]:
    labels = {"alertname": "StratusReplicasUnavailable", "namespace": ns, "deployment": "web", "severity": "warning"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{deployment="web", namespace="{ns}"}}',
        "status": "firing",
        "receiver": "stratus",
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.benchmark",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"Deployment {ns}/web has 0 available replicas"},
                "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.benchmark/graph",
                "fingerprint": f"{uuid.uuid4().hex[:12]}{i:04d}",
            }
        ],
    }


# --- the measurements ----------------------------------------------------------------------------------------


async def webhook_latency(
    nats: LocalServer, redis: LocalServer, kubeconfig: Path, workdir: Path, samples: int
) -> list[float]:
    ns = f"lat-{uuid.uuid4().hex[:6]}"
    deploy_app(kubeconfig, ns)
    await wait_pods(kubeconfig, [ns], 1, "db")
    await wait_pods(kubeconfig, [ns], 1)
    plan = workdir / "fix.yaml"
    plan.write_text(yaml.safe_dump({"attempts": [["kubectl scale deployment web --replicas=1"]]}))
    bus, events, sub = await follow(nats)
    latencies: list[float] = []
    try:
        async with (
            system(
                nats,
                redis,
                kubeconfig,
                [ns],
                plan,
                workdir / "latency.log",
                {},
                STRATUS_CONFIRM_PROBES="1000000",  # only the webhook opens incidents
            ) as webhook,
            httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http,
        ):
            for i in range(samples):
                scale_web(kubeconfig, ns, 0)
                await wait_pods(kubeconfig, [ns], 0)
                t0 = time.perf_counter()
                r = await http.post(webhook, json=webhook_body(ns, i))
                if r.status_code != 200:
                    raise RuntimeError(f"the bridge answered {r.status_code}: {r.text}")
                opened = await events.wait("incident_opened", ns, count=i + 1, timeout=60)
                latencies.append(opened[-1][0] - t0)
                await events.wait("incident_closed", ns, count=i + 1, timeout=120)
                await wait_pods(kubeconfig, [ns], 1)
    finally:
        await sub.unsubscribe()
        await bus.close()
    return latencies


@dataclass
class Throughput:
    replicas: int
    incidents: int
    seconds: float
    events: int
    resolved: int
    tnr_held: bool
    aborts: int
    lease_lapses: int

    @property
    def incidents_per_s(self) -> float:
        return self.incidents / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


async def throughput(
    nats: LocalServer, redis: LocalServer, kubeconfig: Path, workdir: Path, k: int, hold: float, replicas: int
) -> Throughput:
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"tp{replicas}-{tag}-{i}" for i in range(k)]
    for ns in namespaces:
        deploy_app(kubeconfig, ns)
    await wait_pods(kubeconfig, namespaces, 1, "db")
    await wait_pods(kubeconfig, namespaces, 1)
    plan = workdir / f"fix-hold-{replicas}.yaml"
    steps: list[Any] = ([{"pause": hold}] if hold > 0 else []) + ["kubectl scale deployment web --replicas=1"]
    plan.write_text(yaml.safe_dump({"attempts": [steps] * 10}))  # the fix on every attempt: no escalation
    bus, events, sub = await follow(nats)
    try:
        async with system(
            nats,
            redis,
            kubeconfig,
            namespaces,
            plan,
            workdir / f"throughput-{replicas}.log",
            {agent: replicas for agent in AGENTS},
        ):
            for ns in namespaces:
                scale_web(kubeconfig, ns, 0)
            timeout = 120 + k * (hold + 10)
            opened = [(await events.wait("incident_opened", ns, timeout=timeout))[0] for ns in namespaces]
            closed = [(await events.wait("incident_closed", ns, timeout=timeout))[0] for ns in namespaces]
    finally:
        await sub.unsubscribe()
        await bus.close()
    start = min(t for t, _ in opened)
    end = max(t for t, _ in closed)
    ids = {e["incident_id"] for _, e in opened}
    n_events = sum(len(evs) for incident, evs in events.by_incident.items() if incident in ids)
    baselines = {e["incident_id"]: float(e["baseline"]) for _, e in opened}
    baselines.update({e["incident_id"]: float(e["baseline"]) for _, e in closed if e.get("baseline") is not None})
    tnr = all(max((float(m) for m in e["visible_mu"]), default=0.0) <= baselines[e["incident_id"]] for _, e in closed)
    resolved = sum(e["outcome"] == "resolved" for _, e in closed)
    aborted = [
        e
        for incident, evs in events.by_incident.items()
        if incident in ids
        for _, e in evs
        if e["kind"] == "transaction_decided" and e["decision"] == "abort"
    ]
    lapses = sum("lost its lease" in e["reason"] for e in aborted)
    return Throughput(replicas, k, end - start, n_events, resolved, tnr, len(aborted), lapses)


async def run(samples: int, k: int, hold: float, lease_ttl: float, workdir: Path) -> None:
    FAST["STRATUS_LEASE_TTL_S"] = str(lease_ttl)
    out(f"pipeline benchmark (logs in {workdir}); machine: {os.cpu_count()} CPU(s); lease TTL {lease_ttl:g}s")
    nats, redis = start_nats(), start_redis()
    try:
        with arena_process(workdir) as kubeconfig:
            lat = await webhook_latency(nats, redis, kubeconfig, workdir, samples)
            ms = [x * 1000 for x in lat]
            out("webhook POST -> incident_opened on the events stream (1 replica each, quiet system):")
            out(
                f"  n={len(ms)}  p50={pct(ms, 50):.1f} ms  p99={pct(ms, 99):.1f} ms  "
                f"mean={statistics.fmean(ms):.1f} ms  min={min(ms):.1f} ms  max={max(ms):.1f} ms"
            )
            results = []
            for r in (1, 2):
                tp = await throughput(nats, redis, kubeconfig, workdir, k, hold, r)
                results.append(tp)
                out(
                    f"throughput, {r} replica(s) of {'/'.join(AGENTS)}: {tp.incidents} incidents in {tp.seconds:.1f}s "
                    f"-> {tp.incidents_per_s:.3f} incidents/s, {tp.events_per_s:.1f} incident events/s "
                    f"({tp.events} events; resolved {tp.resolved}/{tp.incidents}; aborted transactions {tp.aborts}, "
                    f"of which lease lapsed in the queue {tp.lease_lapses}; TNR held: {tp.tnr_held})"
                )
            one, two = results
            out(
                f"scaling efficiency = throughput(2) / (2 * throughput(1)) = "
                f"{two.incidents_per_s / (2 * one.incidents_per_s):.2f} (incidents/s), "
                f"{two.events_per_s / (2 * one.events_per_s):.2f} (events/s); "
                f"speed-up {two.incidents_per_s / one.incidents_per_s:.2f}x  "
                f"[k={k} namespaces, agent hold {hold:g}s per transaction]"
            )
    finally:
        redis.stop()
        nats.stop()


# --- the coordinator and the bus, on a synthetic cluster (no arena) ------------------------------------------


@dataclass
class Run:
    """One synthetic run: ``incidents`` opened at once over ``scopes`` namespaces, ``replicas`` of each service."""

    incidents: int
    scopes: int
    replicas: int
    seconds: float = 0.0
    events: int = 0
    closed: int = 0
    decision_ms: list[float] = field(default_factory=list)
    lock_wait_ms: list[float] = field(default_factory=list)
    incident_ms: list[float] = field(default_factory=list)
    published_per_incident: float = 0.0
    deliveries_per_incident: float = 0.0
    redis_per_incident: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {pct(values, 50):.1f} / p99 {pct(values, 99):.1f}"


async def _redis_commands(redis_url: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("stats")
        return int(info["total_commands_processed"])
    finally:
        await client.aclose()


async def _deliveries(bus: Bus) -> tuple[int, int]:
    """(messages stored in the events and work streams, deliveries made by every consumer of them)."""
    published = delivered = 0
    for stream in (EVENTS_STREAM, WORK_STREAM):
        info = await bus.js.stream_info(stream)
        published += int(info.state.last_seq)
        for consumer in await bus.js.consumers_info(stream):
            delivered += int(consumer.delivered.consumer_seq or 0) if consumer.delivered else 0
    return published, delivered


@contextlib.contextmanager
def synthetic_services(
    nats: LocalServer, redis: LocalServer, workdir: Path, replicas: int, tag: str, agents: bool = True
) -> Iterator[list[int]]:
    """``replicas`` synthetic coordinators (the real service over a synthetic cluster) and as many synthetic agents."""
    env = {
        **os.environ,
        "STRATUS_NATS_URL": nats.url,
        "STRATUS_REDIS_URL": redis.url,
        "STRATUS_REDIS_PREFIX": f"bench-{tag}",
        "STRATUS_STEADY_S": "0",
        "STRATUS_SETTLE_S": "0",
        "STRATUS_UNDO_SETTLE_S": "0",
        "STRATUS_LEASE_TTL_S": "30",
        "STRATUS_LOG_LEVEL": "WARNING",
        "STRATUS_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    procs = []
    log = (workdir / f"synthetic-{tag}.log").open("wb")
    try:
        for r in range(replicas):
            for module in (
                "services.coordinator.synthetic",
                "stratus.benchmarks.agents diagnoser",
                "stratus.benchmarks.agents mitigator",
                "stratus.benchmarks.agents undoer",
            ):
                argv = [sys.executable, "-m", *module.split()]
                procs.append(
                    subprocess.Popen(
                        argv,
                        env={**env, "STRATUS_INSTANCE": f"{module.split()[-1]}-{r}"},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        log.close()


async def partitions_settled(nats_url: str, replicas: int, timeout: float = 120.0) -> None:
    """Until ``replicas`` coordinators answer health and together own every partition once (no handover mid-run)."""
    deadline = time.monotonic() + timeout
    while True:
        health = await gather_health(nats_url, ("coordinator",), window=0.5)
        owned = [r.details.get("partitions", "none") for r in health.get("coordinator", []) if r.ok]
        taken = [int(p) for o in owned if o != "none" for p in o.split(",")]
        if len(owned) >= replicas and "none" not in owned and sorted(taken) == list(range(16)):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the coordinators' partitions did not settle: {owned}")
        await asyncio.sleep(0.5)


async def synthetic_run(
    nats: LocalServer, redis: LocalServer, workdir: Path, incidents: int, scopes: int, replicas: int
) -> Run:
    """Open ``incidents`` at once over ``scopes`` and follow each to its close (every transaction commits)."""
    tag = uuid.uuid4().hex[:6]
    run = Run(incidents, scopes, replicas)
    bus = await Bus.connect(nats.url, name="bench-driver")
    await bus.ensure_streams()
    seen: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    closed = asyncio.Event()

    async def on(msg: Any) -> None:
        now = time.perf_counter()
        data = json.loads(msg.data)
        incident = data.get("incident_id", "")
        if not incident.startswith(f"inc-{tag}"):
            return
        seen[incident][data["kind"]].append(now)
        run.events += 1
        if data["kind"] == "incident_closed":
            run.closed += 1
            if run.closed >= incidents:
                closed.set()

    sub = await bus.nc.subscribe(ALL_EVENTS, cb=on)
    try:
        with synthetic_services(nats, redis, workdir, replicas, tag):
            await partitions_settled(nats.url, replicas)
            await asyncio.sleep(1.0)  # the agents' consumers exist
            published0, delivered0 = await _deliveries(bus)
            redis0 = await _redis_commands(redis.url)
            start = time.perf_counter()
            for i in range(incidents):
                incident = f"inc-{tag}-{i:04d}"
                event = IncidentOpened(
                    incident_id=incident, scope=f"ns-{tag}-{i % scopes}", s0=Severity(mu=2.0), baseline=2.0
                )
                await bus.js.publish(
                    events_subject(incident, event.kind),
                    event.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": event.id},
                )
            await asyncio.wait_for(closed.wait(), timeout=60 + incidents * 2.0)
            run.seconds = time.perf_counter() - start
            await asyncio.sleep(0.5)  # the last acks
            published1, delivered1 = await _deliveries(bus)
            redis1 = await _redis_commands(redis.url)
    finally:
        await sub.unsubscribe()
        await bus.close()
    for kinds in seen.values():
        opened = kinds["incident_opened"][0]
        if kinds["incident_closed"]:
            run.incident_ms.append((kinds["incident_closed"][0] - opened) * 1000)
        for ended, decided in zip(kinds["transaction_ended"], kinds["transaction_decided"], strict=False):
            run.decision_ms.append((decided - ended) * 1000)
        for diagnosed, checkpoint in zip(kinds["diagnosis"], kinds["checkpointed"], strict=False):
            run.lock_wait_ms.append((checkpoint - diagnosed) * 1000)
    run.published_per_incident = (published1 - published0) / incidents
    run.deliveries_per_incident = (delivered1 - delivered0) / incidents
    run.redis_per_incident = (redis1 - redis0) / incidents
    return run


def report(run: Run) -> None:
    out(
        f"  {run.incidents:>4} incidents / {run.scopes:>3} scope(s) / {run.replicas} replica(s): "
        f"closed {run.closed} in {run.seconds:.2f}s, coordinator {run.events_per_s:.0f} events/s "
        f"({run.events} events); event->decision ms {_stats(run.decision_ms)}; "
        f"lock wait ms {_stats(run.lock_wait_ms)}; incident ms {_stats(run.incident_ms)}; per incident: "
        f"{run.published_per_incident:.1f} bus messages, {run.deliveries_per_incident:.1f} deliveries, "
        f"{run.redis_per_incident:.0f} Redis commands"
    )


def flow(incident: str, scope: str) -> list[Any]:
    """What the agents would answer an incident with, in order (the coordinator's request and tx ids are
    deterministic): opened, diagnosis, and one transaction that started, wrote once and ended."""
    tx = f"{incident}-tx1"
    action = Scale(kind="Deployment", namespace=scope, name="web", replicas=1)
    return [
        IncidentOpened(incident_id=incident, scope=scope, s0=Severity(mu=2.0), baseline=2.0),
        DiagnosisReady(id=f"{incident}:diagnosis", incident_id=incident, localisation=["web"]),
        TransactionStarted(id=f"{tx}:started", incident_id=incident, tx_id=tx, attempt=1),
        ActionExecuted(id=f"{tx}:1", incident_id=incident, tx_id=tx, attempt=1, seq=1, action=action, ok=True),
        TransactionEnded(id=f"{tx}:ended", incident_id=incident, tx_id=tx, attempt=1, actions=1, hidden_mu=[0.0]),
    ]


async def _publish(bus: Bus, event: Any) -> float:
    await bus.js.publish(
        events_subject(event.incident_id, event.kind),
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": event.id},
    )
    return time.perf_counter()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _coordinator_deliveries(bus: Bus) -> int:
    total = 0
    for consumer in await bus.js.consumers_info(EVENTS_STREAM):
        if consumer.name.startswith("coordinator") and consumer.delivered:
            total += int(consumer.delivered.consumer_seq or 0)
    return total


async def handlers(workdir: Path, incidents: int, samples: int = 20) -> None:
    """The coordinator's handlers alone (one replica, synthetic cluster, no agents): throughput on a backlog of
    ``incidents`` complete flows, then the latency of each reaction on an idle system."""
    nats, redis = start_nats(), start_redis()
    tag = uuid.uuid4().hex[:6]
    try:
        bus = await Bus.connect(nats.url, name="bench-driver")
        await bus.ensure_streams()
        received: dict[str, dict[str, float]] = defaultdict(dict)
        ids: dict[str, set[str]] = defaultdict(set)  # distinct events (a re-published outbox is one event)
        changed = asyncio.Event()

        async def on(msg: Any) -> None:
            data = json.loads(msg.data)
            key = data["kind"] if data["kind"] != "state_changed" else f"state:{data['state']}"
            received[data.get("incident_id", "")].setdefault(key, time.perf_counter())
            ids[data.get("incident_id", "")].add(data.get("id", ""))
            changed.set()

        async def until(check: Any, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out; see {workdir}")
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)

        sub = await bus.nc.subscribe(ALL_EVENTS, cb=on)
        backlog = [f"inc-{tag}-{i:04d}" for i in range(incidents)]
        for i, incident in enumerate(backlog):  # the whole backlog is in the stream before the coordinator starts
            for event in flow(incident, f"ns-{i}"):
                await _publish(bus, event)
        with synthetic_services(nats, redis, workdir, 1, tag, agents=False) as pids:
            await until(lambda: any("state:diagnosing" in received[i] for i in backlog), 120)
            cpu0 = cpu_seconds(pids[0])
            await until(lambda: all("incident_closed" in received[i] for i in backlog), 120 + incidents)
            cpu = cpu_seconds(pids[0]) - cpu0
            first = min(received[i]["state:diagnosing"] for i in backlog)
            last = max(received[i]["incident_closed"] for i in backlog)
            consumed = await _coordinator_deliveries(bus)
            seconds = last - first
            out(f"coordinator handlers (1 replica, {os.cpu_count()} CPU(s)), a backlog of {incidents} incidents:")
            per_incident = sum(len(ids[i]) for i in backlog) / incidents  # the incident's events on the stream
            out(
                f"  {consumed} events consumed in {seconds:.2f}s = {consumed / seconds:.0f} events/s consumed, "
                f"{incidents / seconds:.1f} incidents/s; coordinator CPU {cpu * 1000 / incidents:.1f} ms per incident "
                f"= {cpu * 1000 / consumed:.2f} ms per event consumed"
            )
            out(
                f"  one core's capacity at that CPU cost: {incidents / cpu:.0f} incidents/s = "
                f"{consumed / cpu:.0f} events consumed/s; counting every incident event the coordinator handles or "
                f"writes (~{per_incident:.0f} per incident): {per_incident * incidents / cpu:.0f} events/s"
            )
            reactions: dict[str, list[float]] = defaultdict(list)
            for n in range(samples):  # one incident at a time on an idle system
                incident, scope = f"lat-{tag}-{n:03d}", f"lat-{n}"
                opened, diagnosis, started, action, ended = flow(incident, scope)
                sent = await _publish(bus, opened)
                await until(lambda i=incident: "state:diagnosing" in received[i], 30)
                reactions["incident_opened -> diagnose request"].append(received[incident]["state:diagnosing"] - sent)
                sent = await _publish(bus, diagnosis)
                await until(lambda i=incident: "checkpointed" in received[i], 30)
                reactions["diagnosis -> checkpoint + mitigate request"].append(
                    received[incident]["checkpointed"] - sent
                )
                for event in (started, action):
                    await _publish(bus, event)
                sent = await _publish(bus, ended)
                await until(lambda i=incident: "incident_closed" in received[i], 30)
                reactions["transaction_ended -> decision"].append(received[incident]["transaction_decided"] - sent)
            out(f"  latency of each reaction, one incident at a time (n={samples}), ms:")
            for what, values in reactions.items():
                ms = [v * 1000 for v in values]
                out(f"    {what:<45} p50 {pct(ms, 50):6.1f}  p99 {pct(ms, 99):6.1f}")
        await sub.unsubscribe()
        await bus.close()
    finally:
        redis.stop()
        nats.stop()


async def cost(workdir: Path, sizes: list[int], scope_counts: list[int], replica_counts: list[int]) -> None:
    """How cost grows with concurrent incidents, scopes and replicas."""
    out(f"cost growth, synthetic cluster ({os.cpu_count()} CPU(s)); a fresh NATS and Redis per run:")
    for replicas in replica_counts:
        for scopes in scope_counts:
            for n in sizes:
                nats, redis = start_nats(), start_redis()
                try:
                    report(await synthetic_run(nats, redis, workdir, n, scopes, replicas))
                finally:
                    redis.stop()
                    nats.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stratus.benchmarks.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="Webhook -> incident opened samples.")
    parser.add_argument("-k", type=int, default=8, help="Namespaces (concurrent incidents) per throughput run.")
    parser.add_argument(
        "--hold", type=float, default=1.0, help="Seconds a mitigation holds before its write (reasoning time)."
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        help="Writer lease TTL (the product's default 30 s). A mitigation request waits in the queue under a lease "
        "nobody renews yet: with too short a TTL and too few mitigators, queued transactions are rolled back.",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="Where logs go (default: a temporary directory).")
    parser.add_argument(
        "--mode",
        choices=("handlers", "cost", "system"),
        default="handlers",
        help="handlers: the coordinator's handler throughput and latency on a synthetic cluster (seconds); cost: "
        "the same over 1/10/100 incidents x 1/10/100 scopes x 1/2 replicas (minutes); system: the whole pipeline on "
        "the arena (webhook latency, agent throughput).",
    )
    parser.add_argument("--incidents", type=int, default=200, help="Concurrent synthetic incidents (handlers).")
    parser.add_argument("--sizes", default="1,10,100", help="Concurrent incidents per cost run.")
    parser.add_argument("--scopes", default="1,10,100", help="Scopes per cost run.")
    parser.add_argument("--replicas", default="1,2", help="Replicas of each service per cost run.")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stratus-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.mode == "handlers":
        asyncio.run(handlers(workdir, args.incidents))
    elif args.mode == "cost":
        ints = [[int(x) for x in v.split(",")] for v in (args.sizes, args.scopes, args.replicas)]
        asyncio.run(cost(workdir, *ints))
    else:
        asyncio.run(run(args.samples, args.k, args.hold, args.lease_ttl, workdir))


if __name__ == "__main__":
    main()
