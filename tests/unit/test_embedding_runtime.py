"""The embedding at run time: per-scope windows from incremental reads, a baseline learnt only from healthy
windows, an anomaly that enters mu's SLO term, a ranking that fills the diagnosis, and failures that change nothing."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from arena.bench.embedding.train import Config, train
from stratus.contracts import DiagnosisReady, Severity
from stratus.embedding.baseline import Baseline
from stratus.embedding.features import TemplateLookup, featurise
from stratus.embedding.hooks import from_settings, refine_diagnosis, with_embedding
from stratus.embedding.model import ArtefactError, Encoder
from stratus.embedding.runtime import StateEmbedding
from stratus.embedding.telemetry import Telemetry, TelemetryReader
from stratus.embedding.text import HashingEmbedder
from stratus.settings import DetectorSettings

sys.path.insert(0, str(Path(__file__).parent))
from embedding_synth import telemetry


class FakeReader(TelemetryReader):
    """Serves the synthetic system; ``fault`` switches a fault on; ``broken`` makes every read fail."""

    def __init__(self) -> None:
        super().__init__()
        self.fault: dict[str, object] = {}
        self.broken = False
        self.reads: list[tuple[float, float]] = []

    async def read(self, scope: str, start: float, end: float) -> Telemetry:
        if self.broken:
            raise ConnectionError("telemetry down")
        self.reads.append((start, end))
        return telemetry(start, end, seed=int(start * 10), **self.fault)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    tl, base, ws = TemplateLookup(), Baseline(min_windows=3), []
    for k in range(14):
        kwargs = {"delay": {"store": 0.3}} if k >= 9 else {}
        wf = featurise(telemetry(k * 1.5, k * 1.5 + 6, seed=k, **kwargs), tl)  # type: ignore[arg-type]
        ws.append(base.standardise(wf, HashingEmbedder()))
        if not kwargs:
            base.add(wf)
    enc = train(ws, [0] * len(ws), Config(epochs=3, batch=7, seed=5))
    enc.meta["thresholds"] = {"distance": 3.0}
    enc.meta["detector"] = "distance"
    return enc


async def _warm(emb: StateEmbedding, reader: FakeReader, clock: Clock, n: int) -> None:
    for _ in range(n):
        clock.now += 1.5
        a = await emb.observe("ns", healthy=True)
        assert a is None or not a.anomalous


async def test_healthy_then_a_fault_is_anomalous_and_localised(encoder: Encoder) -> None:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock)
    await _warm(emb, reader, clock, 14)
    assert emb.scopes["ns"].baseline.ready
    assert all(e - s <= 6.0 + 1e-9 for s, e in reader.reads[1:])  # incremental reads after the first window
    reader.fault = {"delay": {"store": 0.4}}
    for _ in range(6):  # a run over the threshold raises once it outlasts a window (6 s)
        clock.now += 1.5
        a = await emb.observe("ns", healthy=False)
    assert a is not None and a.anomalous and a.ready
    assert a.ranking[0].service == "store"
    assert "store" in a.evidence()
    learnt = emb.scopes["ns"].baseline.windows
    clock.now += 1.5
    await emb.observe("ns", healthy=True)  # anomalous: never learnt as normal, even when the caller says healthy
    assert emb.scopes["ns"].baseline.windows == learnt


async def test_mu_gains_one_slo_term_while_anomalous_and_nothing_when_broken(encoder: Encoder) -> None:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock)
    await _warm(emb, reader, clock, 14)
    reader.fault = {"failing": "store"}
    base = Severity(mu=0.0)
    for _ in range(6):  # the probe never waits: each call starts the next read and uses the last finished one
        clock.now += 1.5
        sev = await with_embedding(emb, "ns", base, weight=1.0, w_violations=2.0)
        await emb.tasks["ns"]
    sev = await with_embedding(emb, "ns", base, weight=1.0, w_violations=2.0)
    assert sev.mu == 2.0 and sev.violations and sev.violations[0].startswith("state embedding:")
    crashed = Severity(mu=float("inf"), crashed=True)
    assert await with_embedding(emb, "ns", crashed, weight=1.0, w_violations=1.0) == crashed
    reader.broken = True
    emb.scopes["ns"].last = None
    for _ in range(2):
        clock.now += 1.5
        assert await with_embedding(emb, "ns", Severity(mu=1.0), weight=1.0, w_violations=1.0) == Severity(mu=1.0)
        with contextlib.suppress(ConnectionError):
            await emb.tasks["ns"]


async def test_localisation_fills_an_empty_diagnosis_and_keeps_the_reasoners_first(encoder: Encoder) -> None:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock)
    reader.fault = {"delay": {"store": 0.4}}

    class Shifted(FakeReader):
        async def read(self, scope: str, start: float, end: float) -> Telemetry:
            healthy = telemetry(start, end - 8.0, seed=1)
            faulty = telemetry(end - 8.0, end, seed=2, delay={"store": 0.4})
            return Telemetry.merge([healthy, faulty])

    emb.reader = Shifted()
    empty = DiagnosisReady(id="d", incident_id="i")
    filled = await refine_diagnosis(emb, "ns", empty)
    assert filled.localisation[0] == "store" and filled.evidence
    kept = await refine_diagnosis(emb, "ns", empty.model_copy(update={"localisation": ["api"]}))
    assert kept.localisation[0] == "api" and "store" in kept.localisation
    emb.reader = FakeReader()
    emb.reader.broken = True  # type: ignore[attr-defined]
    assert await refine_diagnosis(emb, "ns", empty) == empty


def test_settings_refuse_a_bad_preset_or_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PRESET"):
        from_settings(DetectorSettings(embedding_metric_preset="nope"), None)
    bad = tmp_path / "x.npz"
    bad.write_text("no")
    with pytest.raises(ArtefactError):
        from_settings(DetectorSettings(embedding_model=str(bad)), None)


async def test_a_telemetry_outage_is_no_evidence_of_a_fault(encoder: Encoder) -> None:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock)
    await _warm(emb, reader, clock, 12)

    class Silent(FakeReader):
        async def read(self, scope: str, start: float, end: float) -> Telemetry:
            return Telemetry(start, end, missing=["metrics", "traces", "logs"])

    emb.reader = Silent()
    for _ in range(3):
        clock.now += 1.5
        a = await emb.observe("ns", healthy=False)
        assert a is not None and not a.anomalous and not a.ready


async def test_a_changing_scope_raises_nothing_and_teaches_nothing(encoder: Encoder) -> None:
    reader, clock = FakeReader(), Clock()
    emb = StateEmbedding(reader, encoder, window_s=6.0, stride_s=1.5, text=HashingEmbedder(), clock=clock)
    await _warm(emb, reader, clock, 14)

    class RollingOut(FakeReader):
        async def read(self, scope: str, start: float, end: float) -> Telemetry:
            t = telemetry(start, end, seed=int(start * 10), delay={"store": 0.4})
            t.pods_created = [(end - 0.5, "store-7d9f8c6b5-abcde")]  # a rollout replacing store's pod
            return t

    emb.reader = RollingOut()
    learnt = emb.scopes["ns"].baseline.windows
    for _ in range(4):
        clock.now += 1.5
        a = await emb.observe("ns", healthy=True)
        assert a is not None and not a.anomalous and a.changing == ["store-7d9f8c6b5-abcde"]
    assert emb.scopes["ns"].baseline.windows == learnt
