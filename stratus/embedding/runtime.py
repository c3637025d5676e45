"""The state embedding at run time, per scope: windows of telemetry, the healthy baseline, and the two scores.

``StateEmbedding.observe(scope, healthy)`` is called by the detector on every probe. It reads only the telemetry
that arrived since its last read (one stride), keeps the chunks that make up the current window, featurises the
window, standardises it against the scope's baseline, encodes it and scores it. When the caller says the scope is
healthy (no incident, mu = 0) *and* the window does not look anomalous, the window joins the baseline (and its
embedding the healthy set): the baseline follows slow drift but never learns a fault as normal.

``localise(scope, until)`` is for the diagnoser, which keeps no state: it reads a stretch of history ending at
``until``, takes the windows before the incident's lead time as the healthy reference, and ranks the services of the
last window by the call-graph walk over their shifts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stratus.embedding.baseline import Baseline
from stratus.embedding.features import TemplateLookup, WindowFeatures, featurise
from stratus.embedding.model import Encoded, Encoder
from stratus.embedding.scoring import (
    Ranked,
    anomaly_score,
    assign_state,
    displacement,
    healthy_spread,
    localisation_extra,
    rank_services,
    service_shift,
    sigmoid,
)
from stratus.embedding.telemetry import Telemetry, TelemetryReader
from stratus.embedding.text import TextEmbedder, default_embedder

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).with_name("models") / "state-embedding-v1.npz"
HEALTHY_KEEP = 64
MIN_HEALTHY = 3


@dataclass
class Assessment:
    scope: str
    start: float
    end: float
    score: float
    """Distance from the healthy states (1 = as far as healthy windows are from each other)."""
    probability: float | None
    """The detection head's probability of a fault (None before the baseline is ready)."""
    anomalous: bool
    ranking: list[Ranked] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ready: bool = True
    changing: list[str] = field(default_factory=list)
    """Pods created in the window: the scope was changing, so the window raises nothing."""

    def evidence(self, top: int = 3) -> str:
        shifted = ", ".join(f"{r.service} ({r.shift:.1f})" for r in self.ranking[:top])
        prob = f", p(fault) {self.probability:.2f}" if self.probability is not None else ""
        missing = f"; no {', '.join(self.missing)}" if self.missing else ""
        return f"state embedding: anomaly {self.score:.1f}{prob}; most shifted: {shifted or 'none'}{missing}"


@dataclass
class _Scope:
    chunks: deque[Telemetry]
    baseline: Baseline
    templates: TemplateLookup
    healthy: deque[np.ndarray]
    tokens: dict[str, deque[np.ndarray]]
    last_end: float | None = None
    last: Assessment | None = None
    encoded: Encoded | None = None
    streak: int = 0
    """Consecutive windows the detection rule held."""
    """The embedding of the last window assessed (joins the healthy set when the window is learnt)."""


class Detector:
    """The artefact's detection rule: the head chosen in the benchmark (one head, or one per runtime state) at its
    calibrated threshold; without heads, the distance at its threshold."""

    def __init__(self, encoder: Encoder) -> None:
        p, meta = encoder.params, encoder.meta
        self.thresholds: dict[str, float] = dict(meta.get("thresholds") or {})
        self.kind = str(meta.get("detector") or "distance")
        self.head = (p["head.w"], float(p["head.b"][0])) if "head.w" in p else None
        self.centres = p.get("states.centres")
        self.state_w, self.state_b = p.get("states.w"), p.get("states.b")
        self.loc = (p["loc.w"], float(p["loc.b"][0])) if "loc.w" in p else None

    def probability(self, joint: np.ndarray, score: float) -> float | None:
        x = np.concatenate([joint, [math.log1p(max(score, 0.0))]])
        if self.kind == "state_heads" and self.centres is not None and self.state_w is not None:
            k = assign_state(joint, self.centres)
            assert self.state_b is not None
            return float(sigmoid(np.asarray(x @ self.state_w[k] + self.state_b[k])))
        if self.head is not None:
            return float(sigmoid(np.asarray(x @ self.head[0] + self.head[1])))
        return None

    def anomalous(self, score: float, probability: float | None) -> bool:
        if probability is not None and self.kind in ("head", "state_heads"):
            return probability > self.thresholds.get(self.kind, 0.5)
        return score > self.thresholds.get("distance", 3.0)


