"""``stratus bench --suite memory``: the tables of the failure-memory issue, in one run.

1. Agent-step failure detection on held-out synthetic traces: detection F1, diagnosis F1, Recall@10, latency per
   step; the step check against the plain MiniLM embedding and string heuristics. The same on the recorded traces
   (``data/local-traces-v1.jsonl``: real steps of the local model and of the scripted failure-injecting model on
   the arena, labelled from what happened), one table per model, when that file is there.
2. Incident retrieval: Recall@10 of equivalent incidents; the memory's signature against the plain MiniLM embedding
   of the raw scope text and raw token overlap.
3. Recurring incidents (the real system on the arena, the model simulated): TTM and LLM calls, first vs second.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _method_rows(methods: dict[str, Any], *, recall: bool) -> list[str]:
    """One table row per method's metrics (the entries that have them), with Recall@10 when ``recall``."""
    rows = []
    for name, m in methods.items():
        if isinstance(m, dict) and "detection_f1" in m:
            cells = [m["detection_precision"], m["detection_recall"], m["detection_f1"], m["diagnosis_f1"]]
            cells += [m["recall_at_10"]] if recall else []
            timing = f"{_f(m['latency_ms_median'], 3)} | {_f(m['latency_ms_p95'], 3)}"
            rows.append(f"| {name} | {' | '.join(_f(c) for c in cells)} | {timing} |")
    return rows


def tables(result: dict[str, Any]) -> str:
    steps, incidents = result["steps"], result["incidents"]
    lines = [
        f"### Agent-step failure detection (held-out apps; {steps['test_steps']} steps, {steps['failing']} failing; "
        f"knowledge base {steps['kb']} steps)",
        "",
        "| method | detection P | detection R | detection F1 | diagnosis F1 | Recall@10 | latency/step median (ms) "
        "| p95 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += _method_rows(steps, recall=True)
    for recorded in result.get("recorded") or []:
        labels = ", ".join(f"{k} {v}" for k, v in recorded["labels"].items())
        lines += [
            "",
            f"### Agent-step failure detection on recorded traces of {', '.join(recorded['model'])} "
            f"({recorded['steps']} steps in {recorded['traces']} traces of {recorded['scenarios']} scenarios, "
            f"{recorded['failing']} failing: {labels})",
            "",
            "| method | detection P | detection R | detection F1 | diagnosis F1 | latency/step median (ms) "
            "| p95 (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += _method_rows(recorded, recall=False)
    lines += [
        "",
        f"### Incident retrieval ({incidents['incidents']} incidents, {incidents['fault_kinds']} fault kinds; "
        "equivalent = same fault kind on any app or service)",
        "",
        "| method | Recall@10 |",
        "|---|---|",
    ]
    for name, m in incidents.items():
        if isinstance(m, dict):
            lines.append(f"| {name} | {_f(m['recall_at_10'])} |")
    rec = result.get("recurring")
    if rec:
        lines += [
            "",
            f"### Recurring incidents (memory on; simulated model, {rec['delay_s']:.1f} s per call)",
            "",
            "| scenario | success 1st / 2nd | TTM 1st (s) | TTM 2nd (s) | LLM calls 1st | LLM calls 2nd "
            "| attempts 1st / 2nd |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rec["rows"]:
            lines.append(
                f"| {r['scenario']} | {'yes' if r['first_success'] else 'no'} / "
                f"{'yes' if r['second_success'] else 'no'} | {_f(r['first_ttm_s'], 1)} | {_f(r['second_ttm_s'], 1)} | "
                f"{_f(r['first_llm_calls'])} | {_f(r['second_llm_calls'])} | "
                f"{r['first_attempts']} / {r['second_attempts']} |"
            )
        fewer = sum(
            1
            for r in rec["rows"]
            if r["first_llm_calls"] is not None
            and r["second_llm_calls"] is not None
            and r["second_llm_calls"] < r["first_llm_calls"]
            and r["first_ttm_s"] is not None
            and r["second_ttm_s"] is not None
            and r["second_ttm_s"] < r["first_ttm_s"]
        )
        lines.append("")
        lines.append(f"Second occurrence with fewer LLM calls and a lower TTM: {fewer}/{len(rec['rows'])}.")
    return "\n".join(lines)


def run_suite(
    out: Path,
    echo: Callable[[str], None],
    *,
    regenerate: bool = False,
    recurring: bool = True,
    delay_s: float = 1.0,
    only: list[str] | None = None,
) -> dict[str, Any]:
    from arena.bench.memory import dataset, evaluate, train

    if regenerate:
        echo(f"dataset: {dataset.write()}")
        echo(f"training: {train.train()}")
    result: dict[str, Any] = {
        "dataset": dataset.VERSION,
        "synthetic": True,
        "steps": evaluate.evaluate_steps(echo),
        "incidents": evaluate.evaluate_incidents(echo),
    }
    recorded = evaluate.evaluate_recorded(echo)
    if recorded:
        result["recorded"] = recorded
    if recurring:
        from arena.bench.memory.recurring import run

        result["recurring"] = run(out / "recurring", echo, delay_s=delay_s, only=only)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "report.md").write_text(tables(result) + "\n")
    return result
