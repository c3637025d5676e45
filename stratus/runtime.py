"""What every service process does around its handlers: connect, declare the topology, answer health requests,
run its consumers and background tasks, and stop cleanly on SIGTERM/SIGINT.

A service's ``app.py`` builds a ``ServiceRuntime``, registers its consumers and tasks, and calls ``run()``. The
consumers are FastStream subscribers on the runtime's ``Bus`` (see ``stratus.bus`` for what happens to a message).
On stop the broker stops fetching and waits for running handlers (``STRATUS_STOP_GRACE_S``); background tasks see
``runtime.stop`` and end on their own, and are cancelled only after the same grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

from stratus import __version__, crashpoints
from stratus.bus import Bus, Dropped, DroppedHook
from stratus.contracts import DeadLetter, HealthReply, WorkFailed
from stratus.dependencies import Dependencies, Probe, nats_probe
from stratus.errors import PermanentError, TemporaryError
from stratus.metrics import SERVICE_INFO, MetricsServer, start_metrics_server
from stratus.observability import INSTANCE, shutdown_tracing, tracer_provider
from stratus.observability import configure_logging as _configure_logging
from stratus.settings import CommonSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


class Deferred(Generic[T]):
    """A handler registered when the service is built (so the AsyncAPI document knows it) and implemented once
    the service is connected to its dependencies (``bind``)."""

    def __init__(self) -> None:
        self._target: Callable[[T], Awaitable[None]] | None = None

    def bind(self, target: Callable[[T], Awaitable[None]]) -> None:
        self._target = target

    async def __call__(self, message: T) -> None:
        if self._target is None:
            raise TemporaryError("the service is still starting", delay=1.0)
        await self._target(message)


def configure_logging(level: str, service: str, fmt: str = "json", instance: str = "") -> None:
    """JSON lines (or text) on stderr, each carrying the service, and the incident and transaction being handled."""
    _configure_logging(level, service, fmt, instance)


class ServiceRuntime:
    def __init__(self, service: str, settings: CommonSettings) -> None:
        self.service = service
        self.settings = settings
        self.instance = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
        crashpoints.arm(settings.crash_dir)
        INSTANCE.set(self.instance)
        self.topology = settings.topology
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.bus = Bus.create(
            str(settings.nats_url),
            service=service,
            topology=self.topology,
            # Spans cost CPU on every message: they are made only when they can leave the process.
            tracer_provider=tracer_provider(service, self.instance, str(settings.otlp_endpoint))
            if settings.otlp_endpoint
            else None,
            stop_grace_s=settings.stop_grace_s,
        )
        self._tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._startup: list[Callable[[Bus], Awaitable[None]]] = []
        self.starting: str | None = "connecting"
        self.exit_code = 0
        """Non-zero when the service could not start (a ``PermanentError`` from a startup hook, e.g. a bad
        kubeconfig): ``run()`` then ends the process with it after one log line that says why."""
        self._health_details: Callable[[], dict[str, str]] = dict
        self.dependencies = Dependencies()
        self.dependencies.add("nats", nats_probe(lambda: self.bus.connected))
        self._health = self.bus.broker.subscriber(
            self.topology.health(service),
            title=f"{self.topology.health(service)}:health",
            description=f"Health of every {service} replica (request/reply: each replica answers with a HealthReply).",
        )
        self._health(self._on_health)
        self.publishes(
            DeadLetter,
            "{prefix}.deadletter." + service,
            f"Every message {service} dropped (malformed, refused or retried to exhaustion), with the reason.",
        )

    # --- registration ------------------------------------------------------------------------------------------

    def consumer(
        self,
        body: Any,
        handler: Callable[[Any], Awaitable[None]],
        *,
        description: str,
        on_dropped: DroppedHook | None = None,
    ) -> None:
        """Consume this service's durable consumer (``Topology.consumer``): ``body`` is the contract the messages
        are validated against, ``description`` what the service does with them (both go into the AsyncAPI)."""
        self.bus.subscribe(
            self.topology.consumer(self.service),
            body,
            handler,
            name=self.service,
            description=description,
            on_dropped=on_dropped,
        )

    def publishes(self, body: Any, subject: str, description: str) -> None:
        """Document a message this service publishes (for the AsyncAPI document). ``subject`` is a template whose
        ``{placeholders}`` name the variable tokens; ``{prefix}`` and ``{partition}`` are filled in here."""
        self.bus.declare(subject.replace("{prefix}", self.topology.prefix), body, description)

    def publishes_event(self, body: Any, description: str) -> None:
        """Document an incident event this service publishes on ``<prefix>.events.<partition>.<incident_id>.<kind>``."""
        kind = body.model_fields["kind"].default
        self.publishes(body, "{prefix}.events.{partition}.{incident_id}." + kind, description)

    def task(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A background coroutine that runs until ``self.stop`` is set (it should watch it)."""
        self._tasks.append(fn)

    def startup(self, fn: Callable[[Bus], Awaitable[None]]) -> None:
        """A coroutine run once connected, before consuming (check a dependency, build handlers and register
        consumers that need the connection)."""
        self._startup.append(fn)

    def health_details(self, fn: Callable[[], dict[str, str]]) -> None:
        self._health_details = fn

    def depends_on(self, name: str, probe: Probe) -> None:
        """A dependency shown in health replies (``stratus status``): ok, or degraded with the reason."""
        self.dependencies.add(name, probe)

    # --- running -----------------------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.stop.is_set():
            log.info("%s: stopping", self.service)
            self.stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

        metrics = await self._start_metrics_or_exit()
        try:
            await self._run()
        finally:
            if metrics is not None:
                await metrics.stop()
            shutdown_tracing()
        if self.exit_code:
            raise SystemExit(self.exit_code)

    async def _start_metrics_or_exit(self) -> MetricsServer | None:
        try:
            return await self._start_metrics()
        except OSError as exc:
            log.error(
                "%s: cannot serve metrics on port %s: %s; give each process its own STRATUS_METRICS_PORT",
                self.service,
                self.settings.metrics_port,
                exc.strerror or exc,
            )
            raise SystemExit(2) from None

    async def _start_metrics(self) -> MetricsServer | None:
        SERVICE_INFO.labels(self.service, self.instance, __version__).set(1)
        if not self.settings.metrics_port:
            return None
        return await start_metrics_server(self.settings.metrics_port, ready=self._ready, alive=self._alive)

    def _ready(self) -> bool:
        """/readyz: connected to NATS, dependencies up (startup hooks done), not stopping."""
        return self.bus.connected and self.starting is None and not self.stop.is_set()

    def _alive(self) -> bool:
        """/healthz: false once the NATS connection is closed for good, so Kubernetes restarts the process."""
        return not self.bus.closed

    async def _run(self) -> None:
        if not await self._connect_with_retry():
            return
        bus = self.bus
        jobs: list[asyncio.Task[None]] = []
        try:
            await self._health.start()  # answers "not ready" while the startup hooks wait for a dependency
            await bus.ensure_streams()
            if not await self._run_startup(bus):
                return
            await bus.start()
            # Ready only now: a consumer that starts at the newest message (the notifier's) misses what is published
            # before it exists, so whoever waits for /readyz before publishing must find it there.
            self.starting = None
            log.info("%s: ready (instance %s, nats %s)", self.service, self.instance, self.settings.nats_url)
            jobs = [asyncio.create_task(t()) for t in self._tasks]
            jobs.append(asyncio.create_task(self.dependencies.run(self.stop)))
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([*jobs, stopper], return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                if job is not stopper and job.exception() is not None:
                    log.error("%s: a task failed: %r", self.service, job.exception())
            self.stop.set()
        finally:
            # A shutdown still going after 5 s (or the grace) has a slow or stuck handler: say where each task is, once.
            reporter = asyncio.get_running_loop().call_later(min(self.settings.stop_grace_s, 5.0), _report_stuck_tasks)
            await bus.close()  # stops fetching, waits for running handlers (the grace), drains
            reporter.cancel()
            if jobs:
                await asyncio.wait(jobs, timeout=self.settings.stop_grace_s)
                for job in jobs:
                    job.cancel()
            log.info("%s: stopped", self.service)

    async def _run_startup(self, bus: Bus) -> bool:
        """Run the startup hooks; a ``TemporaryError`` (a dependency not there yet) is retried with back-off while
        health answers "not ready" with the reason. False when asked to stop meanwhile."""
        for hook in self._startup:
            delay = 0.5
            while True:
                try:
                    await hook(bus)
                    break
                except PermanentError as exc:
                    log.error("%s: cannot start: %s", self.service, exc)
                    self.starting = str(exc)
                    self.exit_code = 2
                    return False
                except (TemporaryError, OSError, RedisConnectionError) as exc:  # a dependency not there yet
                    self.starting = str(exc)
                    log.warning("%s: not ready: %s; retrying in %.1fs", self.service, exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), timeout=delay)
                    if self.stop.is_set():
                        return False
                    delay = min(delay * 2, 10.0)
        self.starting = "starting its consumers"
        return True

    async def _connect_with_retry(self) -> bool:
        delay = 0.2
        while not self.stop.is_set():
            try:
                await self.bus.open()
                return True
            except Exception as exc:
                log.warning("%s: %s; retrying in %.1fs", self.service, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)
        return False

    async def _on_health(self) -> HealthReply:
        """Health of this replica: ready once its dependencies answered, with the service's details."""
        try:
            details = self._health_details()
            ok = self.starting is None
            if self.starting is not None:
                details = {**details, "starting": self.starting}
        except Exception as exc:
            details, ok = {"error": repr(exc)}, False
        return HealthReply(
            service=self.service,
            instance=self.instance,
            ok=ok,
            version=__version__,
            uptime_s=round(time.monotonic() - self.started, 3),
            details=details,
            dependencies=self.dependencies.snapshot(),
        )


