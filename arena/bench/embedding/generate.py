"""Record the state-embedding dataset: arena runs with injected faults and clean periods, read back through the same
telemetry APIs Stratus reads in production (a real Prometheus scraping the arena's ``/metrics`` over its HTTP API,
the arena's Jaeger query API, pod logs from the Kubernetes API).

One arena holds both applications; each app has its own *lane* (a thread) that runs its jobs one after the other, so
the two apps' runs overlap in time and the whole plan takes about as long as its longest lane. Each lane drives its
app with a load whose rate drifts and bursts (benign changes a detector must not flag). Per job: the app healthy for
``clean_s``, inject, ``fault_s``, recover, ``recover_s``; then the telemetry of the run is read and written, gzipped
JSON, with the times of injection and recovery and the ground truth. The data is synthetic: it is what the arena's
emulation produces, not a production system's telemetry.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from arena.apps import APPS
from arena.bench.embedding.plan import Job, Plan
from arena.scenarios import schema as s
from arena.scenarios.engine import Engine, PlaneClient, StepError
from arena.scenarios.kube import Kube
from arena.scenarios.oracles import every_pod_ready
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec
from stratus.embedding.sources import arena_queries
from stratus.embedding.telemetry import JaegerSource, KubeLogSource, PrometheusSource, Telemetry, TelemetryReader
from stratus.gateway import KubeApi
from stratus.localinfra import LocalServer
from stratus.promstack import ensure_installed, start_prometheus

log = logging.getLogger(__name__)
APPS_BY_NS = {a.namespace: a for a in APPS.values()}
TIME_SCALE = 0.1
TICK_S = 0.25


class Load:
    """An app's request load: a drifting rate (slow wave + random walk) with occasional bursts, sent in small
    batches through the plane's workload endpoint."""

    def __init__(self, plane_url: str, namespace: str, rps: float, seed: int, probe_rps: float = 0.5) -> None:
        self.plane = PlaneClient(plane_url)
        self.namespace, self.rps, self.probe_rps = namespace, rps, probe_rps
        self.routes = [(r.method, r.path) for r in APPS_BY_NS[namespace].workload]
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"load-{namespace}", daemon=True)
        self.walk = 0.0
        self.burst_until = 0.0

    def start(self) -> Load:
        self.thread.start()
        return self

    def rate(self, t: float) -> float:
        self.walk = max(-0.35, min(0.35, self.walk + self.rng.gauss(0, 0.03)))
        if t > self.burst_until and self.rng.random() < 0.004:
            self.burst_until = t + self.rng.uniform(2, 6)
        burst = 0.6 if t < self.burst_until else 0.0
        return self.rps * max(0.2, 1.0 + 0.25 * math.sin(2 * math.pi * t / 47.0) + self.walk + burst)

    def _run(self) -> None:
        while not self.stop.wait(TICK_S):
            t = time.time()
            spec = WorkloadSpec(rate=self.rate(t), duration_s=TICK_S, seed=self.rng.randrange(1 << 30))
            try:
                self.plane.workload(self.namespace, spec)
                # SLO probes: every route of the app, whatever its share of the mix (as the bench's probes do)
                for method, path in self.routes:
                    if self.rng.random() < self.probe_rps * TICK_S:
                        self.plane.request(self.namespace, method, path)
            except Exception:  # the app may be down mid-fault; the load keeps going
                log.debug("load batch failed", exc_info=True)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.plane.close()


