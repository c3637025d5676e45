"""What the product does with embeddings: an anomaly score, per-service shifts, and a localisation ranking.

- **Anomaly** (distance from healthy states): the distance of a window's joint embedding to the nearest of the
  scope's recent healthy embeddings, divided by the typical distance between healthy embeddings (so 1 is "as far as
  healthy windows are from each other"). The optional detection head (``logistic(w . z + b)``, one per runtime state
  when the state partition helped in the benchmark) turns an embedding into a probability of a fault.
- **Shift** of a service: how far its joint token moved from its healthy tokens, in the same relative units.
- **Localisation**: a random walk on the call graph (PageRank with restarts), where the walker goes from a caller
  to its callees in proportion to how shifted they are, stays on a shifted node, and rarely walks back up. Failures
  propagate upwards (a broken callee makes its callers fail too), so the walk settles on the deepest shifted
  services: the place where the failure starts, not every service that shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stratus.embedding.features import Edge

EPS = 1e-6


def nearest_distance(z: np.ndarray, healthy: np.ndarray) -> float:
    if healthy.size == 0:
        return float("nan")
    d = np.linalg.norm(healthy - z[None, :], axis=1)
    return float(d.min())


def healthy_spread(healthy: np.ndarray) -> float:
    """Median nearest-neighbour distance among healthy embeddings (the unit of the anomaly score)."""
    n = healthy.shape[0]
    if n < 3:
        return 0.05
    d = np.linalg.norm(healthy[:, None, :] - healthy[None, :, :], axis=2)
    d[np.arange(n), np.arange(n)] = np.inf
    return float(max(np.median(d.min(axis=1)), 0.02))


def anomaly_score(z: np.ndarray, healthy: np.ndarray, spread: float | None = None) -> float:
    if healthy.size == 0:
        return 0.0
    unit = spread if spread is not None else healthy_spread(healthy)
    return nearest_distance(z, healthy) / max(unit, EPS)


def service_shift(tokens: np.ndarray, healthy: Sequence[np.ndarray | None]) -> np.ndarray:
    """Per service: distance of its token to the median of its healthy tokens, over their median spread."""
    out = np.zeros(tokens.shape[0])
    for i, h in enumerate(healthy):
        if h is None or h.shape[0] == 0:
            out[i] = float(np.linalg.norm(tokens[i])) / 10.0
            continue
        centre = np.median(h, axis=0)
        spread = float(np.median(np.linalg.norm(h - centre, axis=1))) if h.shape[0] > 1 else 0.0
        out[i] = float(np.linalg.norm(tokens[i] - centre)) / max(spread, 0.05)
    return out


def walk_rank(
    services: Sequence[str],
    shift: np.ndarray,
    edges: Sequence[Edge],
    *,
    damping: float = 0.85,
    backward: float = 0.1,
    stay: float = 0.5,
    iterations: int = 60,
) -> np.ndarray:
    """The walk's visiting frequency per service (sums to 1)."""
    n = len(services)
    if n == 0:
        return np.zeros(0)
    idx = {s: i for i, s in enumerate(services)}
    w = np.maximum(shift, 0.0) + EPS
    trans = np.zeros((n, n))
    for e in edges:
        a, b = idx.get(e.caller), idx.get(e.callee)
        if a is None or b is None or a == b:
            continue
        trans[a, b] = max(trans[a, b], w[b])
        trans[b, a] = max(trans[b, a], backward * w[a])
    trans[np.arange(n), np.arange(n)] += stay * w
    rows = trans.sum(axis=1, keepdims=True)
    trans = np.where(rows > 0, trans / np.maximum(rows, EPS), 1.0 / n)
    restart = w / w.sum()
    pi = restart.copy()
    for _ in range(iterations):
        pi = (1 - damping) * restart + damping * (pi @ trans)
    total = float(pi.sum())
    out: np.ndarray = pi / total if total > 0 else pi
    return out


@dataclass
class Ranked:
    service: str
    score: float
    shift: float


def rank_services(
    services: Sequence[str],
    shift: np.ndarray,
    edges: Sequence[Edge],
    head: tuple[np.ndarray, float] | None = None,
    extra: np.ndarray | None = None,
) -> list[Ranked]:
    """Services most likely first: the walk's score, or the localisation head's when one is given."""
    pr = walk_rank(services, shift, edges)
    score = pr * np.maximum(shift, EPS) ** 0.5
    if head is not None and extra is not None:
        feats = localisation_features(shift, pr, extra)
        if feats.shape[1] == head[0].shape[0]:  # a head of another model version is ignored, not misapplied
            score = sigmoid(feats @ head[0] + head[1])
    order = np.argsort(-score, kind="stable")
    return [Ranked(services[i], float(score[i]), float(shift[i])) for i in order]


def displacement(tokens: np.ndarray, healthy: Sequence[np.ndarray | None]) -> np.ndarray:
    """Per service: its joint token minus the median of its healthy tokens (zero without history)."""
    out = np.zeros_like(tokens)
    for i, h in enumerate(healthy):
        if h is not None and h.shape[0]:
            out[i] = tokens[i] - np.median(h, axis=0)
    return out


def localisation_extra(disp: np.ndarray, raw_z: dict[str, np.ndarray]) -> np.ndarray:
    """The localisation head's per-service inputs beyond the walk: the token displacement, the largest robust z of
    each modality, and the trace features' z (where in the call path the service deviates), all compressed."""
    z = [np.abs(raw_z[m]) for m in ("metrics", "traces", "logs")]
    summary = np.stack([a.max(axis=1) if a.shape[1] else np.zeros(a.shape[0]) for a in z], axis=1)
    traces = raw_z["traces"]
    return np.concatenate([disp, _compress(summary), _compress(traces)], axis=1)


def _compress(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sign(z) * np.log1p(np.abs(z))
    return out


def localisation_features(shift: np.ndarray, pr: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Per service: log shift, log walk score, walk score relative to the best, and ``extra`` columns."""
    n = max(len(shift), 1)
    rel = pr / max(float(pr.max()), EPS) if pr.size else pr
    base = np.stack([np.log1p(np.maximum(shift, 0)), np.log(pr * n + EPS), rel], axis=1)
    return np.concatenate([base, extra], axis=1) if extra.size else base


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40, 40))))


def logistic_fit(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, iterations: int = 300, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (small problems: heads on embeddings)."""
    n, d = x.shape
    xb = np.concatenate([x, np.ones((n, 1))], axis=1)
    sw = np.ones(n) if weights is None else weights
    w = np.zeros(d + 1)
    reg = l2 * np.eye(d + 1)
    reg[-1, -1] = 0.0
    for _ in range(iterations):
        p = sigmoid(xb @ w)
        g = xb.T @ (sw * (p - y)) + reg @ w
        h = (xb * (sw * p * (1 - p))[:, None]).T @ xb + reg + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(h, g)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w[:-1], float(w[-1])


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 50) -> np.ndarray:
    """Centroids of ``k`` clusters (k-means++ seeding)."""
    centres = [x[rng.integers(0, len(x))]]
    for _ in range(1, k):
        d = np.min(np.stack([np.sum((x - c) ** 2, axis=1) for c in centres]), axis=0)
        p = d / d.sum() if d.sum() > 0 else np.full(len(x), 1.0 / len(x))
        centres.append(x[rng.choice(len(x), p=p)])
    c = np.stack(centres)
    for _ in range(iterations):
        assign = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
        new = np.stack([x[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def assign_state(z: np.ndarray, centres: np.ndarray) -> int:
    return int(np.argmin(((centres - z[None, :]) ** 2).sum(axis=1)))
