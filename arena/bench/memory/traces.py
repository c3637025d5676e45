"""Recorded agent traces: the LLM agents' real steps on catalogue scenarios, labelled from what happened.

The synthetic dataset (``dataset.py``) is made from templates; this file is the other half of the memory suite's
data: the ``reasoning_step`` events of real bench runs (``stratus bench --policy llm``, the timeline of each
incident, written by the bench as ``logs/<scenario>.<policy>.<ablation>.<repeat>.timeline.jsonl``), one trace per
piece of work (the diagnosis, or one transaction of the mitigator).

Labels come from what happened to the step, never from the scenario's name:
- the tool loop's own answers: an unknown tool or a write from a read-only role (``wrong_tool``), arguments it could
  not run (``malformed_call``), a repeated read it refused to run again, or the same refused call sent again
  (``loop``), and also the same call answered exactly as before in the same piece of work (``loop``: the loop's
  own guard lets a read through again after any write-capable call);
- a refusal by the confinement rules or the tools (``refused_command``), an object the API does not have
  (``hallucinated_name``);
- a write the gateway executed in a transaction the coordinator then aborted and undid (``preceded_abort``);
- everything else is ``ok``. Each step also carries its transaction's decision, the incident's outcome and the
  scenario's oracle, for whoever wants other labels.

``python -m arena.bench.memory.traces BENCH_OUT...`` turns bench outputs into ``data/local-traces-v1.jsonl`` (the
committed file the suite reads; ``scripts/memory-traces.sh`` re-records it with the local model).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arena.bench.memory.dataset import DATA_DIR
from stratus.stepcheck.steps import Label

TRACES_VERSION = "v1"
TRACES_FILE = DATA_DIR / f"local-traces-{TRACES_VERSION}.jsonl"
MAX_STEPS = 5000
"""A recorded-trace file is data from outside: at most this many steps are read from it."""
MAX_TEXT = 4000

Step = dict[str, Any]

_NOT_FOUND = re.compile(
    r"\(NotFound\)|\"[^\"]{1,253}\" not found|^[A-Za-z]+ \S+ not found\b|^there is no candidate|"
    r"^Refused: there is no candidate",
    re.IGNORECASE,
)
_NO_POD = re.compile(r"^No pod or workload named")
_NO_CONTAINER = re.compile(r"^\(no logs: Error from server .{0,40}container \S+ is not valid for pod")
"""The API's answer to a log read naming a container the pod does not have (not a log line)."""
_FAILED_CALLS = frozenset({"wrong_tool", "malformed_call", "refused_command", "hallucinated_name"})
"""Labels of a call that failed: sending the same call again is a loop, whatever it is answered."""
_TERMINAL = frozenset({"submit_diagnosis", "end_transaction"})
_CONTENT_TOOLS = frozenset({"get_logs", "get_traces", "get_events"})
"""Their answers are the system's own text (log lines, spans): a "not found" there is data, not the tool's answer."""


def _names_missing(step: Step, head: str) -> bool:
    if _NO_POD.search(head) or _NO_CONTAINER.search(head):
        return True
    content = step["tool"] in _CONTENT_TOOLS or re.search(r"\blogs\b", step["arguments"][:200]) is not None
    return not content and _NOT_FOUND.search(head) is not None


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:400]


def _is_refusal(result: str) -> bool:
    head = _first_line(result)
    return bool(re.search(r"\brefused\b|\bnot supported\b|was not done", head, re.IGNORECASE))


def label_of(
    step: Step, earlier_refused: set[str], decision: str | None, earlier: dict[str, str] | None = None
) -> Label:
    """The failure kind of one step, from the answer it got and what its transaction became. ``earlier_refused``:
    the calls of this piece of work that failed before; ``earlier``: every earlier call's last answer."""
    result, head = step["result"], _first_line(step["result"])
    if head.startswith("Unknown tool") or "read-only role" in head:
        return "wrong_tool"
    if (head.startswith("Your call to") and "was not run" in head) or head.startswith("Invalid arguments"):
        return "malformed_call"
    key = f"{step['tool']}:{step['arguments']}"
    if head.startswith("You already called") or key in earlier_refused:
        return "loop"
    if earlier is not None and earlier.get(key) == result and step["tool"] not in _TERMINAL:
        return "loop"  # the same call again, answered exactly as before: nothing was learnt from it
    if _names_missing(step, head):
        return "hallucinated_name"
    if not step["ok"] or _is_refusal(result):
        return "refused_command"
    if decision == "abort" and "writes left in this transaction" in result:
        return "preceded_abort"
    return "ok"


def _piece(event: Step) -> str:
    return event.get("tx_id") or "diagnosis"


