"""Recurring incidents: each catalogue fault twice with incident memory on, the LLM agents played by a simulated
model; the second occurrence's time to mitigate and LLM calls against the first's.

The simulated model is an OpenAI-compatible server in this process. It diagnoses in three calls (pods, events,
answer) and mitigates by sending the scenario's documented fix, one kubectl line per call, then ends the
transaction; every call takes ``delay_s`` (a stand-in for a real model's latency: the local 1.5B model takes ~16 s
to read a 1,100-token prompt). It never fails, so what the second occurrence saves is what memory saves: the
mitigation calls, replaced by the replay of the first occurrence's committed fix (still a TNR transaction).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from arena.apps import APPS
from arena.bench.record import ScenarioRecord
from arena.bench.runner import Bench, BenchOptions, scripted_plan

SCENARIOS = (
    "assign_to_non_existent_node_social_net-mitigation-1",
    "k8s_target_port-misconfig-mitigation-1",
    "k8s_target_port-misconfig-mitigation-2",
    "scale_pod_zero_social_net-mitigation-1",
    "misconfig_app_hotel_res-mitigation-1",
    "wrong_bin_usage-mitigation-1",
)


def _reply(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    call = {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function", "function": function}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": "simulated",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040},
    }


@dataclass
class SimulatedModel:
    delay_s: float = 1.0
    plan: list[str] = field(default_factory=list)
    calls: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        made = [
            json.loads(c["function"]["arguments"] or "{}")
            for m in body["messages"]
            if m.get("role") == "assistant"
            for c in m.get("tool_calls") or []
        ]
        if "submit_diagnosis" in tools:
            if len(made) == 0:
                return _reply("list_objects", {"kind": "Pod"})
            if len(made) == 1:
                return _reply("get_events", {})
            return _reply(
                "submit_diagnosis",
                {
                    "localisation": ["unknown"],
                    "system_level": "Virtualization",
                    "fault_type": "Misconfiguration",
                    "summary": "simulated diagnosis",
                },
            )
        sent = [a.get("command") for a in made if "command" in a]
        todo = [line for line in self.plan if line not in sent]
        if todo:
            return _reply("kubectl", {"command": todo[0]})
        return _reply("end_transaction", {"reason": "applied the fix"})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return web.json_response(self.decide(body))

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "simulated", "object": "model"}]})

    def start(self) -> SimulatedModel:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True, name="simulated-model").start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)


class RecurringBench(Bench):
    def __init__(self, opts: BenchOptions, echo: Callable[[str], None], model: SimulatedModel) -> None:
        super().__init__(opts, echo=echo)
        self.model = model
        self.calls: dict[tuple[str, int], int] = {}

    async def _scenario(self, pid: str, policy: str, ablation: str, rep: int, seed: int = 0) -> ScenarioRecord:
        sc, _ = self.registry.get(pid)
        self.model.plan = scripted_plan(sc, APPS[sc.app])["attempts"][0]
        before = self.model.calls
        rec = await super()._scenario(pid, policy, ablation, rep, seed)
        self.calls[(pid, rep)] = self.model.calls - before
        return rec


def run(
    out: Path, echo: Callable[[str], None], *, delay_s: float = 1.0, only: list[str] | None = None
) -> dict[str, Any]:
    model = SimulatedModel(delay_s=delay_s).start()
    try:
        opts = BenchOptions(
            suite="aiopslab-mitigation",
            policies=["llm"],
            repeat=2,
            only=list(only or SCENARIOS),
            out=out,
            env={
                "STRATUS_MEMORY_ENABLED": "true",
                "STRATUS_LLM_BASE_URL": model.url,
                "STRATUS_LLM_MODEL": "simulated",
                "STRATUS_LLM_API_KEY": "simulated",
                "STRATUS_LLM_FALLBACK": "false",
            },
            command="stratus bench --suite memory",
        )
        bench = RecurringBench(opts, echo, model)
        record = bench.run()
    finally:
        model.stop()
    rows = []
    for pid in opts.only:
        runs = {r.repeat: r for r in record.runs if r.scenario == pid}
        if 0 not in runs or 1 not in runs:
            continue
        first, second = runs[0], runs[1]
        rows.append(
            {
                "scenario": pid,
                "first_success": first.success,
                "second_success": second.success,
                "first_ttm_s": first.ttm_s,
                "second_ttm_s": second.ttm_s,
                "first_llm_calls": bench.calls.get((pid, 0)),
                "second_llm_calls": bench.calls.get((pid, 1)),
                "first_attempts": len(first.attempts),
                "second_attempts": len(second.attempts),
            }
        )
    return {"delay_s": delay_s, "rows": rows}
