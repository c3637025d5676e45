"""Run the whole system on one machine: NATS and Redis (when none answers), then every service as its own process.

``stratus up`` and ``make demo`` use it. The supervisor merges the services' output into one log (each line already
carries the service name), and on stop it sends SIGTERM to every child, waits, then SIGKILLs what is left, so no
process outlives it. Children also get PR_SET_PDEATHSIG on Linux: if the supervisor itself is killed, they die too.

With ``STRATUS_METRICS_PORT`` set, the processes cannot all listen on it: each gets its own port, counted up from it
in the order of ``services`` and replicas (``metrics_ports()`` lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from stratus.contracts import DEFAULT_TOPOLOGY, SERVICES, HealthReply, Topology
from stratus.localinfra import LocalServer, die_with_parent, reachable, start_nats, start_redis
from stratus.scrub import scrub_text


@dataclass
class Supervisor:
    nats_url: str
    redis_url: str
    services: Iterable[str] = SERVICES
    env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    data_dir: Path | None = None
    """Where started servers keep their data across restarts (``<data_dir>/nats``, ``/redis``); None: temporary."""
    echo: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: T201
    started_servers: list[LocalServer] = field(default_factory=list)
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _pumps: list[threading.Thread] = field(default_factory=list)

    def ensure_infrastructure(self) -> None:
        """Start a local nats-server / redis-server for each URL where nothing answers."""
        keep = self.data_dir
        if not reachable(self.nats_url):
            server = start_nats(data_dir=keep / "nats" if keep else None, die_with_parent=True)
            self.started_servers.append(server)
            self.echo(
                scrub_text(f"supervisor  started nats-server -js at {server.url} (nothing answered at {self.nats_url})")
            )
            self.nats_url = server.url
        if not reachable(self.redis_url):
            server = start_redis(data_dir=keep / "redis" if keep else None, die_with_parent=True)
            self.started_servers.append(server)
            self.echo(
                scrub_text(f"supervisor  started redis-server at {server.url} (nothing answered at {self.redis_url})")
            )
            self.redis_url = server.url

    def child_env(self, service: str, replica: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["STRATUS_NATS_URL"] = self.nats_url
        env["STRATUS_REDIS_URL"] = self.redis_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.replicas.get(service, 1) > 1:
            env["STRATUS_INSTANCE"] = f"{service}-{replica}"
        port = self.metrics_ports(env).get((service, replica))
        if port:
            env["STRATUS_METRICS_PORT"] = str(port)
        return env

    def metrics_ports(self, env: dict[str, str] | None = None) -> dict[tuple[str, int], int]:
        """(service, replica) -> its own /metrics port, counted up from ``STRATUS_METRICS_PORT``; empty when unset."""
        merged = env if env is not None else {**os.environ, **self.env}
        try:
            base = int(merged.get("STRATUS_METRICS_PORT") or 0)
        except ValueError:
            return {}
        if base <= 0:
            return {}
        order = [(s, r) for s in self.services for r in range(self.replicas.get(s, 1))]
        return {key: base + i for i, key in enumerate(order)}

    def start_services(self) -> None:
        for service in self.services:
            for replica in range(self.replicas.get(service, 1)):
                self.start_one(service, replica)

    def pids(self, service: str) -> list[int]:
        return [proc.pid for name, proc in self.children if name == service and proc.poll() is None]

    def start_one(self, service: str, replica: int = 0) -> subprocess.Popen[bytes]:
        """Start one process of ``service`` (also used to restart a replica that was killed)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=self.child_env(service, replica),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.children.append((service, proc))
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        pump.start()
        self._pumps.append(pump)
        return proc

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.echo(scrub_text(raw.decode(errors="replace").rstrip()))

    def exited(self) -> list[tuple[str, int]]:
        return [(name, code) for name, proc in self.children if (code := proc.poll()) is not None]

    def signal(self, service: str, signum: int) -> list[int]:
        """Send ``signum`` to every live process of ``service``; returns their pids."""
        pids = self.pids(service)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def stop(self, timeout: float = 20.0) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pump in self._pumps:
            # The children are gone, so each pipe ends once drained; a busy machine may leave a backlog of lines
            # (the services' last words, "stopped", among them) that must not be cut off.
            pump.join(timeout=15)
        for _, proc in self.children:
            if proc.stdout is not None:
                proc.stdout.close()
        for server in reversed(self.started_servers):
            server.stop()
        self.children.clear()
        self.started_servers.clear()


async def gather_health(
    nats_url: str, services: Iterable[str] = SERVICES, window: float = 0.7, topology: Topology = DEFAULT_TOPOLOGY
) -> dict[str, list[HealthReply]]:
    """Ask every service's health subject and collect the replies of all replicas for ``window`` seconds."""
    import nats

    async def quiet(_: Exception) -> None:  # the caller reports a failure once
        return None

    nc = await nats.connect(
        nats_url, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False, error_cb=quiet
    )
    replies: dict[str, list[HealthReply]] = {s: [] for s in services}
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox + ".*")
        for s in services:
            await nc.publish(topology.health(s), b"{}", reply=f"{inbox}.{s}")
        deadline = time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except Exception:
                break
            with contextlib.suppress(ValueError):
                reply = HealthReply.model_validate_json(msg.data)
                replies.setdefault(reply.service, []).append(reply)
    finally:
        await nc.close()
    return replies


async def wait_healthy(
    nats_url: str, services: Iterable[str] = SERVICES, timeout: float = 10.0, topology: Topology = DEFAULT_TOPOLOGY
) -> dict[str, list[HealthReply]]:
    services = tuple(services)
    deadline = time.monotonic() + timeout
    replies: dict[str, list[HealthReply]] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            replies = await gather_health(nats_url, services, window=0.4, topology=topology)
            if all(any(r.ok for r in replies.get(s, [])) for s in services):
                return replies
        await asyncio.sleep(0.2)
    return replies


def health_json(replies: dict[str, list[HealthReply]]) -> str:
    return json.dumps({s: [r.model_dump(mode="json") for r in rs] for s, rs in replies.items()}, indent=2)