class StateEmbedding:
    def __init__(
        self,
        reader: TelemetryReader,
        encoder: Encoder,
        *,
        window_s: float = 60.0,
        stride_s: float = 15.0,
        text: TextEmbedder | None = None,
        clock: Callable[[], float] = time.time,
        min_baseline: int = 6,
        history_windows: int = 16,
        persist: int = 3,
    ) -> None:
        self.reader, self.encoder = reader, encoder
        self.window_s, self.stride_s = window_s, stride_s
        self.text = text
        self.clock = clock
        self.min_baseline = min_baseline
        self.history_windows = history_windows
        self.persist = max(1, persist)
        self.rule = Detector(encoder)
        self.scopes: dict[str, _Scope] = {}
        self.tasks: dict[str, asyncio.Task[Assessment | None]] = {}
        """The background read of each scope (``hooks.with_embedding``)."""

    @classmethod
    def load(cls, reader: TelemetryReader, model: Path | None = None, **kwargs: float) -> StateEmbedding:
        encoder = Encoder.load(model or DEFAULT_MODEL)
        return cls(reader, encoder, text=default_embedder(), **kwargs)  # type: ignore[arg-type]

    def _scope(self, scope: str) -> _Scope:
        st = self.scopes.get(scope)
        if st is None:
            st = self.scopes[scope] = _Scope(
                chunks=deque(),
                baseline=Baseline(capacity=HEALTHY_KEEP, min_windows=self.min_baseline),
                templates=TemplateLookup(),
                healthy=deque(maxlen=HEALTHY_KEEP),
                tokens={},
            )
        return st

    async def observe(self, scope: str, healthy: bool) -> Assessment | None:
        """Read what arrived since the last call; None until a first whole window has been seen."""
        st = self._scope(scope)
        now = self.clock()
        if st.last_end is not None and now - st.last_end < self.stride_s * 0.5:
            return st.last
        start = now - self.window_s if st.last_end is None or now - st.last_end > self.window_s else st.last_end
        st.chunks.append(await self.reader.read(scope, start, now))
        st.last_end = now
        while st.chunks and st.chunks[0].end <= now - self.window_s + 1e-6:
            st.chunks.popleft()
        window = Telemetry.merge(list(st.chunks)).slice(now - self.window_s, now)
        wf = featurise(window, st.templates, window.services)
        assessment = self._assess(scope, st, wf, window.missing)
        if window.pods_created:
            # Pods were created in this window (a rollout, a scale-up, a replaced pod): a changing scope is neither
            # evidence of a telemetry fault (a broken change shows in pod states) nor a healthy state to learn.
            assessment.anomalous = False
            assessment.changing = sorted({name for _, name in window.pods_created})[:5]
            st.encoded = None
        elif healthy and not assessment.anomalous:
            self._learn(st, wf)
        # a fault persists, noise does not: the rule must hold for ``persist`` windows in a row
        st.streak = st.streak + 1 if assessment.anomalous else 0
        assessment.anomalous = st.streak >= self.persist
        st.last = assessment
        return assessment

    def _assess(self, scope: str, st: _Scope, wf: WindowFeatures, missing: list[str]) -> Assessment:
        std = st.baseline.standardise(wf, self.text)
        enc = self.encoder.encode(std)
        st.encoded = enc
        if not any(wf.present.values()):  # no telemetry at all is no evidence of a fault, nor of health
            st.encoded = None
            return Assessment(scope, wf.start, wf.end, 0.0, None, False, missing=missing, ready=False)
        if not st.baseline.ready or len(st.healthy) < MIN_HEALTHY:
            return Assessment(scope, wf.start, wf.end, 0.0, None, False, missing=missing, ready=False)
        healthy = np.stack(list(st.healthy)) if st.healthy else np.zeros((0, enc.joint.shape[0]))
        score = anomaly_score(enc.joint, healthy, healthy_spread(healthy) if len(st.healthy) else None)
        prob = self.rule.probability(enc.joint, score)
        healthy_tokens = [_stack(st.tokens.get(s)) for s in enc.services]
        shift = service_shift(enc.service, healthy_tokens)
        extra = localisation_extra(displacement(enc.service, healthy_tokens), std.raw_z)
        ranking = rank_services(enc.services, shift, std.edges, self.rule.loc, extra)
        return Assessment(scope, wf.start, wf.end, score, prob, self.rule.anomalous(score, prob), ranking, missing)

    def _learn(self, st: _Scope, wf: WindowFeatures) -> None:
        enc, st.encoded = st.encoded, None
        st.baseline.add(wf)
        if enc is None:
            return
        st.healthy.append(enc.joint)
        for i, s in enumerate(enc.services):
            st.tokens.setdefault(s, deque(maxlen=HEALTHY_KEEP)).append(enc.service[i])

    def last(self, scope: str) -> Assessment | None:
        st = self.scopes.get(scope)
        return st.last if st else None

    async def localise(self, scope: str, until: float | None = None, lead_s: float | None = None) -> list[Ranked]:
        """Rank the services of the window ending at ``until``; the reference is the history before it, less
        ``lead_s`` (the time a fault may have been present before the incident opened; default two windows)."""
        end = until if until is not None else self.clock()
        lead = lead_s if lead_s is not None else 2 * self.window_s
        begin = end - lead - self.window_s - self.history_windows * self.stride_s
        telemetry = await self.reader.read(scope, begin, end)
        templates = TemplateLookup()
        baseline = Baseline(capacity=HEALTHY_KEEP, min_windows=1)
        tokens: dict[str, list[np.ndarray]] = {}
        t = begin + self.window_s
        while t <= end - lead + 1e-6:
            wf = featurise(telemetry.slice(t - self.window_s, t), templates, telemetry.services)
            enc = self.encoder.encode(baseline.standardise(wf, self.text))
            baseline.add(wf)
            for i, s in enumerate(enc.services):
                tokens.setdefault(s, []).append(enc.service[i])
            t += self.stride_s
        wf = featurise(telemetry.slice(end - self.window_s, end), templates, telemetry.services)
        std = baseline.standardise(wf, self.text)
        enc = self.encoder.encode(std)
        healthy = [np.stack(tokens[s]) if s in tokens else None for s in enc.services]
        shift = service_shift(enc.service, healthy)
        extra = localisation_extra(displacement(enc.service, healthy), std.raw_z)
        return rank_services(enc.services, shift, std.edges, self.rule.loc, extra)


def _stack(rows: deque[np.ndarray] | None) -> np.ndarray | None:
    return np.stack(list(rows)) if rows else None
