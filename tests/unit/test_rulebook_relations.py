"""The relation analyzers (``stratus.reasoners.rulebook.relations``) on recorded snapshots stored as data:
``tests/data/relations/<case>/`` holds the objects, events and logs the read tools returned, and ``expected.yaml``
the findings (mechanism and target) and the writes the mitigation must make (in any order)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.reasoners.rulebook import RulebookMitigationReasoner, analyze
from stratus.reasoners.rulebook.relations import quantity
from stratus.reasoners.rulebook.snapshot import collect
from tests.unit.rulebook_cases.casetools import CaseTools
from tests.unit.test_rulebook_cases import mitigate_request

DATA = Path(__file__).parent.parent / "data" / "relations"
CASES = sorted(p for p in DATA.iterdir() if (p / "expected.yaml").exists())


def expected(case: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((case / "expected.yaml").read_text()))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_findings(case: Path) -> None:
    tools = CaseTools(case)
    snap = asyncio.run(collect(tools, "ns1", with_traces=False))
    found = {(f.mechanism, f.target) for f in analyze(snap)}
    want = expected(case)
    for f in want["findings"]:
        assert (f["mechanism"], f["target"]) in found, found
    for f in want.get("absent") or []:
        assert (f["mechanism"], f["target"]) not in found, found


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_writes(case: Path) -> None:
    tools = CaseTools(case)
    asyncio.run(RulebookMitigationReasoner().mitigate(mitigate_request("ns1"), tools))
    done = sorted((a.verb, a.target) for a in tools.executed)
    want = expected(case)["writes"]
    assert done == sorted((w["verb"], w["target"]) for w in want)
    for w in want:
        if "patch" in w:
            patches = [a.patch for a in tools.executed if a.target == w["target"] and a.verb == "patch"]  # type: ignore[attr-defined]
            assert w["patch"] in patches


def test_one_workload_carries_several_findings() -> None:
    snap = asyncio.run(collect(CaseTools(DATA / "taints-cordon-and-cpu"), "ns1", with_traces=False))
    on_search = {f.mechanism for f in analyze(snap) if f.component == "search"}
    assert {"resources_exceed_nodes", "untolerated_taints", "node_cordoned"} <= on_search


def test_quantities() -> None:
    assert quantity("64") == 64 and quantity("500m") == 0.5
    assert quantity("1Gi") == 1024**3 and quantity("2M") == 2e6
    assert quantity("lots") is None
