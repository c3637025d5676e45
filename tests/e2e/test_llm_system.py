"""The whole system with LLM reasoners, the model played by the scripted OpenAI-compatible server.

The services run as processes with ``STRATUS_LLM_BASE_URL`` pointing at the scripted server. The model's first
transaction makes things worse (it scales a healthy tier to zero); the coordinator aborts it and the undoer rolls it
back. The second transaction is shown the reflection of the first; the model sends a malformed tool call, survives
the corrective message, then applies the real fix, which commits. Tokens are accounted.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import DeliverPolicy

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.contracts import DEFAULT_TOPOLOGY, DeadLetter
from stratus.localinfra import LocalServer, free_port
from stratus.supervisor import gather_health
from tests.e2e.harness import Timeline, baseline, running_system
from tests.e2e.shop import break_image, deploy_shop, replicas, scale
from tests.llm_server import Reply, ScriptedLLM, messages_text, tool_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Model:
    """Plays the model for both agents, deciding from what each request shows."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.malformed_sent = False

    def __call__(self, body: dict[str, Any]) -> Reply:
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        seen = messages_text(body)
        last = body["messages"][-1]
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
        calls = [
            c["function"]["name"]
            for m in body["messages"]
            if m.get("role") == "assistant"
            for c in m.get("tool_calls") or []
        ]
        if last.get("role") == "tool" and calls and calls[-1] == "kubectl":  # its write went through: end
            return tool_call("end_transaction", {"reason": "done"})
        if "Attempt 1" not in seen:  # the first transaction: a harmful guess
            return tool_call("kubectl", {"command": break_image(self.ns, "cart")})
        if not self.malformed_sent:  # the second: a broken call first
            self.malformed_sent = True
            return tool_call("scale", '{"kind": "Deployment", "name": "web", "replicas": ')
        return tool_call("kubectl", {"command": f"kubectl -n {self.ns} scale deployment web --replicas=1"})


async def test_llm_agents_abort_a_harmful_attempt_and_commit_with_the_reflection(
    shop_arena: tuple[ArenaServer, Path], nats_server: LocalServer, redis_server: LocalServer, bus: Bus, uid: str
) -> None:
    _, kubeconfig = shop_arena
    ns = f"llm-{uid}"
    deploy_shop(kubeconfig, ns)
    model = Model(ns)
    async with ScriptedLLM(default=model) as llm:
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
            scale(kubeconfig, ns, "web", 0)
            closed = (await timeline.wait_for("incident_closed", timeout=120))[0]
        await timeline.stop()
    assert closed["outcome"] == "resolved", closed
    decisions = [(d["attempt"], d["decision"]) for d in timeline.of("transaction_decided")]
    assert decisions == [(1, "abort"), (2, "commit")]
    undo = timeline.of("undo_completed")[0]
    assert undo["divergences"] == [] and undo["restored_digest"] == timeline.of("checkpointed")[0]["digest"]
    assert replicas(kubeconfig, ns) == {"web": 1, "cart": 1, "db": 1}
    diagnosis = timeline.of("diagnosis")[0]
    assert diagnosis["localisation"] == ["web"] and diagnosis["usage"]["prompt_tokens"] > 0
    ended = timeline.of("transaction_ended")
    assert all(e["usage"]["prompt_tokens"] > 0 for e in ended)
    second = [r for r in llm.requests if "Attempt 1" in messages_text(r)]
    assert second, "the second transaction's prompt carries the reflection of the first"
    assert any("JSON" in messages_text(r) or "json" in messages_text(r) for r in second[1:]), "a corrective message"
    assert max(float(m) for m in closed["visible_mu"]) <= baseline(timeline, closed)
    steps = timeline.of("reasoning_step")  # every tool call is on the timeline (what `stratus incidents show` lists)
    assert {s["service"] for s in steps} == {"diagnoser", "mitigator"}
    assert any(s["tool"] == "kubectl" and "scale deployment web" in s["arguments"] for s in steps)
    assert any(not s["ok"] for s in steps)  # the malformed call, refused
    print(json.dumps({"llm_requests": len(llm.requests), "steps": len(steps)}))


