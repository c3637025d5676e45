"""Two layers for bus tests, as FastStream documents them: the same test runs on ``TestNatsBroker`` (in memory, a
publish runs the matching handler at once) and on a real ``nats-server`` (the ground truth).

``Layer.run(bus)`` starts a bus either way; ``Recorder`` keeps every message published on some subjects, through a
durable consumer of its own, so a test waits on what a handler published in both layers alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.nats import TestNatsBroker

from stratus.bus import Bus
from stratus.contracts import ConsumerSpec, Topology
from stratus.localinfra import LocalServer


def topology_for(uid: str, partitions: int = 4) -> Topology:
    """A topology of its own for one test: nothing it publishes or consumes is shared with another test."""
    return Topology(prefix=f"t{uid}", stream_prefix=f"T{uid.upper()}", partitions=partitions)


@dataclass
class Layer:
    name: str
    nats_url: str

    @property
    def real(self) -> bool:
        return self.name == "nats"

    def bus(self, topology: Topology, service: str = "test") -> Bus:
        return Bus.create(self.nats_url, service=service, topology=topology, stop_grace_s=10.0)

    @contextlib.asynccontextmanager
    async def run(self, *buses: Bus) -> AsyncIterator[None]:
        if not self.real:
            async with TestNatsBroker(*(b.broker for b in buses)):
                yield
            return
        for b in buses:
            await b.open()
            await b.ensure_streams()
            await b.start()
        try:
            yield
        finally:
            for b in buses:
                await b.close()


@dataclass
class Recorder:
    """Every message on ``subject`` of ``stream`` (decoded JSON), in arrival order."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def on(cls, bus: Bus, stream: str, subject: str) -> Recorder:
        rec = cls()
        spec = ConsumerSpec(durable=f"rec-{uuid.uuid4().hex[:8]}", stream=stream, filter_subject=subject)

        async def keep(message: dict[str, Any]) -> None:
            rec.messages.append(message)
            rec._arrived.set()

        bus.subscribe(spec, dict[str, Any], keep, name=f"recorder_{spec.durable}", description="test recorder")
        return rec

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("kind") == kind]

    async def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> None:
        async def until() -> None:
            while not predicate(self.messages):
                self._arrived.clear()
                await self._arrived.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"not seen within {timeout}s; have {self.messages}") from None

    async def wait_kind(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait(lambda _: len(self.of(kind)) >= count, timeout)
        return self.of(kind)


@pytest.fixture(params=["memory", "nats"])
def layer(request: pytest.FixtureRequest, nats_server: LocalServer) -> Layer:
    """Both layers; import this fixture into a test module to run its tests on each."""
    return Layer(str(request.param), nats_server.url)
