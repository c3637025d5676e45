from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from arena.cli_apps import app
from arena.scenarios.engine import CATALOGUE_DIR

runner = CliRunner()


def test_validate_accepts_the_catalogue_and_names_field_and_reason(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate", str(CATALOGUE_DIR / "wrong_bin_usage-1.yaml")])
    assert ok.exit_code == 0 and "wrong_bin_usage-mitigation-1" in ok.output
    data = yaml.safe_load((CATALOGUE_DIR / "wrong_bin_usage-1.yaml").read_text())
    data["mitigation"][0]["patch_type"] = "yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = runner.invoke(app, ["validate", str(bad)])
    assert out.exit_code == 1
    assert "mitigation[0].patch.patch_type: Input should be 'strategic', 'merge' or 'json'" in out.output


def test_scenarios_lists_ids_and_check_judges_answers() -> None:
    out = runner.invoke(app, ["scenarios", "--task", "mitigation"])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) >= 13
    good = runner.invoke(app, ["check", "revoke_auth_mongodb-localization-1", "--answer", '["geo"]'])
    assert good.exit_code == 0 and '"passed": true' in good.output
    bad = runner.invoke(app, ["check", "noop_detection_social_network-1", "--answer", "Yes"])
    assert bad.exit_code == 1
    rca = '{"system_level": "Virtualization", "fault_type": "Operation Error"}'
    assert runner.invoke(app, ["check", "redeploy_without_PV-analysis-1", "--answer", rca]).exit_code == 0
    unknown = runner.invoke(app, ["inject", "no-such-problem"])
    assert unknown.exit_code == 2 and "no scenario 'no-such-problem'" in unknown.output