def steps_of_run(run: Step, events: list[Step], *, model: str, commit: str) -> list[Step]:
    """The labelled steps of one scenario run: ``run`` is its record in bench.json, ``events`` its timeline."""
    decisions = {e.get("tx_id"): e.get("decision") for e in events if e.get("kind") == "transaction_decided"}
    undone = {e.get("tx_id") for e in events if e.get("kind") == "undo_completed"}
    out: list[Step] = []
    earlier_refused: dict[tuple[str, str], set[str]] = {}
    answers: dict[tuple[str, str], dict[str, str]] = {}
    for e in events:
        if e.get("kind") != "reasoning_step" or e.get("tool") == "step_check":
            continue
        service, piece = str(e.get("service", "")), _piece(e)
        trace = f"{run['scenario']}#{run.get('repeat', 0)}/{service}/{piece}"
        step = {
            "tool": str(e.get("tool", ""))[:100],
            "arguments": str(e.get("arguments", ""))[:MAX_TEXT],
            "result": str(e.get("result", ""))[:MAX_TEXT],
            "ok": bool(e.get("ok", True)),
        }
        seen = earlier_refused.setdefault((service, piece), set())
        decision = decisions.get(e.get("tx_id")) if e.get("tx_id") else None
        earlier = answers.setdefault((service, piece), {})
        label = label_of(step, seen, decision, earlier)
        key = f"{step['tool']}:{step['arguments']}"
        if label in _FAILED_CALLS:
            seen.add(key)
        earlier[key] = step["result"]
        out.append(
            {
                **step,
                "trace": trace,
                "scenario": run["scenario"],
                "app": run.get("app", ""),
                "agent": service,
                "step": int(e.get("step", 0)),
                "attempt": e.get("attempt"),
                "tx_decision": decision,
                "undone": e.get("tx_id") in undone if e.get("tx_id") else None,
                "incident_outcome": run.get("outcome"),
                "oracle_success": bool(run.get("success")),
                "label": label,
                "split": "recorded",
                "model": model,
                "commit": commit,
            }
        )
    return out


def collect(bench_dirs: Iterable[Path], *, model: str, commit: str) -> list[Step]:
    """Every labelled step of the LLM runs recorded in these bench output folders."""
    out: list[Step] = []
    for d in bench_dirs:
        if not (d / "bench.json").is_file():
            continue
        record = json.loads((d / "bench.json").read_text())
        named = d / "model.txt"  # a run's own model name (the failure-injecting model writes one)
        run_model = named.read_text().strip()[:200] if named.is_file() else model
        for run in record.get("runs", []):
            name = run.get("timeline_file")
            if run.get("policy") not in ("llm", "hybrid") or not name:
                continue
            path = d / "logs" / Path(name).name
            if not path.is_file():
                continue
            events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            out += steps_of_run(run, events, model=run_model, commit=commit)
    return out


def write(steps: list[Step], path: Path = TRACES_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in steps))
    return path


def _valid(step: Any) -> bool:
    return (
        isinstance(step, dict)
        and all(isinstance(step.get(k), str) for k in ("tool", "arguments", "result", "label", "trace"))
        and step["label"] in ("ok", "wrong_tool", "hallucinated_name", "loop", "refused_command", "malformed_call",
                              "preceded_abort")
    )  # fmt: skip


def load(path: Path = TRACES_FILE) -> list[Step]:
    """The recorded steps (empty when the file is absent); malformed lines are skipped, texts bounded."""
    if not path.is_file():
        return []
    out: list[Step] = []
    for line in path.read_text().splitlines()[:MAX_STEPS]:
        try:
            step = json.loads(line)
        except json.JSONDecodeError:
            continue
        if _valid(step):
            for k in ("tool", "arguments", "result"):
                step[k] = step[k][:MAX_TEXT]
            out.append(step)
    return out


def summary(steps: list[Step]) -> dict[str, Any]:
    by_label: dict[str, int] = {}
    for s in steps:
        by_label[s["label"]] = by_label.get(s["label"], 0) + 1
    return {
        "steps": len(steps),
        "traces": len({s["trace"] for s in steps}),
        "scenarios": len({s.get("scenario") for s in steps}),
        "failing": sum(s["label"] != "ok" for s in steps),
        "labels": dict(sorted(by_label.items())),
        "model": sorted({str(s.get("model", "")) for s in steps}),
    }


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Build the recorded-trace file from bench output folders.")
    p.add_argument("bench_out", nargs="+", type=Path)
    p.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m (llama.cpp, local)")
    p.add_argument("--commit", default="")
    p.add_argument("--out", type=Path, default=TRACES_FILE)
    a = p.parse_args(argv)
    steps = collect(a.bench_out, model=a.model, commit=a.commit)
    write(steps, a.out)
    print(json.dumps({"file": str(a.out), **summary(steps)}, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