async def test_a_dead_llm_never_strands_an_incident(
    shop_arena: tuple[ArenaServer, Path], nats_server: LocalServer, redis_server: LocalServer, bus: Bus, uid: str
) -> None:
    """The LLM's URL refuses connections: each agent gives up on it within its retry budget and the rulebook does
    the work, so the incident is resolved, the reason is on the timeline, and no work was dropped (no work_failed:
    with the fallback working, nothing goes to the dead-letter stream)."""
    _, kubeconfig = shop_arena
    ns = f"dead-{uid}"
    deploy_shop(kubeconfig, ns)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    timeline = await Timeline(bus, ns).start()
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        ns,
        f"t{uid}",
        Path("var/e2e") / f"{ns}.log",
        STRATUS_LLM_BASE_URL=dead,
        STRATUS_LLM_MODEL="unreachable",
        STRATUS_LLM_RETRY_BUDGET_S="2",
    ):
        scale(kubeconfig, ns, "web", 0)
        opened = (await timeline.wait_for("incident_opened", timeout=60))[0]
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
    await timeline.stop()
    assert closed["outcome"] == "resolved", closed
    diagnosis = timeline.of("diagnosis")[0]
    # the diagnoser gave up on the LLM within its retry budget (2 s) and the rulebook answered: well under the 20
    # redeliveries over ~6 minutes a dead LLM used to cost, with room for a busy machine
    took = (datetime.fromisoformat(diagnosis["ts"]) - datetime.fromisoformat(opened["ts"])).total_seconds()
    assert took < 60, f"the diagnosis took {took:.0f}s"
    assert "diagnosed by the rulebook: the LLM failed" in diagnosis["summary"] and "unreachable" in diagnosis["summary"]
    assert diagnosis["localisation"][:1] == ["web"] and diagnosis["usage"]["llm_errors"] >= 1
    ended = timeline.of("transaction_ended")[0]
    assert "the rulebook acted" in ended["reason"] and "unreachable" in ended["reason"], ended["reason"]
    assert ended["actions"] >= 1 and ended["usage"]["llm_errors"] >= 1
    assert timeline.of("work_failed") == []  # nothing was dropped
    assert replicas(kubeconfig, ns)["web"] == 1


async def dead_letters(bus: Bus, service: str, incident_id: str) -> list[DeadLetter]:
    sub = await bus.js.subscribe(
        DEFAULT_TOPOLOGY.deadletter(service),
        stream=DEFAULT_TOPOLOGY.deadletter_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    out = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except Exception:
                break
            record = DeadLetter.model_validate_json(msg.data)
            if record.incident_id == incident_id:
                out.append(record)
    finally:
        await sub.unsubscribe()
    return out


async def test_without_the_fallback_a_dead_llm_escalates_with_the_reason_and_dead_letters_the_request(
    shop_arena: tuple[ArenaServer, Path], nats_server: LocalServer, redis_server: LocalServer, bus: Bus, uid: str
) -> None:
    """``STRATUS_LLM_FALLBACK=false``: the diagnoser gives the request up within its retry budget (the request is in
    the dead-letter stream with the reason), each transaction fails on the LLM, and the incident escalates with the
    reason once its attempts are spent (``STRATUS_MAX_RETRIES``); health shows the LLM degraded."""
    _, kubeconfig = shop_arena
    ns = f"nofb-{uid}"
    deploy_shop(kubeconfig, ns)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    timeline = await Timeline(bus, ns).start()
    with running_system(
        nats_server.url,
        redis_server.url,
        kubeconfig,
        ns,
        f"t{uid}",
        Path("var/e2e") / f"{ns}.log",
        STRATUS_LLM_BASE_URL=dead,
        STRATUS_LLM_MODEL="unreachable",
        STRATUS_LLM_RETRY_BUDGET_S="2",
        STRATUS_LLM_FALLBACK="false",
        STRATUS_MAX_RETRIES="1",
    ):
        scale(kubeconfig, ns, "web", 0)
        opened = (await timeline.wait_for("incident_opened", timeout=60))[0]
        closed = (await timeline.wait_for("incident_closed", timeout=90))[0]
        replies = await gather_health(nats_server.url, ["diagnoser"], window=0.7)
    await timeline.stop()
    assert closed["outcome"] == "escalated", closed
    took = (datetime.fromisoformat(closed["ts"]) - datetime.fromisoformat(opened["ts"])).total_seconds()
    assert took < 60, f"the escalation took {took:.0f}s"
    failed = timeline.of("work_failed")[0]
    assert failed["service"] == "diagnoser" and "unreachable" in failed["reason"], failed
    assert closed["attempts"] == 2 and "unreachable" in closed["report"], closed["report"]
    records = await dead_letters(bus, "diagnoser", opened["incident_id"])
    assert [r.cause for r in records] == ["rejected"] and "unreachable" in records[0].reason
    llm = replies["diagnoser"][0].dependencies["llm"]
    assert llm.startswith("degraded: the last call") and "unreachable" in llm, llm
