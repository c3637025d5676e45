"""A coordinator replica over a synthetic cluster, for the benchmarks (``stratus.benchmarks.pipeline``).

The real service (consumers, partitions, engine, Redis, A-Lock) with one substitution: the cluster observer. Its
severity of a scope alternates between ``mu = 2`` (read at the checkpoint) and ``0`` (read after the transaction),
so every transaction commits and resolves its incident; measurements cost nothing, and what is timed is the
coordinator itself. ``python -m services.coordinator.synthetic`` takes the usual STRATUS_* settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from services.coordinator.app import build
from stratus.contracts import Severity
from stratus.runtime import configure_logging
from stratus.settings import CoordinatorSettings


class SyntheticObserver:
    """mu alternates per scope: 2 before a transaction, 0 after it (the write lease serialises a scope's readers).
    The count is kept in Redis, so it holds when an incident moves to another replica mid-transaction."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def measure(self, scope: str) -> Severity:
        broken = int(await self.redis.incr(f"{self.prefix}:synthetic:reads:{scope}")) % 2 == 1
        return Severity(mu=2.0 if broken else 0.0, unhealthy=["pod/web-0", "pod/web-1"] if broken else [])

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]:
        return f"digest-{scope}", {}


def main() -> None:
    settings = CoordinatorSettings()
    configure_logging(settings.log_level, "coordinator", settings.log_format, settings.instance or "")
    observer = SyntheticObserver(aioredis.Redis.from_url(str(settings.redis_url)), settings.redis_prefix)
    asyncio.run(build(settings, observer).run())


if __name__ == "__main__":
    main()
