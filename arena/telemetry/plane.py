"""The applications' data plane in the arena process: behaviour, request model, traces, metrics and workload, served
over HTTP next to the Kubernetes API (Jaeger query API, Prometheus ``/metrics``, and ``/arena/*`` for load).

Everything runs on the arena's event loop, like the kubelet, so the request model and the kubelet never observe each
other half-way through a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from arena.apps import APPS, AppSpec, app_for_namespace
from arena.behaviour import backends, cpu, queueing
from arena.behaviour.model import AppBehaviour
from arena.behaviour.requests import HttpResult, RequestModel
from arena.behaviour.world import Runtime, World
from arena.hooks import ClusterView
from arena.telemetry.metrics import AppMetrics, exposition
from arena.telemetry.traces import TraceStore, envelope, jaeger_trace, parse_duration
from arena.workload.generator import WorkloadReport, WorkloadSpec, run_workload, run_workload_paced

log = logging.getLogger(__name__)


class AppPlane:
    def __init__(self, runtime: Runtime | None = None, timeout_ms: float = 10_000.0) -> None:
        self.runtime = runtime or Runtime()
        self.behaviour = AppBehaviour(self.runtime)
        self.traces = TraceStore()
        self.metrics = AppMetrics()
        self.requests = RequestModel(self.runtime, self.traces.add, self.metrics.observe, timeout_ms)
        self.view: ClusterView | None = None
        self._runner: web.AppRunner | None = None
        self._background: asyncio.Task[None] | None = None
        self.url: str | None = None

    def bind(self, view: ClusterView) -> None:
        self.view = view

    def _view(self) -> ClusterView:
        if self.view is None:
            raise RuntimeError("the app plane is not bound to a cluster view")
        return self.view

    def app_spec(self, namespace: str) -> AppSpec:
        spec = app_for_namespace(namespace) or APPS.get(namespace)
        if spec is None:
            raise KeyError(f"no application in namespace {namespace!r}; known: {[a.namespace for a in APPS.values()]}")
        return spec

    def http(self, namespace: str, method: str, path: str) -> HttpResult:
        app = self.app_spec(namespace)
        return self.requests.http(self._view(), app.namespace, app.frontend, app.frontend_port, method, path)

    def workload(self, namespace: str, spec: WorkloadSpec) -> WorkloadReport:
        app = self.app_spec(namespace)
        return run_workload(lambda m, p: self.http(app.namespace, m, p), app.workload, spec)

    async def workload_paced(self, namespace: str, spec: WorkloadSpec, time_scale: float) -> WorkloadReport:
        app = self.app_spec(namespace)
        return await run_workload_paced(lambda m, p: self.http(app.namespace, m, p), app.workload, spec, time_scale)

    # -- background traffic ------------------------------------------------------------------------------------
    def start_background(self, rps: float) -> None:
        """A trickle of the wrk2 mix to every deployed app, so traces and metrics are always live."""
        if rps > 0 and self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._trickle(rps))

    async def _trickle(self, rps: float) -> None:
        while True:
            await asyncio.sleep(1.0 / rps)
            view = self.view
            if view is None:
                continue
            for app in APPS.values():
                if not view.list("Deployment", app.namespace):
                    continue
                try:
                    spec = WorkloadSpec(rate=1, duration_s=1.0, seed=int(time.time() * 1000) % 100_000)
                    route = app.workload[0] if len(app.workload) == 1 else None
                    if route is not None:
                        self.http(app.namespace, route.method, route.path)
                    else:
                        self.workload(app.namespace, spec)
                except Exception:  # background traffic must never take the arena down
                    log.exception("background traffic to %s failed", app.name)

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/services", self._services)
        r.add_get("/api/services/{service}/operations", self._operations)
        r.add_get("/api/operations", self._operations)
        r.add_get("/api/traces", self._find)
        r.add_get("/api/traces/{trace_id}", self._trace)
        r.add_get("/metrics", self._metrics)
        r.add_post("/arena/workload", self._workload)
        r.add_post("/arena/request", self._request)
        r.add_get("/probe/{namespace}/{path:.*}", self._probe)
        r.add_get("/healthz", self._healthz)

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server: Any = site._server
        sockets = server.sockets if server is not None else []
        real_port = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{real_port}"
        return self.url

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
            self._background = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _services(self, request: web.Request) -> web.Response:
        return web.json_response(envelope(self.traces.services(request.query.get("namespace"))))

    async def _operations(self, request: web.Request) -> web.Response:
        service = request.match_info.get("service") or request.query.get("service", "")
        ops = self.traces.operations(service, request.query.get("namespace"))
        if "service" not in request.match_info:
            return web.json_response(envelope([{"name": o, "spanKind": "server"} for o in ops]))
        return web.json_response(envelope(ops))

    async def _find(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            lookback = parse_duration(q.get("lookback"), 3600.0) if q.get("lookback") not in ("custom",) else 3600.0
            min_dur = parse_duration(q.get("minDuration"), 0.0) if q.get("minDuration") else None
            limit = int(q.get("limit", "20") or 20)
            tags = json.loads(q["tags"]) if q.get("tags") else None
            start = int(q["start"]) if q.get("start") else None
            end = int(q["end"]) if q.get("end") else None
        except (ValueError, TypeError) as e:
            body = envelope(None, [{"code": 400, "msg": str(e)}])
            return web.json_response(body, status=400)
        service = q.get("service")
        if not service:
            body = envelope(None, [{"code": 400, "msg": "parameter 'service' is required"}])
            return web.json_response(body, status=400)
        traces = self.traces.find(
            service=service,
            operation=q.get("operation") or None,
            lookback_s=lookback,
            limit=limit,
            start_us=start,
            end_us=end,
            tags=tags,
            min_duration_us=int(min_dur * 1e6) if min_dur else None,
            namespace=q.get("namespace"),
        )
        return web.json_response(envelope([jaeger_trace(t) for t in traces]))

    async def _trace(self, request: web.Request) -> web.Response:
        trace = self.traces.get(request.match_info["trace_id"])
        if trace is None:
            body = envelope(None, [{"code": 404, "msg": "trace not found"}])
            return web.json_response(body, status=404)
        return web.json_response(envelope([jaeger_trace(trace)]))

    async def _metrics(self, request: web.Request) -> web.Response:
        text = exposition(self.metrics, self.view)
        if self.view is not None:
            text += "".join(line + "\n" for line in backends.kafka_metrics(self.view, self.runtime))
            text += "".join(line + "\n" for line in cpu.cpu_metrics(self.view, self.runtime))
            world = World(self.view, self.runtime)
            text += "".join(line + "\n" for line in queueing.queue_metrics(self.view, world))
        return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _workload(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        namespace = str(body.pop("namespace", ""))
        time_scale = float(body.pop("time_scale", 0.0))
        try:
            spec = WorkloadSpec.model_validate(body)
            if time_scale > 0:
                report = await self.workload_paced(namespace, spec, time_scale)
            else:
                report = self.workload(namespace, spec)
        except (KeyError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(report.model_dump())

    async def _request(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        try:
            r = self.http(str(body.get("namespace", "")), str(body.get("method", "GET")), str(body.get("path", "/")))
        except KeyError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(
            {"status": r.status, "latency_ms": r.latency_ms, "trace_id": r.trace_id, "error": r.error}
        )

    async def _probe(self, request: web.Request) -> web.Response:
        """A blackbox probe of an app's front end: ``GET /probe/<ns>/<path>?method=POST`` answers with the status
        the app's front end gave (502 when it could not be reached), so plain HTTP SLO checks can watch the app."""
        ns, path = request.match_info["namespace"], "/" + request.match_info["path"]
        method = request.query.get("method", "GET").upper()
        try:
            r = self.http(ns, method, path)
        except KeyError as e:
            return web.json_response({"error": str(e)}, status=404)
        status = r.status if 100 <= r.status <= 599 else 502
        return web.json_response({"status": r.status, "latency_ms": r.latency_ms, "error": r.error}, status=status)


