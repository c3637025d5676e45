"""The rulebook reasons from Kubernetes semantics only: no analyzer, recipe or change rule may name a scenario, a
problem id, an application or one of its components (this scans the source, comments included)."""

from __future__ import annotations

import re
from pathlib import Path

from arena.apps import APPS
from arena.scenarios.engine import CATALOGUE_DIR, Registry

RULEBOOK = Path(__file__).parents[2] / "stratus" / "reasoners" / "rulebook"
UNSEEN = Path(__file__).parents[1] / "data" / "unseen"


def forbidden_names() -> set[str]:
    registry = Registry([CATALOGUE_DIR, UNSEEN])
    names = set(registry.ids())
    names |= {scenario.family for scenario, _ in registry.by_id.values()}
    for app, spec in APPS.items():
        names |= {app, spec.namespace, app.replace("-", "")}
        for obj in spec.manifests():
            name = str((obj.get("metadata") or {}).get("name", ""))
            if "-" in name:  # one-word names (geo, user, frontend) are ordinary words, not identifiers
                names.add(name)
    return {n for n in names if len(n) >= 5}


def test_no_rulebook_source_names_a_scenario_or_an_application() -> None:
    names = forbidden_names()
    assert len(names) > 30  # the scan has something to look for
    pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in sorted(names)), re.IGNORECASE)
    hits = []
    for path in sorted(RULEBOOK.glob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for m in pattern.finditer(line):
                hits.append(f"{path.name}:{i}: {m.group(0)}")
    assert hits == [], hits
