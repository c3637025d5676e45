"""The embedding's calibrations across a restart (a file, read back whole or refused) and the hysteresis's lower
threshold for clearing a raised scope."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stratus.embedding.hooks import from_settings
from stratus.embedding.model import Encoder
from stratus.embedding.runtime import (
    CALIBRATION_KEEP,
    MAX_STATE_BYTES,
    Calibration,
    CalibrationStateError,
    StateEmbedding,
    parse_calibrations,
)
from stratus.embedding.text import HashingEmbedder
from stratus.settings import DetectorSettings

sys.path.insert(0, str(Path(__file__).parent))
from test_embedding_runtime import Clock, FakeReader, encoder  # noqa: F401  (the fixture)

FLOOR = 2.0


def _embedding(enc: Encoder, state_file: Path | None, **kwargs: float) -> tuple[StateEmbedding, FakeReader, Clock]:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(
        reader, enc, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock, state_file=state_file, **kwargs
    )
    return emb, reader, clock


def test_a_raised_scope_clears_only_under_the_lower_threshold() -> None:
    cal = Calibration(8, 1.25, persist=2, clear=2, release=0.5)
    for _ in range(8):
        cal.step(0.5, FLOOR, healthy=True)
    assert [cal.step(v, FLOOR, healthy=False) for v in (9.0, 9.0)] == [False, True]
    # under the threshold (2.0) but over half of it: still anomalous, however long
    assert [cal.step(1.5, FLOOR, healthy=True) for _ in range(5)] == [True] * 5
    assert [cal.step(0.9, FLOOR, healthy=True) for _ in range(2)] == [True, False]
    assert cal.step(9.0, FLOOR, healthy=True) is False  # raising again takes ``persist`` windows


async def test_calibrations_survive_a_restart(encoder: Encoder, tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "calibration.json"
    emb, _reader, clock = _embedding(encoder, state, calibration=4)
    for _ in range(16):
        clock.now += 1.5
        await emb.observe("ns", healthy=True)
    cal = emb.scopes["ns"].calibration
    assert cal is not None and cal.ready
    emb.save_calibrations()
    again, _, _ = _embedding(encoder, state, calibration=4)
    assert again.load_calibrations() == 1
    restored = again._scope("ns").calibration
    assert restored is not None and restored.ready
    assert list(restored.scores) == pytest.approx(list(cal.scores), abs=1e-6)
    assert restored.threshold(FLOOR) == pytest.approx(cal.threshold(FLOOR), rel=1e-5)


async def test_observing_saves_the_calibrations(encoder: Encoder, tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "calibration.json"
    emb, _reader, clock = _embedding(encoder, state, calibration=2)
    for _ in range(12):
        clock.now += 1.5
        await emb.observe("ns", healthy=True)
    assert state.exists() and not (tmp_path / "calibration.json.tmp").exists()
    assert "ns" in parse_calibrations(state)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"version": 99, "scopes": {}}), "version 1"),
        (json.dumps({"version": 1, "scopes": {"ns": "0.5"}}), "list of at most"),
        (json.dumps({"version": 1, "scopes": {"ns": [0.5] * (CALIBRATION_KEEP + 1)}}), "list of at most"),
        (json.dumps({"version": 1, "scopes": {"ns": [0.5, -1.0]}}), "finite non-negative"),
        ('{"version": 1, "scopes": {"ns": [0.5, NaN]}}', "finite non-negative"),
        (json.dumps({"version": 1, "scopes": {"ns": [0.5, True]}}), "finite non-negative"),
        (json.dumps({"version": 1, "scopes": {f"s{i}": [0.5] for i in range(3)}}), "3 scopes, more than 2"),
    ],
)
def test_a_corrupt_calibration_file_is_refused(tmp_path: Path, body: str, why: str) -> None:
    state = tmp_path / "calibration.json"
    state.write_text(body)
    with pytest.raises(CalibrationStateError, match=why) as refused:
        parse_calibrations(state, max_scopes=2)
    assert "delete it" in str(refused.value)


def test_an_oversized_calibration_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    state = tmp_path / "calibration.json"
    state.write_bytes(b" " * (MAX_STATE_BYTES + 1))
    with pytest.raises(CalibrationStateError, match="more than"):
        parse_calibrations(state)


def test_the_detector_starts_calibrating_afresh_on_a_refused_file(tmp_path: Path) -> None:
    state = tmp_path / "calibration.json"
    state.write_text("[]")
    settings = DetectorSettings(embedding_state_file=state)
    emb = from_settings(settings, None)
    assert emb.state_file == state and emb.restored == {}
    missing = from_settings(DetectorSettings(embedding_state_file=tmp_path / "none.json"), None)
    assert missing.restored == {}
