"""The example SLO queries (deploy/prometheus/slo-queries.yml) on a real PromQL engine: ``promtool test rules``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stratus.promstack import REPO_ROOT, binary
from stratus.settings import SeveritySettings

EXAMPLES = REPO_ROOT / "deploy" / "prometheus" / "slo-queries.yml"


def queries() -> dict[str, str]:
    return dict(yaml.safe_load(EXAMPLES.read_text())["queries"])


def test_the_examples_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_SLO_QUERIES", json.dumps(queries()))
    assert SeveritySettings().slo_queries == queries()


def test_consumer_lag_fires_only_for_a_group_that_stays_behind(tmp_path: Path) -> None:
    promtool = binary("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/install-promstack.sh)")
    expr = queries()["consumer-lag"].replace("$scope", "shop")
    (tmp_path / "empty.yml").write_text("groups: []\n")
    lag = 'kafka_consumergroup_lag{{namespace="{ns}",consumergroup="{g}",topic="orders",partition="0"}}'
    cases = {
        "rule_files": ["empty.yml"],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [
                    # stuck: lag grows by one record every 5 s from 0
                    {"series": lag.format(ns="shop", g="validator"), "values": "0+1x40"},
                    # keeps up: a burst of 50 records drained within 10 s, every 30 s
                    {"series": lag.format(ns="shop", g="accounting"), "values": "0 50 0 0 0 0 " * 6},
                    # another namespace's stuck group is not this scope's
                    {"series": lag.format(ns="other", g="validator"), "values": "0+1x40"},
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "40s", "exp_samples": []},
                    {
                        "expr": expr,
                        "eval_time": "100s",
                        "exp_samples": [
                            {
                                "labels": lag.format(ns="shop", g="validator").replace("kafka_consumergroup_lag", ""),
                                "value": 14,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(cases, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
