"""A replica's dependencies are ok or degraded with the reason; a hanging probe never holds up the health reply."""

from __future__ import annotations

import asyncio

from stratus.dependencies import Dependencies, llm_probe, nats_probe, record_llm_outcome
from stratus.localinfra import free_port


async def test_each_dependency_is_ok_or_degraded_with_the_reason() -> None:
    deps = Dependencies(timeout_s=0.2)

    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    async def refuses() -> str | None:
        raise ConnectionRefusedError("Connection refused")

    deps.add("nats", nats_probe(lambda: True))
    deps.add("redis", refuses)
    deps.add("kubernetes", hangs)
    assert deps.snapshot()["kubernetes"] == "not checked yet"
    state = await asyncio.wait_for(deps.refresh(), 2)
    assert state == {
        "nats": "ok",
        "redis": "degraded: ConnectionRefusedError: Connection refused",
        "kubernetes": "degraded: no answer within 0.2s",
    }
    deps.add("nats", nats_probe(lambda: False))
    assert (await deps.refresh())["nats"].startswith("degraded: disconnected")


async def test_the_llm_is_judged_by_its_last_call_and_before_any_by_its_address() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    probe = llm_probe(url)
    assert await probe() == f"nothing accepts connections at {url}"
    record_llm_outcome(url, "the LLM endpoint is unreachable after 3 tries")
    assert "failed: the LLM endpoint is unreachable after 3 tries" in (await probe() or "")
    record_llm_outcome(url, None)
    assert await probe() is None
