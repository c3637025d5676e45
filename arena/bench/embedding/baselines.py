"""The baselines the embedding is measured against, on the very same windows and healthy references.

Each method gives, per window, a detection score (higher = more anomalous) and a per-service score (ranking).

- ``robust_z``: the largest robust z-score of any feature of any service (the window's own standardisation).
- ``baro``: BARO's RobustScorer (RCAEval): each metric series is scaled with the median and inter-quartile range of
  its points in the healthy reference period; a series' score is its largest scaled value in the window; a service
  scores its best series. BARO's Bayesian change-point step finds *when* the anomaly starts; on a stream of windows
  with a known healthy reference that is the window itself, so it is not reproduced.
- ``iforest``: scikit-learn's IsolationForest, fitted on the per-service z vectors of the training runs' healthy
  windows; a window scores its most isolated service.
- ``text``: each service's window serialised as a line of text and embedded with the same MiniLM as the log text;
  a service scores its distance to its own embeddings in the healthy reference windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arena.bench.embedding.windows import Run, Window
from stratus.embedding.baseline import MODALITIES
from stratus.embedding.features import LOG_FEATURES, METRIC_FEATURES, TRACE_FEATURES
from stratus.embedding.text import TextEmbedder


def _zrows(w: Window) -> np.ndarray:
    return np.concatenate([w.std.raw_z[m] for m in MODALITIES], axis=1)


def robust_z(w: Window) -> tuple[float, np.ndarray]:
    per = np.abs(_zrows(w)).max(axis=1) if w.std.services else np.zeros(0)
    return float(per.max()) if per.size else 0.0, per


def baro(w: Window, run: Run) -> tuple[float, np.ndarray]:
    ref0, ref1 = w.reference
    idx = {s: i for i, s in enumerate(w.std.services)}
    per = np.zeros(len(w.std.services))
    aliases = run.telemetry.aliases
    for rec in run.telemetry.series:
        i = idx.get(aliases.get(rec.service, rec.service))
        if i is None:
            continue
        ref = np.asarray([v for t, v in rec.points if ref0 <= t < ref1])
        cur = np.asarray([v for t, v in rec.points if w.std.start <= t < w.std.end])
        if ref.size < 3 or cur.size == 0:
            continue
        med = float(np.median(ref))
        iqr = float(np.quantile(ref, 0.75) - np.quantile(ref, 0.25))
        scale = iqr if iqr > 0 else 1.0
        per[i] = max(per[i], float(np.max((cur - med) / scale)))
    return (float(per.max()) if per.size else 0.0), per


class IForest:
    def __init__(self, seed: int) -> None:
        from sklearn.ensemble import IsolationForest

        self.model = IsolationForest(n_estimators=150, random_state=seed)

    def fit(self, windows: Sequence[Window], rng: np.random.Generator) -> IForest:
        rows = np.concatenate([_zrows(w) for w in windows], axis=0)
        if rows.shape[0] > 30_000:
            rows = rows[rng.choice(rows.shape[0], 30_000, replace=False)]
        self.model.fit(rows)
        return self

    def score(self, w: Window) -> tuple[float, np.ndarray]:
        if not w.std.services:
            return 0.0, np.zeros(0)
        per = -self.model.score_samples(_zrows(w))
        return float(per.max()), per


SERIALISED = {
    "metrics": (
        "requests_mean",
        "errors_mean",
        "latency_p95_max",
        "restarts_max",
        "not_ready_max",
        "cpu_throttled_max",
    ),
    "traces": ("rate", "error_ratio", "p95", "hop_p95", "unanswered_rate"),
    "logs": ("lines", "error_lines"),
}


def serialise(w: Window, i: int) -> str:
    """One line per service: its main signals' values (the plain-text view of the window)."""
    raw = w.raw
    parts = [raw.services[i] + ":"]
    for modality, names, arr in (
        ("metrics", METRIC_FEATURES, raw.metrics),
        ("traces", TRACE_FEATURES, raw.traces),
        ("logs", LOG_FEATURES, raw.logs),
    ):
        for name in SERIALISED[modality]:
            v = arr[i, names.index(name)]
            if np.isfinite(v) and abs(v) > 1e-9:
                parts.append(f"{name} {v:.1f}")
    top = [t for t, _ in raw.templates[i].most_common(2)]
    if top:
        parts.append("logs: " + " | ".join(top))
    return " ".join(parts)


class TextBaseline:
    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def vectors(self, w: Window) -> np.ndarray:
        texts = [serialise(w, i) for i in range(len(w.std.services))]
        todo = [t for t in texts if t not in self.cache]
        if todo:
            for t, v in zip(todo, self.embedder.embed(todo), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384))

    def score(self, w: Window, history: Sequence[Window]) -> tuple[float, np.ndarray]:
        """``history``: the healthy windows of the run before ``w`` (the same reference as the others)."""
        cur = self.vectors(w)
        per = np.zeros(len(w.std.services))
        refs: dict[str, list[np.ndarray]] = {}
        for h in history[-8:]:
            for s, v in zip(h.std.services, self.vectors(h), strict=True):
                refs.setdefault(s, []).append(v)
        for i, s in enumerate(w.std.services):
            r = refs.get(s)
            if r:
                per[i] = float(np.min(np.linalg.norm(np.stack(r) - cur[i], axis=1)))
        return (float(per.max()) if per.size else 0.0), per
