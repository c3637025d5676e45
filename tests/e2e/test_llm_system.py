"""The whole system with LLM reasoners, the model played by the scripted OpenAI-compatible server.

The services run as processes with ``STRATUS_LLM_BASE_URL`` pointing at the scripted server. The model's first
transaction makes things worse (it scales a healthy tier to zero); the coordinator aborts it and the undoer rolls it
back. The second transaction is shown the reflection of the first; the model sends a malformed tool call, survives
the corrective message, then applies the real fix, which commits. Tokens are accounted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arena.server import ArenaServer
from stratus.bus import Bus
from stratus.localinfra import LocalServer
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
    print(json.dumps({"llm_requests": len(llm.requests)}))
