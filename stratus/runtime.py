"""What every service process does around its handlers: connect, declare the topology, answer health requests,
run its consumers and background tasks, and stop cleanly on SIGTERM/SIGINT.

A service's ``app.py`` builds a ``ServiceRuntime``, registers its consumers and tasks, and calls ``run()``.
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
from typing import Any, TypeVar

from nats.aio.msg import Msg
from pydantic import TypeAdapter

from stratus import __version__
from stratus.bus import Bus, Handler, KeyedDispatcher
from stratus.contracts import CONSUMERS, HealthReply, health_subject
from stratus.errors import PermanentError, TemporaryError
from stratus.metrics import SERVICE_INFO, MetricsServer, start_metrics_server
from stratus.settings import CommonSettings

T = TypeVar("T")

log = logging.getLogger(__name__)


def configure_logging(level: str, service: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {service:<11} %(levelname)-5s %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


class ServiceRuntime:
    def __init__(self, service: str, settings: CommonSettings) -> None:
        self.service = service
        self.settings = settings
        self.instance = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.bus: Bus | None = None
        self._consumers: list[Callable[[Bus], Coroutine[Any, Any, None]]] = []
        self._tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._startup: list[Callable[[Bus], Awaitable[None]]] = []
        self.starting: str | None = "connecting"
        self._health_details: Callable[[], dict[str, str]] = dict

    # --- registration ------------------------------------------------------------------------------------------

    def consumer(
        self,
        adapter: TypeAdapter[T],
        handler: Handler[T],
        *,
        on_rejected: Callable[[T, Msg, PermanentError], Awaitable[None]] | None = None,
    ) -> None:
        """Consume this service's durable consumer (see ``contracts.CONSUMERS``)."""
        spec = CONSUMERS[self.service]

        async def run(bus: Bus) -> None:
            await bus.consume(self.service, spec, adapter, handler, stop=self.stop, on_rejected=on_rejected)

        self._consumers.append(run)

    def keyed_consumer(self, adapter: TypeAdapter[T], handler: Handler[T], key: Callable[[T], str]) -> None:
        """Consume this service's durable consumer in parallel across keys, in order within a key."""
        spec = CONSUMERS[self.service]

        async def run(bus: Bus) -> None:
            await KeyedDispatcher(bus, self.service, spec, adapter, handler, key).run(self.stop)

        self._consumers.append(run)

    def task(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A background coroutine that runs until ``self.stop`` is set (it should watch it)."""
        self._tasks.append(fn)

    def startup(self, fn: Callable[[Bus], Awaitable[None]]) -> None:
        """A coroutine run once connected, before consuming (check a dependency, build handlers and register
        consumers that need the connection)."""
        self._startup.append(fn)

    def health_details(self, fn: Callable[[], dict[str, str]]) -> None:
        self._health_details = fn

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

        metrics = await self._start_metrics()
        try:
            await self._run()
        finally:
            if metrics is not None:
                await metrics.stop()

    async def _start_metrics(self) -> MetricsServer | None:
        SERVICE_INFO.labels(self.service, self.instance, __version__).set(1)
        if not self.settings.metrics_port:
            return None
        return await start_metrics_server(self.settings.metrics_port, ready=self._ready)

    def _ready(self) -> bool:
        """/readyz: connected to NATS, dependencies up (startup hooks done), not stopping."""
        return self.bus is not None and self.bus.nc.is_connected and self.starting is None and not self.stop.is_set()

    async def _run(self) -> None:
        bus = await self._connect_with_retry()
        if bus is None:
            return
        self.bus = bus
        try:
            health = await bus.nc.subscribe(health_subject(self.service), cb=self._on_health)
            await bus.ensure_streams()
            if not await self._run_startup(bus):
                return
            log.info("%s: ready (instance %s, nats %s)", self.service, self.instance, self.settings.nats_url)
            jobs: list[asyncio.Task[None]] = [asyncio.create_task(c(bus)) for c in self._consumers]
            jobs += [asyncio.create_task(t()) for t in self._tasks]
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([*jobs, stopper], return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                if job is not stopper and job.exception() is not None:
                    log.error("%s: a task failed: %r", self.service, job.exception())
            self.stop.set()
            await asyncio.wait(jobs, timeout=5.0)
            for job in jobs:
                job.cancel()
            with contextlib.suppress(Exception):
                await health.unsubscribe()
        finally:
            await bus.close()
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
                except TemporaryError as exc:
                    self.starting = str(exc)
                    log.warning("%s: not ready: %s; retrying in %.1fs", self.service, exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), timeout=delay)
                    if self.stop.is_set():
                        return False
                    delay = min(delay * 2, 10.0)
        self.starting = None
        return True

    async def _connect_with_retry(self) -> Bus | None:
        delay = 0.2
        while not self.stop.is_set():
            try:
                return await Bus.connect(str(self.settings.nats_url), name=f"stratus-{self.service}")
            except Exception as exc:
                log.warning("%s: %s; retrying in %.1fs", self.service, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)
        return None

    async def _on_health(self, msg: Msg) -> None:
        try:
            details = self._health_details()
            ok = self.starting is None
            if self.starting is not None:
                details = {**details, "starting": self.starting}
        except Exception as exc:
            details, ok = {"error": repr(exc)}, False
        reply = HealthReply(
            service=self.service,
            instance=self.instance,
            ok=ok,
            version=__version__,
            uptime_s=round(time.monotonic() - self.started, 3),
            details=details,
        )
        with contextlib.suppress(Exception):
            await msg.respond(reply.model_dump_json().encode())


def report_rejected_work(runtime: ServiceRuntime) -> Callable[[Any, Msg, PermanentError], Awaitable[None]]:
    """An ``on_rejected`` hook for agents: a refused work request becomes a ``WorkFailed`` incident event."""
    from stratus.contracts import WorkFailed, events_subject

    async def report(request: Any, msg: Msg, exc: PermanentError) -> None:
        assert runtime.bus is not None
        event = WorkFailed(
            incident_id=request.incident_id,
            service=runtime.service,
            request_id=request.id,
            reason=str(exc),
            tx_id=getattr(request, "tx_id", None),
            attempt=getattr(request, "attempt", None),
        )
        await runtime.bus.publish(events_subject(event.incident_id, event.kind), event)

    return report
