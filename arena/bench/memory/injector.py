"""A scripted failure-injecting model: the LLM agents' recurring mistakes, made on purpose, on the real system.

An OpenAI-compatible server in the bench process (as in ``recurring``) plays the diagnoser and the mitigator. Between
useful calls it makes, with seeded probabilities, the mistakes the issue lists: a tool that does not exist, arguments
that are not JSON, an object name with a plausible suffix, a kubectl line the confinement rules refuse (pipe,
interactive flag, edit, ``&&``), the same read again, the same refused line again. Its first transaction starts with
a harmful write (the front end rolled to an image that does not exist); later ones send the scenario's documented
fix. Nothing is labelled here: the real toolkit, gateway and coordinator answer every call, and
``traces.py`` labels each step from those answers and from what the transaction became (aborted and undone, or
committed), as for the local model's traces.

``python -m arena.bench.memory.injector OUT [--seed N] [--only ID ...]`` runs it over catalogue scenarios.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.apps import APPS
from arena.bench.memory.recurring import SimulatedModel, _reply
from arena.bench.record import ScenarioRecord
from arena.bench.runner import Bench, BenchOptions, scripted_plan

MODEL_NAME = "scripted failure-injecting model"
SCENARIOS = (
    "k8s_target_port-misconfig-mitigation-1",
    "scale_pod_zero_social_net-mitigation-1",
    "misconfig_app_hotel_res-mitigation-1",
    "wrong_bin_usage-mitigation-1",
    "assign_to_non_existent_node_social_net-mitigation-1",
    "k8s_target_port-misconfig-mitigation-2",
)
WRONG_TOOLS = ("get_pod_logs", "describe_pod", "restart_service", "check_health", "kubectl_exec")
SUFFIXES = ("-svc", "-app", "-deployment", "-v2", "-pod")
_ROW = re.compile(r"^([a-z0-9][a-z0-9.-]{0,252})\s", re.MULTILINE)


def _names(messages: list[dict[str, Any]]) -> list[str]:
    """Object names the model has seen: the first column of the object tables its tools answered."""
    out: list[str] = []
    for m in messages:
        content = str(m.get("content") or "")
        if m.get("role") == "tool" and content.startswith("NAME"):
            out += [n for n in _ROW.findall(content) if not re.fullmatch(r"[0-9smhd]+", n)]
    return list(dict.fromkeys(out))


@dataclass
class FailureInjectingModel(SimulatedModel):
    seed: int = 0
    rate: float = 0.5
    """Chance of a mistake before each useful call."""
    harmful: list[str] = field(default_factory=list)
    namespace: str = "default"
    rng: random.Random = field(default_factory=random.Random)
    scenario: str = ""

    def reset(self, scenario: str, plan: list[str], harmful: list[str], namespace: str) -> None:
        self.scenario, self.plan, self.harmful, self.namespace = scenario, plan, harmful, namespace
        self.rng = random.Random(f"{self.seed}/{scenario}")

    def _mistake(self, made: list[tuple[str, str]], names: list[str]) -> dict[str, Any] | None:
        if self.rng.random() >= self.rate:
            return None
        ns = self.namespace
        target = self.rng.choice(names) if names else "frontend"
        kinds = ["wrong_tool", "malformed", "hallucinated", "refused", "repeat"]
        kind = self.rng.choice(kinds)
        if kind == "wrong_tool":
            return _reply(self.rng.choice(WRONG_TOOLS), {"name": target})
        if kind == "malformed":
            return _raw_reply(self.rng.choice(["get_logs", "get_object", "list_objects"]),
                              f'{{"kind": "Deployment", "name": "{target}", ')  # fmt: skip
        if kind == "hallucinated":
            base = re.sub(r"-[a-z0-9]{5,10}(-[a-z0-9]{5})?$", "", target)
            return _reply("get_object", {"kind": "Deployment", "name": base + self.rng.choice(SUFFIXES)})
        if kind == "refused":
            line = self.rng.choice(
                [
                    f"kubectl logs {target} -n {ns} | grep -i error",
                    f"kubectl exec -it {target} -n {ns} -- sh",
                    f"kubectl edit deployment {target} -n {ns}",
                    f"kubectl get pods -n {ns} && kubectl get svc -n {ns}",
                    f"kubectl get pods -n {ns} > /tmp/pods.txt",
                ]
            )
            return _reply("kubectl", {"command": line})
        if made:  # the same call again (a read, or a refused line)
            tool, args = self.rng.choice(made)
            return _raw_reply(tool, args)
        return None

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        messages = body["messages"]
        made = [
            (str(c["function"]["name"]), str(c["function"]["arguments"]))
            for m in messages
            if m.get("role") == "assistant"
            for c in m.get("tool_calls") or []
        ]
        names = _names(messages)
        writer = "end_transaction" in tools
        useful = [(t, a) for t, a in made if t in tools and not a.rstrip().endswith(",") and t not in ("get_object",)]
        if len(made) < 8:
            mistake = self._mistake(made, names)
            if mistake is not None:
                return mistake
        if not writer:
            if not useful:
                return _reply("list_objects", {"kind": "Pod"})
            if len(useful) == 1:
                return _reply("get_events", {})
            if len(useful) == 2 and names:
                return _reply("get_logs", {"pod": self.rng.choice(names)})
            return _reply(
                "submit_diagnosis",
                {
                    "localisation": [names[0] if names else "unknown"],
                    "system_level": "Application",
                    "fault_type": "Misconfiguration",
                    "summary": "scripted diagnosis",
                },
            )
        task = next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), "")
        first = re.search(r"\battempt 1\b", task) is not None
        lines = self.harmful if first and self.harmful else self.plan
        sent = [json.loads(a).get("command") for t, a in made if t == "kubectl" and _is_object(a)]
        todo = [line for line in lines if line not in sent]
        if todo:
            return _reply("kubectl", {"command": todo[0]})
        return _reply("end_transaction", {"reason": "applied a fix", "fixed": True})


def _is_object(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except json.JSONDecodeError:
        return False


def _raw_reply(name: str, arguments: str) -> dict[str, Any]:
    reply = _reply(name, {})
    reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = arguments
    return reply


class InjectingBench(Bench):
    def __init__(self, opts: BenchOptions, echo: Callable[[str], None], model: FailureInjectingModel) -> None:
        super().__init__(opts, echo=echo)
        self.model = model

    async def _scenario(self, pid: str, policy: str, ablation: str, rep: int, seed: int = 0) -> ScenarioRecord:
        sc, _ = self.registry.get(pid)
        app = APPS[sc.app]
        fix = [x for x in scripted_plan(sc, app)["attempts"][0] if isinstance(x, str)]
        harm = [x for x in scripted_plan(sc, app, "harmful-then-fix")["attempts"][0] if isinstance(x, str)]
        self.model.reset(pid, fix, harm, app.namespace)
        return await super()._scenario(pid, policy, ablation, rep, seed)


def run(out: Path, echo: Callable[[str], None], *, seed: int = 0, only: list[str] | None = None) -> Path:
    model = FailureInjectingModel(delay_s=0.2, seed=seed).start()
    try:
        opts = BenchOptions(
            suite="aiopslab-mitigation",
            policies=["llm"],
            only=list(only or SCENARIOS),
            out=out,
            timeout_s=240,
            env={
                "STRATUS_LLM_BASE_URL": model.url,
                "STRATUS_LLM_MODEL": "scripted",
                "STRATUS_LLM_API_KEY": "scripted",
                "STRATUS_LLM_FALLBACK": "false",
                "STRATUS_LLM_CANDIDATES": "false",
                "STRATUS_LLM_MAX_STEPS": "12",
                "STRATUS_MAX_RETRIES": "2",
            },
            command="python -m arena.bench.memory.injector",
        )
        record = InjectingBench(opts, echo, model).run()
    finally:
        model.stop()
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(record.model_dump_json(indent=2))
    (out / "model.txt").write_text(MODEL_NAME + "\n")
    return out


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Record traces of a scripted failure-injecting model on the arena.")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", action="append", default=None)
    a = p.parse_args(argv)
    run(a.out, lambda line: print(line, flush=True), seed=a.seed, only=a.only)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
