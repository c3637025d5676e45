"""The healthy baseline of a scope, and windows standardised against it (the model's inputs).

Why a baseline of *past healthy windows* rather than statistics learnt once in training: every system (and every
service) has its own normal, which also drifts. Each raw feature is compared, per service, with the same feature in
the last ``capacity`` windows the scope was healthy: a robust z-score ``(x - median) / scale``, with
``scale = max(1.4826 * MAD, rel * |median|, floor)`` so that a feature that never moved (MAD = 0) does not turn
noise into a huge score. z is clipped and compressed (``sign(z) * log1p(|z|)``) for the encoders. NaN (no data on
either side) is 0: no evidence either way.

Log text: each service's templates are weighted by how much more often they occur than in the baseline; the
count-weighted mean of those templates' sentence embeddings is the service's log-text vector (zero when nothing is
unusual). Templates never seen in the baseline are counted separately ("new templates").
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from stratus.embedding.features import (
    LOG_FEATURES,
    METRIC_FEATURES,
    METRIC_SIGNALS,
    TRACE_FEATURES,
    Edge,
    WindowFeatures,
)
from stratus.embedding.text import DIM, TextEmbedder

Z_CLIP = 50.0
MODALITIES = ("metrics", "traces", "logs")


def _floors() -> dict[str, np.ndarray]:
    m = []
    for sig in METRIC_SIGNALS:
        floor = {
            "requests": 0.5,
            "errors": 0.2,
            "latency_mean": 0.3,
            "latency_p95": 0.3,
            "restarts": 0.5,
            "not_ready": 0.5,
            "waiting": 0.5,
            "unavailable": 0.5,
            "cpu": 0.05,
            "cpu_throttled": 0.05,
            "memory": 5e6,
        }[sig]
        m += [floor, floor]
    m.append(0.03)  # error ratio
    t = [0.5, 0.03, 0.3, 0.3, 0.3, 0.3, 0.3, 0.03, 0.03, 0.2, 0.3]
    lo = [0.5, 0.5, 1.0]
    assert len(m) == len(METRIC_FEATURES) and len(t) == len(TRACE_FEATURES) and len(lo) == len(LOG_FEATURES)
    return {"metrics": np.asarray(m), "traces": np.asarray(t), "logs": np.asarray(lo)}


FLOORS = _floors()
REL = 0.1
LOG_EXTRA = 1  # new templates
TEXT_OFFSET = len(LOG_FEATURES) + LOG_EXTRA


@dataclass
class Standardised:
    """A window ready for the encoders: per service, per modality, the compressed robust z-scores."""

    start: float
    end: float
    services: list[str]
    x: dict[str, np.ndarray]
    """metrics (S, 23), traces (S, 11), logs (S, 4 + 384): z features then the log-text vector."""
    present: dict[str, bool]
    edges: list[Edge] = field(default_factory=list)
    raw_z: dict[str, np.ndarray] = field(default_factory=dict)
    """The clipped z before compression (metrics, traces, logs counts) for baselines and explanations."""


class Baseline:
    """Per service, the raw features of the last ``capacity`` healthy windows. It is ready once it holds
    ``min_windows`` windows that also cover ``min_span`` seconds (from the first window's start to the last one's end):
    a few overlapping windows read in quick succession are one stretch of telemetry, and their median and MAD would
    call any later change of load a large shift."""

    def __init__(self, capacity: int = 64, min_windows: int = 6, min_span: float = 0.0) -> None:
        self.capacity, self.min_windows, self.min_span = capacity, min_windows, min_span
        self.rows: dict[str, dict[str, deque[np.ndarray]]] = {}
        self.templates: dict[str, deque[Counter[str]]] = {}
        self.windows = 0
        self.first: float | None = None
        """The start of the first window learnt."""
        self.latest: float | None = None
        """The end of the last window learnt."""
        self._stats: dict[tuple[str, str], tuple[int, np.ndarray, np.ndarray]] = {}

    @property
    def span(self) -> float:
        """Seconds of telemetry the learnt windows cover."""
        return 0.0 if self.first is None or self.latest is None else self.latest - self.first

    @property
    def ready(self) -> bool:
        return self.windows >= self.min_windows and self.span >= self.min_span

    @property
    def services(self) -> list[str]:
        return sorted(self.rows)

    def add(self, wf: WindowFeatures) -> None:
        """Count ``wf`` as healthy."""
        self.windows += 1
        self.first = wf.start if self.first is None else min(self.first, wf.start)
        self.latest = wf.end if self.latest is None else max(self.latest, wf.end)
        for i, svc in enumerate(wf.services):
            per = self.rows.get(svc)
            if per is None:
                if len(self.rows) >= 500:
                    continue
                per = self.rows[svc] = {m: deque(maxlen=self.capacity) for m in MODALITIES}
                self.templates[svc] = deque(maxlen=self.capacity)
            for m in MODALITIES:
                if wf.present.get(m, True):
                    per[m].append(getattr(wf, m)[i].copy())
            self.templates[svc].append(wf.templates[i])

    def stats(self, svc: str, modality: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Median and MAD per feature (NaN where the baseline has no value), cached until the next ``add``."""
        key = (svc, modality)
        hit = self._stats.get(key)
        if hit is not None and hit[0] == self.windows:
            return hit[1], hit[2]
        rows = self.rows.get(svc, {}).get(modality)
        if not rows:
            return np.full(width, np.nan), np.full(width, np.nan)
        arr = np.vstack(list(rows))
        med = nanmedian(arr)
        mad = nanmedian(np.abs(arr - med))
        self._stats[key] = (self.windows, med, mad)
        return med, mad

    def zscores(self, wf: WindowFeatures, modality: str) -> np.ndarray:
        x: np.ndarray = getattr(wf, modality)
        floor = FLOORS[modality]
        out: np.ndarray = np.zeros_like(x)
        for i, svc in enumerate(wf.services):
            med, mad = self.stats(svc, modality, x.shape[1])
            scale = np.maximum(np.maximum(1.4826 * np.nan_to_num(mad), REL * np.abs(np.nan_to_num(med))), floor)
            z = (x[i] - med) / scale
            out[i] = np.clip(np.nan_to_num(z, nan=0.0, posinf=Z_CLIP, neginf=-Z_CLIP), -Z_CLIP, Z_CLIP)
        return out

    def template_weights(self, svc: str, window: Counter[str]) -> tuple[dict[str, float], int]:
        """Per template of the window: lines above the baseline's median count; and how many are new."""
        history = self.templates.get(svc) or deque()
        seen: set[str] = set()
        for c in history:
            seen.update(c)
        weights: dict[str, float] = {}
        new = 0
        for t, n in window.items():
            if t not in seen:
                new += 1
                weights[t] = float(n)
                continue
            typical = float(np.median([c.get(t, 0) for c in history])) if history else 0.0
            if n > typical:
                weights[t] = n - typical
        return weights, new

    def standardise(self, wf: WindowFeatures, text: TextEmbedder | None) -> Standardised:
        raw = {m: self.zscores(wf, m) for m in MODALITIES}
        logs = np.zeros((len(wf.services), TEXT_OFFSET + DIM), dtype=np.float64)
        logs[:, : len(LOG_FEATURES)] = raw["logs"]
        templates: list[str] = []
        owners: list[tuple[int, float]] = []
        for i, svc in enumerate(wf.services):
            weights, new = self.template_weights(svc, wf.templates[i])
            logs[i, len(LOG_FEATURES)] = math.log1p(new)
            for t, w in weights.items():
                templates.append(t)
                owners.append((i, w))
        if text is not None and templates:
            vecs = text.embed(templates)
            acc = np.zeros((len(wf.services), DIM))
            tot = np.zeros(len(wf.services))
            for (i, w), v in zip(owners, vecs, strict=True):
                acc[i] += w * v
                tot[i] += w
            nz = tot > 0
            acc[nz] /= tot[nz, None]
            norms = np.linalg.norm(acc, axis=1, keepdims=True)
            logs[:, TEXT_OFFSET:] = np.where(norms > 0, acc / np.maximum(norms, 1e-12), 0.0)
        x = {
            "metrics": compress(raw["metrics"]),
            "traces": compress(raw["traces"]),
            "logs": np.concatenate([compress(logs[:, :TEXT_OFFSET]), logs[:, TEXT_OFFSET:]], axis=1),
        }
        for m in MODALITIES:
            if not wf.present.get(m, True):
                x[m] = np.zeros_like(x[m])
        return Standardised(wf.start, wf.end, list(wf.services), x, dict(wf.present), list(wf.edges), raw)


def nanmedian(arr: np.ndarray) -> np.ndarray:
    """Column medians ignoring NaN (NaN for an all-NaN column); numpy's nanmedian is slow on small arrays."""
    s = np.sort(arr, axis=0)  # NaN sorts last
    count = np.sum(~np.isnan(arr), axis=0)
    cols = np.arange(arr.shape[1])
    lo, hi = np.maximum((count - 1) // 2, 0), np.maximum(count // 2, 0)
    med: np.ndarray = np.where(count > 0, (s[lo, cols] + s[hi, cols]) / 2.0, np.nan)
    return med


def compress(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sign(z) * np.log1p(np.abs(z))
    return out