def report_dropped_work(bus: Bus) -> DroppedHook:
    """An ``on_dropped`` hook for agents: a work request they gave up on (refused, malformed, retries exhausted)
    becomes a ``WorkFailed`` incident event, so the coordinator moves the incident on instead of waiting forever."""

    async def report(dropped: Dropped) -> None:
        body = dropped.body or {}
        incident_id = dropped.incident_id
        if incident_id is None:
            return  # no incident to tell; the dead-letter record is all there is
        request_id = str(body.get("id") or "")
        event = WorkFailed(
            id=f"{request_id or incident_id}:failed:{bus.service}",
            incident_id=incident_id,
            service=bus.service,
            request_id=request_id,
            reason=dropped.reason,
            tx_id=body.get("tx_id") if isinstance(body.get("tx_id"), str) else None,
            attempt=body.get("attempt") if isinstance(body.get("attempt"), int) else None,
        )
        await bus.publish(bus.topology.events(incident_id, event.kind), event)

    return report


def _report_stuck_tasks() -> None:
    """Log the stack of every pending asyncio task (a shutdown that does not finish, e.g. a handler stuck on I/O)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=12)
        where = " <- ".join(
            f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}" for f in frames
        )
        log.warning("still running at shutdown: task %s: %s", task.get_name(), where or "(no frames)")
