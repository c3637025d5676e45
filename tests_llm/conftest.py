"""The opt-in local-model tier (``make test-llm``): a real model on loopback, the arena, the real gateway.

Not collected by ``make test`` (it lives outside ``tests/``). The endpoint comes from the reasoner settings
(``STRATUS_LLM_BASE_URL``, set by ``make test-llm``); the pytest guard of ``stratus.llm`` still applies, so only a
loopback endpoint can be used here. Results go to ``build/llm-results.json`` and to the terminal summary; the tests
assert outcomes (mitigated, localised, no LLM error, every prompt within the window), so a case the 1.5B model
misses fails, with the reason in the summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.settings import ReasonerSettings
from tests.fixtures_apps import apps_arena_fixture, apps_kubeconfig_fixture, engine_fixture

CASES: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())
RESULTS: list[dict[str, Any]] = []
RESULTS_FILE = Path("build/llm-results.json")


@pytest.fixture(scope="session")
def llm_settings() -> ReasonerSettings:
    settings = ReasonerSettings()
    if settings.llm_base_url is None:
        pytest.skip("STRATUS_LLM_BASE_URL is not set: run this tier with `make test-llm`")
    return settings


# This tier does not load tests/conftest.py: it binds the shared arena fixtures itself, for the whole session.
apps_arena = apps_arena_fixture("session")
apps_kubeconfig = apps_kubeconfig_fixture("session")
engine = engine_fixture("session", time_scale=0.25)


@pytest.fixture(scope="session")
def record() -> Iterator[list[dict[str, Any]]]:
    yield RESULTS
    if RESULTS:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(RESULTS, indent=2))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("local model results")
    for r in RESULTS:
        if r.get("kind") == "throughput":
            tr.write_line(
                f"throughput: {r['completion_tokens']} tokens generated in {r['generate_s']:.1f}s "
                f"({r['tokens_per_s']:.1f} tok/s); prompt of {r['prompt_tokens']} tokens read in "
                f"{r['prompt_s']:.1f}s ({r['prompt_tokens_per_s']:.1f} tok/s)"
            )
            continue
        tr.write_line(
            f"{r['pid']}: localisation {'ok' if r['localisation_ok'] else 'wrong'} {r['localisation']}, "
            f"rca {'ok' if r['rca_ok'] else 'wrong'} {r['root_cause']}, diagnosis {r['diagnose_s']:.0f}s/"
            f"{r['diagnosis_steps']} steps; mitigated {r['mitigated']} after {r['attempts']} attempts in "
            f"{r['mitigate_s']:.0f}s, writes {r['writes']}; tokens {r['prompt_tokens']}+{r['completion_tokens']}"
        )
    cases = [r for r in RESULTS if r.get("kind") == "case"]
    if cases:
        tr.write_line(
            f"summary: {sum(r['mitigated'] for r in cases)}/{len(cases)} mitigated, "
            f"{sum(r['localisation_ok'] for r in cases)}/{len(cases)} localised, "
            f"{sum(r['rca_ok'] for r in cases)}/{len(cases)} root causes; details in {RESULTS_FILE}"
        )
