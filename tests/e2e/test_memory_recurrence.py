"""Incident memory end to end: the same fault twice, the LLM agents played by the scripted server.

The first occurrence is diagnosed and mitigated by the model (a diagnosis call, a write, an end call). When it
closes, the coordinator keeps it in the memory bucket. The second occurrence is recalled by the diagnoser; the
mitigator's MemoryFirst step replays the committed fix as attempt 1 (a TNR transaction that commits), so the model
is asked only for the diagnosis. With memory off, the second occurrence costs as much as the first.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from arena.server import ArenaServer
from stratus.actions import RolloutRestart
from stratus.bus import Bus
from stratus.localinfra import LocalServer
from stratus.memory.records import IncidentMemory
from stratus.memory.store import MemoryStore
from tests.e2e.harness import Timeline, running_system
from tests.e2e.shop import deploy_shop, replicas, scale
from tests.llm_server import Reply, ScriptedLLM, tool_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def model(ns: str) -> Any:
    def reply(body: dict[str, Any]) -> Reply:
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        if "submit_diagnosis" in tools:
            return tool_call(
                "submit_diagnosis",
                {
                    "localisation": ["web"],
                    "system_level": "Virtualization",
                    "fault_type": "Operation Error",
                    "summary": "web is scaled to zero: its Service has no endpoint.",
                },
            )
        if body["messages"][-1].get("role") == "tool":
            return tool_call("end_transaction", {"reason": "done"})
        return tool_call("kubectl", {"command": f"kubectl -n {ns} scale deployment web --replicas=1"})

    return reply


def ttm(timeline: Timeline, incident_id: str) -> float:
    events = [e for e in timeline.events if e["incident_id"] == incident_id]
    opened = next(e for e in events if e["kind"] == "incident_opened")
    closed = next(e for e in events if e["kind"] == "incident_closed")
    return (datetime.fromisoformat(closed["ts"]) - datetime.fromisoformat(opened["ts"])).total_seconds()


async def occurrence(timeline: Timeline, kubeconfig: Path, ns: str, llm: ScriptedLLM, n: int) -> dict[str, Any]:
    before = len(llm.requests)
    scale(kubeconfig, ns, "web", 0)
    closed = (await timeline.wait_for("incident_closed", count=n, timeout=60))[n - 1]
    assert closed["outcome"] == "resolved", closed
    return {
        "incident": closed["incident_id"],
        "llm_calls": len(llm.requests) - before,
        "ttm_s": ttm(timeline, closed["incident_id"]),
    }


async def kept(bus: Bus, bucket: str, count: int) -> None:
    store = MemoryStore(bus.js, bucket)
    deadline = time.monotonic() + 15
    while len(await store.all()) < count:
        assert time.monotonic() < deadline, "the closed incident was not kept"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("memory", [True, False], ids=["memory-on", "memory-off"])
async def test_the_second_occurrence_reuses_the_fix(
    memory: bool,
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
) -> None:
    _, kubeconfig = shop_arena
    ns = f"mem-{uid}"
    deploy_shop(kubeconfig, ns)
    bucket = f"t{uid}_MEMORY"
    async with ScriptedLLM(default=model(ns)) as llm:
        timeline = await Timeline(bus, ns).start()
        with running_system(
            nats_server.url,
            redis_server.url,
            kubeconfig,
            ns,
            f"t{uid}",
            Path("var/e2e") / f"{ns}.log",
            STRATUS_LLM_BASE_URL=llm.base_url,
            STRATUS_LLM_MODEL="scripted",
            STRATUS_LLM_API_KEY="test",
            STRATUS_MEMORY_ENABLED=str(memory).lower(),
        ):
            first = await occurrence(timeline, kubeconfig, ns, llm, 1)
            if memory:
                await kept(bus, bucket, 1)
            second = await occurrence(timeline, kubeconfig, ns, llm, 2)
        await timeline.stop()
    print(json.dumps({"memory": memory, "first": first, "second": second}))
    assert replicas(kubeconfig, ns)["web"] == 1
    ended = {e["incident_id"]: e for e in timeline.of("transaction_ended")}
    diagnoses = {e["incident_id"]: e for e in timeline.of("diagnosis")}
    if memory:
        assert second["llm_calls"] < first["llm_calls"], (first, second)
        assert ended[second["incident"]]["recalled_from"] == first["incident"]
        recalled = diagnoses[second["incident"]]["recalled"]
        assert recalled[0]["key"] == first["incident"] and recalled[0]["proposable"]
        decisions = [
            d["decision"] for d in timeline.of("transaction_decided") if d["incident_id"] == second["incident"]
        ]
        assert decisions == ["commit"]
        await kept(bus, bucket, 2)
        memories = {m.key: m for m in await MemoryStore(bus.js, bucket).all()}
        assert memories[first["incident"]].replays == 1 and not memories[first["incident"]].demoted
    else:
        assert second["llm_calls"] == first["llm_calls"]
        assert ended[second["incident"]]["recalled_from"] is None
        assert diagnoses[second["incident"]]["signature"] is None


async def test_a_wrong_memory_is_aborted_undone_demoted_and_not_repeated(
    shop_arena: tuple[ArenaServer, Path], nats_server: LocalServer, redis_server: LocalServer, bus: Bus, uid: str
) -> None:
    """The remembered fix stops working (here: the memory is rewritten to a restart, which does not bring a
    scaled-to-zero Deployment back). The second occurrence replays it, TNR aborts and undoes it, the memory is
    demoted and the model fixes the incident on attempt 2. The third occurrence replays the fix that committed
    in the second, never the wrong one again."""
    _, kubeconfig = shop_arena
    ns = f"wrong-{uid}"
    deploy_shop(kubeconfig, ns)
    bucket = f"t{uid}_MEMORY"
    wrong = RolloutRestart(kind="Deployment", namespace=ns, name="web")
    async with ScriptedLLM(default=model(ns)) as llm:
        timeline = await Timeline(bus, ns).start()
        with running_system(
            nats_server.url,
            redis_server.url,
            kubeconfig,
            ns,
            f"t{uid}",
            Path("var/e2e") / f"{ns}.log",
            STRATUS_LLM_BASE_URL=llm.base_url,
            STRATUS_LLM_MODEL="scripted",
            STRATUS_LLM_API_KEY="test",
        ):
            first = await occurrence(timeline, kubeconfig, ns, llm, 1)
            await kept(bus, bucket, 1)
            store = MemoryStore(bus.js, bucket)

            def stale(m: IncidentMemory) -> IncidentMemory:
                txs = [t.model_copy(update={"actions": [wrong]}) for t in m.transactions]
                return m.model_copy(update={"transactions": txs})

            assert await store.update(first["incident"], stale) is not None
            second = await occurrence(timeline, kubeconfig, ns, llm, 2)
            await kept(bus, bucket, 2)
            third = await occurrence(timeline, kubeconfig, ns, llm, 3)
            await kept(bus, bucket, 3)
        await timeline.stop()
    print(json.dumps({"first": first, "second": second, "third": third}))

    def decisions(incident: str) -> list[tuple[int, str]]:
        return [
            (d["attempt"], d["decision"]) for d in timeline.of("transaction_decided") if d["incident_id"] == incident
        ]

    ended = timeline.of("transaction_ended")
    assert decisions(second["incident"]) == [(1, "abort"), (2, "commit")]
    undo = [u for u in timeline.of("undo_completed") if u["incident_id"] == second["incident"]]
    assert len(undo) == 1 and undo[0]["divergences"] == []
    replayed = {(e["incident_id"], e["attempt"]): e["recalled_from"] for e in ended}
    assert replayed[(second["incident"], 1)] == first["incident"] and replayed[(second["incident"], 2)] is None
    memories = {m.key: m for m in await MemoryStore(bus.js, bucket).all()}
    assert memories[first["incident"]].demoted
    assert decisions(third["incident"]) == [(1, "commit")]
    assert replayed[(third["incident"], 1)] == second["incident"]  # the fix that worked, not the stale one
    assert third["llm_calls"] < second["llm_calls"]
    assert replicas(kubeconfig, ns)["web"] == 1