class AppsArena:
    """An ``ArenaServer`` whose kubelet asks the applications' behaviour, with the app plane served next to it.

    The plane's URL is published in ConfigMap ``arena-system/telemetry`` so that clients holding only the kubeconfig
    (the scenario engine, ``stratus arena inject``) find the Jaeger, Prometheus and load endpoints.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        plane_port: int = 0,
        timing: Any = None,
        nodes: int = 3,
        background_rps: float = 0.0,
        runtime: Runtime | None = None,
    ) -> None:
        from arena.server import ArenaServer
        from arena.timing import Timing

        self.plane = AppPlane(runtime)
        self.plane.runtime.probe_scale = (timing or Timing()).probe_period / 10.0
        self.plane.runtime.volume_sync = 60.0 * self.plane.runtime.probe_scale  # the kubelet's sync period
        self.server = ArenaServer(host, port, behaviour=self.plane.behaviour, nodes=nodes, timing=timing)
        self.host, self.plane_port, self.background_rps = host, plane_port, background_rps

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def plane_url(self) -> str:
        assert self.plane.url is not None
        return self.plane.url

    def start(self) -> AppsArena:
        self.server.start()
        cluster = self.server.cluster
        self.plane.bind(cluster.view)
        deadline = time.monotonic() + 10
        while cluster.loop is None and time.monotonic() < deadline:  # the controller task sets it on its first turn
            time.sleep(0.01)
        loop = cluster.loop
        if loop is None:
            raise RuntimeError("the arena's controller loop did not start")

        async def boot() -> str:
            url = await self.plane.serve(self.host, self.plane_port)
            self.plane.start_background(self.background_rps)
            return url

        url = asyncio.run_coroutine_threadsafe(boot(), loop).result(30)
        for obj in (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "arena-system"}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "telemetry", "namespace": "arena-system"},
                "data": {"url": url, "jaeger": url, "prometheus": f"{url}/metrics"},
            },
        ):
            cluster.apply(obj)
        return self

    def stop(self) -> None:
        loop = self.server.cluster.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.plane.close(), loop).result(10)
        self.server.stop()

    def write_kubeconfig(self, path: Any) -> Any:
        return self.server.write_kubeconfig(path)

    def __enter__(self) -> AppsArena:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
