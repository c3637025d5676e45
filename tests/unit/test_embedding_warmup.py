"""The embedding's warm-up counted in time, not reads: a scope's baseline and then its calibration must each cover
``warmup`` window lengths of healthy telemetry, and windows read faster than the stride are not separate evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arena.bench.embedding.system import embedding_warmup_s
from stratus.embedding.baseline import Baseline
from stratus.embedding.features import TemplateLookup, featurise
from stratus.embedding.model import Encoder
from stratus.embedding.runtime import Calibration, StateEmbedding
from stratus.embedding.text import HashingEmbedder
from stratus.settings import DetectorSettings

sys.path.insert(0, str(Path(__file__).parent))
from embedding_synth import telemetry
from test_embedding_runtime import Clock, FakeReader, encoder  # noqa: F401  (the fixture)

FLOOR = 2.0


def _embedding(clock: Clock, **kwargs: object) -> StateEmbedding:
    return StateEmbedding(
        FakeReader(),
        kwargs.pop("encoder"),  # type: ignore[arg-type]
        window_s=6.0,
        stride_s=1.5,
        text=HashingEmbedder(),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_baseline_is_ready_once_its_windows_cover_its_span() -> None:
    tl, base = TemplateLookup(), Baseline(min_windows=3, min_span=24.0)
    for k in range(6):  # six overlapping windows over 13.5 s of telemetry: enough windows, too little time
        base.add(featurise(telemetry(k * 1.5, k * 1.5 + 6, seed=k), tl))
    assert base.windows == 6 and base.span == pytest.approx(13.5) and not base.ready
    base.add(featurise(telemetry(18.0, 24.0, seed=9), tl))
    assert base.ready


def test_a_calibration_is_ready_once_its_scores_cover_the_warm_up() -> None:
    cal = Calibration(4, 1.25, span=6.0, warmup=24.0)
    for k in range(10):  # ten scores, 1.5 s apart: 19.5 s of telemetry
        cal.step(0.1, FLOOR, healthy=True, at=100.0 + 1.5 * k)
    assert len(cal.scores) == 10 and cal.covered == pytest.approx(19.5) and not cal.ready
    assert cal.step(50.0, FLOOR, healthy=True, at=118.0) is False  # calibrating: raises nothing
    assert cal.ready and cal.covered == pytest.approx(24.0)
    fast = Calibration(4, 1.25, span=6.0, warmup=24.0)
    for k in range(20):  # reads faster than the stride are no new scores
        fast.step(0.1, FLOOR, healthy=True, at=100.0 + 0.75 * k, learn=k % 2 == 0)
    assert len(fast.scores) == 10


def test_restored_scores_need_no_warm_up_again() -> None:
    cal = Calibration(4, 1.25, span=6.0, warmup=24.0)
    cal.restore([0.1] * 4)
    assert cal.ready


async def test_windows_read_faster_than_the_stride_are_not_separate_evidence(encoder: Encoder) -> None:  # noqa: F811
    clock = Clock()
    emb = _embedding(clock, encoder=encoder)
    for _ in range(24):  # every 0.8 s for 19.2 s: about one window learnt per stride
        clock.now += 0.8
        await emb.observe("ns", healthy=True)
    st = emb.scopes["ns"]
    assert st.calibration is not None
    assert st.baseline.windows <= 12 and len(st.calibration.scores) <= 12 - 6  # the baseline's six first


async def test_a_scope_raises_nothing_until_its_warm_up_has_passed(encoder: Encoder) -> None:  # noqa: F811
    clock = Clock()
    emb = _embedding(clock, encoder=encoder, calibration=4, min_baseline=3, warmup=4.0)
    reader = emb.reader
    assert isinstance(reader, FakeReader)
    start = clock.now
    while True:
        clock.now += 1.5
        a = await emb.observe("ns", healthy=True)
        assert a is None or not a.anomalous
        st = emb.scopes["ns"]
        if st.baseline.ready:
            break
    assert clock.now - start >= 18.0  # 24 s of telemetry: the first window reaches back 6 s
    baseline_at = clock.now
    while not (cal := emb.scopes["ns"].calibration) or not cal.ready:
        clock.now += 1.5
        a = await emb.observe("ns", healthy=True)
        assert a is not None and not a.anomalous
    assert clock.now - baseline_at >= 18.0
    reader.fault = {"delay": {"store": 0.4}}
    states = []
    for _ in range(8):
        clock.now += 1.5
        a = await emb.observe("ns", healthy=False)
        states.append(a is not None and a.anomalous)
    assert any(states)  # once warm, a fault raises as before


def test_the_warm_up_setting_and_the_benchs_wait_agree() -> None:
    s = DetectorSettings()
    assert s.embedding_warmup_windows == 4.0
    with pytest.raises(ValueError, match="embedding_warmup_windows"):
        DetectorSettings(embedding_warmup_windows=-1)
    # a freshly started detector: its baseline and its calibration each cover 4 windows (6 s on the bench's clock)
    assert embedding_warmup_s(fresh=True) >= 2 * 3 * 6.0 + 6.0
    assert embedding_warmup_s(fresh=False) == pytest.approx(7.5)
