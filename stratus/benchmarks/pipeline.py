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

from stratus.bus import Bus
from stratus.contracts import ALL_EVENTS, EVENTS_STREAM, SERVICES
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
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stratus-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.samples, args.k, args.hold, args.lease_ttl, workdir))


if __name__ == "__main__":
    main()
