"""``stratus bench --noise`` end to end, with the six services as processes: benign changes during a run without a
fault open no incident; during a fault, the incident opens and the diagnosis blames the fault, not the noise. The last
healthy snapshot is taken quickly (``STRATUS_LASTGOOD_SETTLE_S``) and two changes come before the fault, so the
change analysis sees noise and fault side by side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arena.bench.record import BenchRecord

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOOP, FAULT = "noop_detection_hotel_reservation-1", "misconfig_app_hotel_res-detection-1"


def test_noise_opens_no_incident_and_is_not_blamed(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [
        str(Path(sys.executable).parent / "stratus"),
        "bench",
        "--suite",
        "detection",
        "--noise",
        "--noise-options",
        "seed=2,count=3,gap=2,start=3,before=2",
        "--set",
        "STRATUS_LASTGOOD_SETTLE_S=0.5",
        "--only",
        NOOP,
        "--only",
        FAULT,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = BenchRecord.model_validate_json((out / "bench.json").read_text())
    assert record.noise is not None and record.noise["seed"] == 2
    runs = {r.scenario: r for r in record.runs}
    assert set(runs) == {NOOP, FAULT}
    for r in runs.values():
        assert r.error is None, r.error
        made = [e for e in r.noise if e.ok]
        assert made, f"{r.scenario}: no noise change was made"
        assert all(e.settled_s is not None for e in made), [e.model_dump() for e in r.noise]
        assert [e.at for e in r.noise] == sorted(e.at for e in r.noise)
        assert all(e.at >= record.started for e in r.noise)
    noop, fault = runs[NOOP], runs[FAULT]
    assert noop.false_positive is False and not noop.detected, "an incident opened on noise alone"
    assert fault.detected and fault.success
    assert fault.wrong_attribution is None, fault.blamed
    assert fault.blamed is not None and "geo" in fault.blamed, fault.blamed
    report = (out / "report.md").read_text()
    assert "## Noise (benign changes during each run)" in report
    assert "false positives 0/1 runs without a fault; wrong attributions 0/1 detected faults" in report
