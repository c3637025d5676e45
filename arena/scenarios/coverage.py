"""Regenerate the coverage table of ``catalogue/sregym/README.md`` from the scenario files in that folder.

Each row of the table names one SREGym problem of the reference page; a row whose problem has a file gets the file
and its capabilities, the others keep their "why not yet" note. The count line above the table is recomputed.
Run: ``python -m arena.scenarios.coverage`` (``--check`` exits 1 when the README is out of date).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from arena.scenarios.schema import load_scenario

FOLDER = Path(__file__).parent / "catalogue" / "sregym"
_ROW = re.compile(r"^\| (\d+) \| `([^`]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \| (.*) \|$")
_COUNT = re.compile(r"^\d+ of the \d+ described problems have a scenario file \(\d+ of \d+ Lite\)\.$")


def render(text: str, folder: Path = FOLDER) -> str:
    files = {p.stem: p for p in folder.glob("*.yaml")}
    lines, rows = text.splitlines(), []
    for i, line in enumerate(lines):
        m = _ROW.match(line)
        if not m:
            continue
        num, pid, app, lite, _, _why = m.groups()
        path = files.get(pid)
        if path is not None:
            caps = ", ".join(load_scenario(path).capabilities)
            lines[i] = f"| {num} | `{pid}` | {app} | {lite} | `sregym/{pid}.yaml` | {caps} |"
        rows.append((lite.strip() == "yes", path is not None))
    done, lite_all = sum(1 for _, f in rows if f), sum(1 for lt, _ in rows if lt)
    lite_done = sum(1 for lt, f in rows if lt and f)
    count = f"{done} of the {len(rows)} described problems have a scenario file ({lite_done} of {lite_all} Lite)."
    lines = [count if _COUNT.match(line) else line for line in lines]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    readme = FOLDER / "README.md"
    old = readme.read_text()
    new = render(old)
    if "--check" in argv:
        return 0 if new == old else 1
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
