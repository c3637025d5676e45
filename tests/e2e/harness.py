"""The whole system for end-to-end tests: an arena, real NATS and Redis, and the six services as processes.

``Timeline`` follows the incident events of one scope on JetStream, so a test waits on what the system does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nats.js.api import DeliverPolicy

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.contracts import ALL_EVENTS, EVENTS_STREAM
from stratus.localinfra import free_port
from stratus.supervisor import Supervisor

FAST = {
    "STRATUS_PROBE_INTERVAL_S": "0.5",
    "STRATUS_CONFIRM_PROBES": "2",
    "STRATUS_SETTLE_S": "2",
    "STRATUS_LEASE_TTL_S": "6",
    "STRATUS_LOG_LEVEL": "INFO",
}


@contextmanager
def running_system(
    nats_url: str, redis_url: str, kubeconfig: Path, scope: str | list[str], prefix: str, log: Path, **env: str
) -> Iterator[Supervisor]:
    lines: list[str] = []
    settings = {
        **FAST,
        "STRATUS_KUBECONFIG": str(kubeconfig),
        "STRATUS_SCOPES": json.dumps([scope] if isinstance(scope, str) else scope),
        "STRATUS_REDIS_PREFIX": prefix,
        "STRATUS_MEMORY_BUCKET": f"{prefix}_MEMORY",  # incident memory of this test only
        "STRATUS_PORT": str(free_port()),  # the bridge's webhook
        **env,
    }
    sup = Supervisor(nats_url, redis_url, env=settings, echo=lines.append)
    sup.start_services()
    try:
        yield sup
    finally:
        failed = [(name, code) for name, code in sup.exited() if code > 0]  # killed on purpose: negative codes
        sup.stop()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(lines))
    if failed:
        raise AssertionError(f"service(s) exited with an error: {failed}; see {log}")


class Timeline:
    """Incident events of one scope, as they arrive on the STRATUS_EVENTS stream."""

    def __init__(self, bus: Bus, scope: str) -> None:
        self.bus = bus
        self.scope = scope
        self.incidents: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._sub: Any = None

    async def start(self, new_only: bool = False) -> Timeline:
        """Follow the stream from its start, or (``new_only``) only what is published from now on."""
        await self.bus.ensure_streams()
        policy = DeliverPolicy.NEW if new_only else DeliverPolicy.ALL
        self._sub = await self.bus.js.subscribe(
            ALL_EVENTS, stream=EVENTS_STREAM, cb=self._on, ordered_consumer=True, deliver_policy=policy
        )
        return self

    async def _on(self, msg: Any) -> None:
        data = json.loads(msg.data)
        if data.get("kind") == "incident_opened" and data.get("scope") == self.scope:
            self.incidents.add(data["incident_id"])
        if data.get("incident_id") in self.incidents:
            self.events.append(data)
            self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 60.0, **match: Any) -> list[dict[str, Any]]:
        async def until() -> list[dict[str, Any]]:
            while True:
                found = [e for e in self.of(kind) if all(e.get(k) == v for k, v in match.items())]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            kinds = [f"{e['kind']}:{e.get('state', e.get('decision', ''))}" for e in self.events]
            raise AssertionError(f"no {count} x {kind} {match} within {timeout}s; saw {kinds}") from None

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


# --- replicas and the arena's own /metrics (horizontal scaling, the alert pipeline) -----------------------------


@dataclass
class ReplicaSupervisor(Supervisor):
    """A ``Supervisor`` that prefixes each output line with the replica that wrote it (``[mitigator-1] ...``), so a
    test can tell which replica took which piece of work and signal exactly that process."""

    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _tags: dict[int, str] = field(default_factory=dict)

    def start_one(self, service: str, replica: int = 0) -> subprocess.Popen[bytes]:
        proc = super().start_one(service, replica)
        name = f"{service}-{replica}"
        self._tags[id(proc.stdout)] = name  # the child is still importing: no line was read before this
        self.processes[name] = proc
        return proc

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.echo(f"[{self._tags.get(id(stream), '?')}] {raw.decode(errors='replace').rstrip()}")

    def kill(self, replica: str, signum: int = signal.SIGKILL) -> int:
        """Signal one replica by name (``mitigator-1``); returns its pid."""
        proc = self.processes[replica]
        proc.send_signal(signum)
        return proc.pid


@contextmanager
def running_replicas(
    nats_url: str,
    redis_url: str,
    kubeconfig: Path,
    scope: str | list[str],
    prefix: str,
    log: Path,
    replicas: dict[str, int],
    lines: list[str] | None = None,
    **env: str,
) -> Iterator[ReplicaSupervisor]:
    """``running_system`` with ``replicas`` processes per service; every tagged output line also goes to ``lines``."""
    out = lines if lines is not None else []
    settings = {
        **FAST,
        "STRATUS_KUBECONFIG": str(kubeconfig),
        "STRATUS_SCOPES": json.dumps([scope] if isinstance(scope, str) else scope),
        "STRATUS_REDIS_PREFIX": prefix,
        "STRATUS_MEMORY_BUCKET": f"{prefix}_MEMORY",
        "STRATUS_PORT": str(free_port()),
        **env,
    }
    sup = ReplicaSupervisor(nats_url, redis_url, env=settings, replicas=replicas, echo=out.append)
    sup.start_services()
    try:
        yield sup
    finally:
        sup.stop()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(out))


def replica_of(lines: list[str], service: str, needle: str) -> str | None:
    """The replica (``mitigator-0``) of ``service`` whose output has a line containing ``needle``."""
    for line in list(lines):
        if line.startswith(f"[{service}-") and needle in line:
            return line[1 : line.index("]")]
    return None


@contextmanager
def arena_metrics(server: ArenaServer) -> Iterator[str]:
    """Serve the arena's own Prometheus ``/metrics`` (its kube-state-style series, from the app plane) for
    ``server``; yields ``host:port`` for a scrape target."""
    from arena.telemetry.plane import AppPlane

    plane = AppPlane()
    plane.bind(server.cluster.view)
    loop = server.cluster.loop
    assert loop is not None, "the arena's controller loop is not running"
    url = asyncio.run_coroutine_threadsafe(plane.serve("127.0.0.1", 0), loop).result(30)
    try:
        yield url.split("://", 1)[1]
    finally:
        asyncio.run_coroutine_threadsafe(plane.close(), loop).result(30)


def baseline(timeline: Timeline, closed: dict[str, Any]) -> float:
    """The b an incident's transactions were held to: set at its first checkpoint (mu held steady), else at
    detection."""
    if closed.get("baseline") is not None:
        return float(closed["baseline"])
    opened = timeline.of("incident_opened")
    return next(float(o["baseline"]) for o in opened if o["incident_id"] == closed["incident_id"])
