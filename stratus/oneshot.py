"""Bounded connections for one-shot commands (``stratus status``, ``stratus incidents ...``).

Why not ``Bus.connect`` as the services use it: a service must outlive a NATS restart, so its client reconnects
forever, and nats-py logs a traceback on every failed attempt. A command a person typed must instead answer within
seconds: it checks that something accepts TCP connections at the URL, then connects once with a deadline and no
reconnects, with the client's own error logging silenced, and turns every failure into one ``Unreachable`` line that
names the URL and says what to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stratus.bus import Bus
from stratus.contracts import Topology
from stratus.localinfra import reachable
from stratus.localstate import Endpoint

T = TypeVar("T")

CONNECT_TIMEOUT_S = 3.0


class Unreachable(Exception):
    """A dependency did not answer; ``str()`` is the one line to print."""


def quiet_client_logs() -> None:
    """The NATS client and FastStream log each failure with a traceback; a one-shot command reports it once."""
    for name in ("nats", "nats.aio.client", "faststream"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def check_reachable(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT_S) -> None:
    if not reachable(endpoint.url, timeout=timeout):
        raise Unreachable(endpoint.unreachable())


async def open_bus(endpoint: Endpoint, topology: Topology, timeout: float = CONNECT_TIMEOUT_S) -> Bus:
    """A connected client ``Bus`` within ``timeout`` seconds, or ``Unreachable``."""
    quiet_client_logs()
    check_reachable(endpoint, timeout)
    bus = Bus.create(
        endpoint.url, service="stratus-cli", topology=topology, connect_timeout=max(1, round(timeout)), reconnect=False
    )
    try:
        await asyncio.wait_for(bus.open(), timeout + 1)
        await asyncio.wait_for(bus.broker.start(), timeout + 1)
    except Exception as exc:
        await bus.close()
        why = f"no answer within {timeout + 1:.0f}s" if isinstance(exc, TimeoutError) else _short(exc)
        failed = f"something listens there but the NATS handshake failed ({why})"
        raise Unreachable(endpoint.unreachable(failed)) from exc
    return bus


async def with_bus(endpoint: Endpoint, topology: Topology, fn: Callable[[Bus], Awaitable[T]]) -> T:
    """Run ``fn`` on a bounded connection; a failure of ``fn`` itself (e.g. JetStream not enabled) is one line too."""
    bus = await open_bus(endpoint, topology)
    try:
        return await fn(bus)
    except Unreachable:
        raise
    except Exception as exc:
        raise Unreachable(f"reading from NATS at {endpoint.url} ({endpoint.source}) failed: {_short(exc)}") from exc
    finally:
        await bus.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__
