"""Session-wide real servers: one nats-server -js and one redis-server on free ports, stopped at the end.

Tests isolate themselves with uuid-named subjects, streams and keys (the ``uid`` fixture), never with fakes.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from arena.hooks import DefaultBehaviour
from arena.server import ArenaServer
from arena.timing import Timing
from stratus.bus import Bus
from stratus.localinfra import LocalServer, start_nats, start_redis

pytest_plugins = ["tests.fixtures_apps", "tests.fixtures_arena", "tests.llm_server"]


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


@pytest.fixture(autouse=True)
def collect_garbage_in_teardown(request: pytest.FixtureRequest) -> Iterator[None]:
    """A collection after each test that talks to real servers, inside its teardown: an object it leaked (an unclosed
    client, transport or task) is finalised here, so pytest blames the test that leaked it instead of whichever test
    the garbage collector happened to run in later."""
    yield
    if request.node.get_closest_marker("integration") or request.node.get_closest_marker("e2e"):
        gc.collect()


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


def bad_image(name: str) -> str:
    """An image of the shop's Deployment ``name`` that the shop arena cannot pull: a tag of the repository it runs, so
    the write policy (which trusts a repository the workload runs) lets a harmful rollout to it through."""
    return f"shop/{name}:does-not-exist"


BAD_IMAGE = bad_image("web")
BAD_IMAGES = [bad_image(name) for name in ("web", "cart", "db")]
"""The images the shop arena cannot pull (every other image runs)."""


@pytest.fixture(scope="session")
def shop_arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaServer, Path]]:
    """An arena with the default behaviour (every image runs except BAD_IMAGES) and its kubeconfig."""
    server = ArenaServer(behaviour=DefaultBehaviour(unknown_images=BAD_IMAGES), timing=Timing.fast()).start()
    kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("arena") / "kubeconfig")
    yield server, kubeconfig
    server.stop()
