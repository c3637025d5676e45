"""The system bench with the state embedding off and on, side by side (from two or more ``stratus bench`` outputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _runs(folder: Path) -> list[dict[str, Any]]:
    doc = json.loads((folder / "bench.json").read_text())
    return list(doc["runs"])


def compare(off: list[Path], on: list[Path]) -> str:
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for label, folders in (("off", off), ("on", on)):
        for folder in folders:
            for r in _runs(folder):
                rows.setdefault(r["scenario"], {})[label] = r
    lines = [
        "| scenario | embedding off: detected / TTD (s) / answer / success | embedding on: detected / TTD (s) / answer "
        "/ success |",
        "|---|---|---|",
    ]

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        ttd = "-" if r.get("ttd_s") is None else f"{r['ttd_s']:.1f}"
        detected, success = ("yes" if r.get(k) else "no" for k in ("detected", "success"))
        return f"{detected} / {ttd} / {r.get('answer') or '-'} / {success}"

    for scenario in sorted(rows):
        lines.append(f"| {scenario} | {cell(rows[scenario].get('off'))} | {cell(rows[scenario].get('on'))} |")
    for label, folders in (("off", off), ("on", on)):
        runs = [r for f in folders for r in _runs(f)]
        ok = sum(bool(r.get("success")) for r in runs)
        lines.append(f"\nEmbedding {label}: {ok}/{len(runs)} succeeded.")
    return "\n".join(lines) + "\n"
