"""Per-scope calibration of the embedding's threshold, and hysteresis: a scope raises nothing until it has its own
healthy windows, learns its own noise level but is never more sensitive than the artefact, raises after ``persist``
windows over its threshold and clears after ``clear`` under it, and keeps bounded memory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from stratus.embedding.model import Encoder
from stratus.embedding.runtime import CALIBRATION_KEEP, Calibration, Detector, StateEmbedding
from stratus.embedding.text import HashingEmbedder
from stratus.settings import DetectorSettings

sys.path.insert(0, str(Path(__file__).parent))
from test_embedding_runtime import Clock, FakeReader, _warm, encoder  # noqa: F401  (the fixture)

FLOOR = 2.0  # the artefact's threshold


def _calibrated(scores: list[float], *, windows: int = 8, persist: int = 3, clear: int = 2) -> Calibration:
    cal = Calibration(windows, 1.25, persist=persist, clear=clear)
    for v in scores:
        assert cal.step(v, FLOOR, healthy=True) is False
    return cal


def _steps(cal: Calibration, values: list[float], healthy: bool = True) -> list[bool]:
    return [cal.step(v, FLOOR, healthy=healthy) for v in values]


def test_an_uncalibrated_scope_raises_nothing() -> None:
    cal = Calibration(8, 1.25, persist=1)
    assert _steps(cal, [50.0] * 7 + [None]) == [False] * 8  # type: ignore[list-item]
    assert not cal.ready and len(cal.scores) == 7  # a window that is no evidence is not a calibration window
    assert _steps(cal, [0.5]) == [False]
    assert cal.ready


def test_an_unhealthy_scope_does_not_calibrate() -> None:
    cal = Calibration(4, 1.25)
    assert _steps(cal, [50.0] * 10, healthy=False) == [False] * 10
    assert not cal.scores and not cal.ready


def test_the_threshold_is_never_below_the_artefacts() -> None:
    quiet = _calibrated([0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.2, 0.1])
    assert quiet.threshold(FLOOR) == FLOOR
    assert _steps(quiet, [FLOOR * 1.01] * 3) == [False, False, True]  # the artefact's sensitivity is kept
    empty = Calibration(8, 1.25)
    assert empty.threshold(FLOOR) == FLOOR


def test_a_healthy_scope_learns_its_own_noise_level() -> None:
    rng = np.random.default_rng(3)
    noise = list(rng.uniform(1.5, 2.8, size=40))  # a noisy scope: often over the artefact's threshold
    cal = _calibrated(noise[:8])
    for v in noise[8:]:
        assert cal.step(v, FLOOR, healthy=True) is False
    threshold = cal.threshold(FLOOR)
    assert threshold > 2.8 and threshold == pytest.approx(np.quantile(cal.scores, 0.95) * 1.25)
    # a run that would have raised under the artefact's threshold does not
    assert _steps(cal, [2.7, 2.7, 2.7, 2.7, 1.6]) == [False] * 5
    assert list(cal.scores)[-5:] == [2.7, 2.7, 2.7, 2.7, 1.6]
    # a clearly higher score still raises, after ``persist`` windows
    assert _steps(cal, [10.0, 10.0, 10.0]) == [False, False, True]


def test_a_short_run_over_the_threshold_is_learnt_as_noise_once_it_ends() -> None:
    cal = _calibrated([0.5] * 8, persist=3)
    assert _steps(cal, [3.0, 3.0]) == [False, False]
    assert list(cal.scores)[-1] == 0.5 and cal.pending == [3.0, 3.0]  # not yet: it may be the start of a fault
    assert _steps(cal, [0.5]) == [False]
    assert list(cal.scores)[-3:] == [3.0, 3.0, 0.5] and not cal.pending
    assert cal.threshold(FLOOR) > 3.0  # the scope's noise level now includes such runs


def test_a_run_that_raises_is_not_learnt_as_noise() -> None:
    cal = _calibrated([0.5] * 8)
    before = list(cal.scores)
    assert _steps(cal, [9.0, 9.0, 9.0, 9.0]) == [False, False, True, True]
    assert list(cal.scores) == before and not cal.pending


def test_hysteresis_raises_after_persist_and_clears_after_clear() -> None:
    cal = _calibrated([0.5] * 8, persist=3, clear=2)
    # a broken run starts again (the scope is not healthy here, so the run is not learnt as noise either)
    assert _steps(cal, [9.0, 9.0, 0.5, 9.0, 9.0], healthy=False) == [False] * 5
    assert _steps(cal, [9.0]) == [True]
    assert _steps(cal, [0.5, 9.0, 0.5]) == [True, True, True]  # one window under does not clear
    assert _steps(cal, [0.5]) == [False]  # two in a row do
    assert _steps(cal, [9.0, 9.0]) == [False, False]


def test_hysteresis_holds_while_the_window_is_no_evidence() -> None:
    cal = _calibrated([0.5] * 8)
    assert _steps(cal, [9.0, 9.0, 9.0]) == [False, False, True]
    assert cal.step(None, FLOOR, healthy=True) is True  # an outage neither raises nor clears the scope
    assert _steps(cal, [0.5, 0.5]) == [True, False]


def test_calibration_memory_is_bounded() -> None:
    cal = _calibrated([0.5] * 8)
    _steps(cal, [0.5] * (CALIBRATION_KEEP * 2))
    assert len(cal.scores) == CALIBRATION_KEEP
    _steps(cal, [3.0, 3.0])
    assert len(cal.pending) <= cal.persist


def test_the_heads_probability_is_calibrated_on_its_odds(encoder: Encoder) -> None:  # noqa: F811
    rule = Detector(encoder)
    rule.kind, rule.thresholds = "head", {"head": 0.2}
    assert rule.floor(0.5) == pytest.approx(0.25)
    assert rule.statistic(0.0, 0.5) == pytest.approx(1.0) and rule.anomalous(0.0, 0.5)
    cal = _calibrated([rule.statistic(0.0, p) for p in [0.6, 0.7, 0.8, 0.9, 0.95, 0.9, 0.8, 0.7]])
    threshold = cal.threshold(rule.floor(0.5))
    assert rule.floor(0.5) < threshold < float("inf")  # a noisy scope can still raise: odds have no ceiling
    assert cal.step(rule.statistic(0.0, 0.9), rule.floor(0.5), healthy=True) is False


async def test_the_embedding_raises_nothing_for_a_scope_until_it_is_calibrated(encoder: Encoder) -> None:  # noqa: F811
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(
        reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock, calibration=1000
    )
    await _warm(emb, reader, clock, 14)
    reader.fault = {"delay": {"store": 0.4}}
    for _ in range(6):
        clock.now += 1.5
        a = await emb.observe("ns", healthy=True)
        assert a is not None and a.ready and not a.anomalous and a.calibrating
    cal = emb.scopes["ns"].calibration
    assert cal is not None and not cal.ready


async def test_scopes_are_bounded(encoder: Encoder) -> None:  # noqa: F811
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock, max_scopes=2)
    for name in ("a", "b", "a", "c"):
        clock.now += 1.5
        await emb.observe(name, healthy=True)
    assert list(emb.scopes) == ["a", "c"]  # the scope observed least recently went first


def test_settings_bound_the_calibration() -> None:
    s = DetectorSettings()
    assert (s.embedding_calibration, s.embedding_calibration_margin, s.embedding_persist, s.embedding_clear) == (
        8,
        1.25,
        3,
        2,
    )
    with pytest.raises(ValueError, match="calibration_margin"):
        DetectorSettings(embedding_calibration_margin=0.5)
    with pytest.raises(ValueError, match="embedding_calibration"):
        DetectorSettings(embedding_calibration=0)
    with pytest.raises(ValueError, match="embedding_clear"):
        DetectorSettings(embedding_clear=0)


def test_a_run_raises_only_once_it_outlasts_a_window() -> None:
    """Overlapping windows all see one short burst: a run raises when its last window no longer overlaps its first."""
    cal = _calibrated([0.1] * 8, persist=3)
    cal.span = 6.0
    ends = [100.0 + 1.5 * k for k in range(6)]  # windows of 6 s every 1.5 s
    assert [cal.step(9.0, FLOOR, healthy=True, at=t) for t in ends] == [False, False, False, False, True, True]
    burst = _calibrated([0.1] * 8, persist=3)
    burst.span = 6.0
    steps = [burst.step(v, FLOOR, healthy=True, at=200.0 + 1.5 * k) for k, v in enumerate([9, 9, 9, 9, 0.1, 0.1])]
    assert steps == [False] * 6  # four windows of one burst, then gone: noise, learnt as such
    assert max(burst.scores) == 9
