"""The A-Lock's pure parts: how blockers read in messages, and what it refuses before touching Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from stratus.alock import ALock, _blocker, _ttl_ms
from stratus.errors import PermanentError


def test_blockers_read_as_holders() -> None:
    assert _blocker("writer", "inc-1/a2", "7") == "writer 'inc-1/a2' (token 7)"
    assert _blocker("cluster writer", "ops", "3") == "cluster writer 'ops' (token 3)"
    assert _blocker("reader", "abc123|diagnoser", "") == "reader 'diagnoser' (read lease abc123)"
    assert _blocker("namespace holder", "w|shop|inc-9", "") == "writer 'inc-9' of namespace 'shop'"
    assert _blocker("namespace holder", "r|shop|abc|det|x", "") == "reader 'det|x' of namespace 'shop'"
    assert _blocker("waiting writer", "f00d|mitigator", "") == "waiting writer 'mitigator'"


def test_ttl_must_be_positive() -> None:
    assert _ttl_ms(0.0001) == 1
    assert _ttl_ms(2.5) == 2500
    with pytest.raises(PermanentError, match="ttl"):
        _ttl_ms(0)


async def test_prefix_may_not_break_the_hash_tag() -> None:
    client = aioredis.Redis()  # never connects: construction only registers scripts
    assert ALock(client, prefix="p")._key("w", "shop") == "{p}:alock:w:shop"
    for bad in ("", "a{b", "c}"):
        with pytest.raises(PermanentError, match="prefix"):
            ALock(client, prefix=bad)
    await client.aclose()
