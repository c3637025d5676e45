"""Each service replica's view of what it depends on (NATS, Redis, the Kubernetes API, the LLM), for health replies
and ``stratus status``.

Why probes run in the background: a health request is answered within the status command's short window, and a
dependency that hangs (an API server behind a dead load balancer) would make the replica itself look dead. So every
probe runs each ``interval`` seconds under a timeout, and a health reply reads the last results.

Why "degraded" does not make a replica unhealthy: the replica still runs and still does what it can (the rulebook
stands in for a dead LLM, a Kubernetes call is retried), so taking it out of service would help nothing. The value
tells the operator what is wrong: ``ok``, or ``degraded: <why>``.

The LLM is not probed with a request (that costs tokens): its state is the outcome of the last real call, which the
LLM client records here, and, before any call, whether anything accepts connections at its address.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from stratus.localinfra import reachable

if TYPE_CHECKING:
    from stratus.gateway import KubeApi

Probe = Callable[[], Awaitable[str | None]]
"""None when the dependency answers; otherwise why it is degraded."""

OK = "ok"
_LLM_OUTCOMES: dict[str, tuple[float, str | None]] = {}


def record_llm_outcome(base_url: str, error: str | None) -> None:
    """The LLM client reports each call's outcome (None: it answered)."""
    _LLM_OUTCOMES[base_url] = (time.monotonic(), error)


class Dependencies:
    def __init__(self, *, interval_s: float = 5.0, timeout_s: float = 3.0) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._probes: dict[str, Probe] = {}
        self._state: dict[str, str] = {}

    def add(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe
        self._state.setdefault(name, "not checked yet")

    def snapshot(self) -> dict[str, str]:
        return dict(self._state)

    async def refresh(self) -> dict[str, str]:
        names = list(self._probes)
        results = await asyncio.gather(*(self._check(self._probes[n]) for n in names))
        self._state.update(zip(names, results, strict=True))
        return self.snapshot()

    async def _check(self, probe: Probe) -> str:
        try:
            problem = await asyncio.wait_for(probe(), self.timeout_s)
        except TimeoutError:
            problem = f"no answer within {self.timeout_s:g}s"
        except Exception as exc:
            problem = _short(exc)
        return OK if problem is None else f"degraded: {problem}"

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)


def nats_probe(connected: Callable[[], bool]) -> Probe:
    async def probe() -> str | None:
        return None if connected() else "disconnected (the client is reconnecting)"

    return probe


def redis_probe(redis: Any) -> Probe:
    async def probe() -> str | None:
        await redis.ping()
        return None

    return probe


def kube_probe(api: KubeApi) -> Probe:
    """``GET /version``: answered by any API server, whatever the RBAC."""

    async def probe() -> str | None:
        await asyncio.to_thread(api.request, "GET", "/version")
        return None

    return probe


def llm_probe(base_url: str) -> Probe:
    async def probe() -> str | None:
        last = _LLM_OUTCOMES.get(base_url)
        if last is not None and last[1] is not None:
            return f"the last call, {time.monotonic() - last[0]:.0f}s ago, failed: {last[1][:200]}"
        if last is None and not await asyncio.to_thread(reachable, base_url, 1.0):
            return f"nothing accepts connections at {base_url}"
        return None

    return probe


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text and text[0] else type(exc).__name__
