"""Session-wide real servers: one nats-server -js and one redis-server on free ports, stopped at the end.

Tests isolate themselves with uuid-named subjects, streams and keys (the ``uid`` fixture), never with fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from stratus.bus import Bus
from stratus.localinfra import LocalServer, start_nats, start_redis


@pytest.fixture(scope="session")
def nats_server() -> Iterator[LocalServer]:
    server = start_nats()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def bus(nats_server: LocalServer) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_server.url, name="pytest")
    yield b
    await b.close()


@pytest.fixture
async def redis(redis_server: LocalServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()