class Recorder:
    """Runs jobs on one arena and writes ``<out>/runs/<job id>.json.gz``."""

    def __init__(self, plan: Plan, out: Path, echo: Callable[[str], None] = lambda line: None) -> None:
        self.plan, self.out, self.echo = plan, out, echo
        (out / "runs").mkdir(parents=True, exist_ok=True)

    def run(self, jobs: list[Job]) -> list[Path]:
        ensure_installed()
        tmp = Path(tempfile.mkdtemp(prefix="stratus-embedding-"))
        arena = AppsArena(timing=Timing.fast()).start()
        prom: LocalServer | None = None
        written: list[Path] = []
        try:
            host = arena.plane_url.split("://", 1)[1]
            prom = start_prometheus([host], scrape_interval=f"{self.plan.scrape_s:g}s")
            kubeconfig = str(arena.write_kubeconfig(tmp / "kubeconfig"))
            lanes: dict[str, list[Job]] = {}
            for job in jobs:
                lanes.setdefault(job.app, []).append(job)
            errors: list[str] = []
            threads = [
                threading.Thread(
                    target=self._lane, args=(app, todo, arena.plane_url, prom.url, kubeconfig, written, errors)
                )
                for app, todo in lanes.items()
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                self.echo(f"{len(errors)} run(s) failed: " + "; ".join(errors[:5]))
        finally:
            if prom is not None:
                prom.stop()
            arena.stop()
        return written

    def _lane(
        self,
        app_name: str,
        todo: list[Job],
        plane_url: str,
        prom_url: str,
        kubeconfig: str,
        written: list[Path],
        errors: list[str],
    ) -> None:
        app = APPS[app_name]
        kube = Kube.from_kubeconfig(kubeconfig)
        plane = PlaneClient(plane_url)
        engine = Engine(kube, plane, time_scale=TIME_SCALE)
        api = KubeApi.from_kubeconfig(kubeconfig)

        def reader() -> TelemetryReader:  # one per read: its HTTP clients belong to that read's event loop
            return TelemetryReader(
                prometheus=PrometheusSource(
                    prom_url, arena_queries(), rate=self.plan.rate_interval, http=httpx.AsyncClient(timeout=120)
                ),
                jaeger=JaegerSource(plane_url, limit=100_000, http=httpx.AsyncClient(timeout=300)),
                logs=KubeLogSource(api),
                step=self.plan.scrape_s,
            )

        load = Load(plane_url, app.namespace, self.plan.load_rps.get(app_name, 10.0), seed=hash(app_name) % 1000)
        try:
            engine.deploy(app)
            engine.wait_ready(app.namespace, 120)
            load.start()
            time.sleep(self.plan.window_s)
            for job in todo:
                path = self.out / "runs" / f"{job.id}.json.gz"
                if path.exists():
                    self.echo(f"{job.id}: already recorded")
                    continue
                try:
                    self._healthy(engine, app)
                    doc = self._job(job, engine, reader, app.namespace)
                except Exception as exc:  # one failed run must not lose the others
                    errors.append(f"{job.id}: {exc!r}")
                    self.echo(f"{job.id}: FAILED {exc!r}")
                    continue
                tmp = path.with_suffix(".tmp")
                with gzip.open(tmp, "wt") as f:
                    json.dump(doc, f, separators=(",", ":"))
                tmp.rename(path)
                written.append(path)
                n = doc["telemetry"]
                self.echo(
                    f"{job.id} ({job.split}): {len(n['series'])} series, {len(n['spans'])} spans, "
                    f"{len(n['logs'])} log lines"
                )
        finally:
            load.close()
            api.close()
            plane.close()
            kube.close()

    def _healthy(self, engine: Engine, app: Any) -> None:
        try:
            engine.wait_ready(app.namespace, 30)
            if not every_pod_ready(engine.pods(app.namespace)):
                return
        except (TimeoutError, StepError):
            pass
        self.echo(f"{app.name}: not healthy after recovery; redeploying")
        engine.redeploy(app)
        engine.wait_ready(app.namespace, 120)
        time.sleep(self.plan.window_s)

    def _job(self, job: Job, engine: Engine, reader: Callable[[], TelemetryReader], namespace: str) -> dict[str, Any]:
        plan = self.plan
        scenario = s.Scenario.model_validate(job.scenario)
        t0 = time.time()
        time.sleep(plan.clean_s)
        t_inject = time.time()
        if not job.noop:
            engine.inject(scenario)
        time.sleep(plan.fault_s)
        t_recover = time.time()
        if not job.noop:
            try:
                engine.recover(scenario)
            except (StepError, TimeoutError) as exc:
                self.echo(f"{job.id}: recovery incomplete ({exc})")
        time.sleep(plan.recover_s)
        t_end = time.time()
        time.sleep(plan.scrape_s * 2)  # the last scrape lands
        telemetry = asyncio.run(_read(reader(), namespace, t0 - plan.window_s, t_end))
        return {
            "job": job.model_dump(),
            "namespace": namespace,
            "t0": t0,
            "t_inject": t_inject if not job.noop else None,
            "t_recover": t_recover if not job.noop else None,
            "t_end": t_end,
            "telemetry": telemetry.to_json(),
        }


async def _read(reader: TelemetryReader, namespace: str, start: float, end: float) -> Telemetry:
    try:
        return await reader.read(namespace, start, end)
    finally:
        await reader.aclose()
