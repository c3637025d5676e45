"""Training of the state encoder on CPU with numpy (forward and backward written out; Adam; seeded).

Objectives (Unified Runtime Contrastive Learning, after RuntimeSlicer):

- **cross-modal alignment**: InfoNCE between the metric, trace and log embeddings of the same window (each pair of
  modalities both present; the other windows of the batch are the negatives);
- **temporal consistency weighted by overlap**: the joint embeddings of two views of the batch are matched with a
  soft contrastive target: window ``j`` is a positive for window ``i`` with weight ``omega_ij`` = the fraction of
  their time spans that overlap (1 for the window itself, 0 across runs);
- **modality dropout**: the two views each drop modalities at random (at least one stays), so the joint embedding
  learns to stay put when a modality goes missing.

Why numpy: the encoder is small (per-service MLPs and a pooling projection) and training it takes a minute; the
product runs it with numpy too, so nothing heavy enters the lock. ``gradient_check`` compares the backward pass with
finite differences; ``tests/unit/test_embedding_train.py`` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stratus.embedding.baseline import MODALITIES, Standardised
from stratus.embedding.model import Encoder

NEG = -1e9


@dataclass
class Config:
    hidden: int = 32
    dim: int = 32
    tau: float = 0.2
    lr: float = 2e-3
    epochs: int = 30
    batch: int = 96
    drop: float = 0.35
    """Probability that a view drops a modality (at least one always stays)."""
    w_modal: float = 1.0
    w_temporal: float = 1.0
    weight_decay: float = 1e-4
    seed: int = 7


@dataclass
class Batch:
    x: dict[str, np.ndarray]
    """(B, S, k) per modality, zero-padded."""
    mask: np.ndarray
    """(B, S) 1 for real services."""
    present: np.ndarray
    """(B, 3) 1 when the modality had data."""
    run: np.ndarray
    start: np.ndarray
    end: np.ndarray


def make_batch(windows: Sequence[Standardised], runs: Sequence[int]) -> Batch:
    s_max = max(len(w.services) for w in windows)
    x = {}
    for m in MODALITIES:
        k = windows[0].x[m].shape[1]
        arr = np.zeros((len(windows), s_max, k))
        for i, w in enumerate(windows):
            arr[i, : len(w.services)] = w.x[m]
        x[m] = arr
    mask = np.zeros((len(windows), s_max))
    for i, w in enumerate(windows):
        mask[i, : len(w.services)] = 1.0
    present = np.asarray([[float(w.present.get(m, True)) for m in MODALITIES] for w in windows])
    return Batch(
        x,
        mask,
        present,
        np.asarray(runs),
        np.asarray([w.start for w in windows]),
        np.asarray([w.end for w in windows]),
    )


def init_params(dims: dict[str, int], cfg: Config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p: dict[str, np.ndarray] = {}
    h, d = cfg.hidden, cfg.dim
    for m in MODALITIES:
        k = dims[m]
        p[f"{m}.W1"] = rng.normal(0, np.sqrt(2.0 / k), (k, h))
        p[f"{m}.b1"] = np.zeros(h)
        p[f"{m}.W2"] = rng.normal(0, np.sqrt(1.0 / h), (h, h))
        p[f"{m}.b2"] = np.zeros(h)
        p[f"{m}.Wp"] = rng.normal(0, np.sqrt(1.0 / (2 * h)), (2 * h, d))
        p[f"{m}.bp"] = np.zeros(d)
    return p


def overlap(batch: Batch) -> np.ndarray:
    """omega_ij: the overlap of the two windows' spans as a fraction of a window (0 across runs)."""
    length = np.maximum(batch.end - batch.start, 1e-9)
    lo = np.maximum(batch.start[:, None], batch.start[None, :])
    hi = np.minimum(batch.end[:, None], batch.end[None, :])
    om = np.clip((hi - lo) / length[:, None], 0.0, 1.0)
    om = om * (batch.run[:, None] == batch.run[None, :])
    return np.asarray(om)


# ------------------------------------------------------------------------------------------------ forward/backward
def _modality_forward(p: dict[str, np.ndarray], m: str, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    h1 = x @ p[f"{m}.W1"] + p[f"{m}.b1"]
    a1 = np.maximum(h1, 0.0)
    t = a1 @ p[f"{m}.W2"] + p[f"{m}.b2"]
    masked = np.where(mask[:, :, None] > 0, t, NEG)
    arg = masked.argmax(axis=1)  # (B, H)
    tmax = np.take_along_axis(masked, arg[:, None, :], axis=1)[:, 0, :]
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
    tmean = (t * mask[:, :, None]).sum(axis=1) / n
    pooled = np.concatenate([tmax, tmean], axis=1)
    q = pooled @ p[f"{m}.Wp"] + p[f"{m}.bp"]
    qn = np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    e = q / qn
    return {"x": x, "h1": h1, "a1": a1, "t": t, "arg": arg, "n": n, "pooled": pooled, "q": q, "qn": qn, "e": e}


def _modality_backward(
    p: dict[str, np.ndarray], m: str, c: dict[str, np.ndarray], mask: np.ndarray, de: np.ndarray
) -> dict[str, np.ndarray]:
    e, qn = c["e"], c["qn"]
    dq = (de - e * (e * de).sum(axis=1, keepdims=True)) / qn
    g = {f"{m}.Wp": c["pooled"].T @ dq, f"{m}.bp": dq.sum(axis=0)}
    dpooled = dq @ p[f"{m}.Wp"].T
    h = c["t"].shape[2]
    dmax, dmean = dpooled[:, :h], dpooled[:, h:]
    dt = mask[:, :, None] * (dmean / c["n"])[:, None, :]
    bidx = np.arange(dt.shape[0])[:, None]
    hidx = np.arange(h)[None, :]
    np.add.at(dt, (bidx, c["arg"], hidx), dmax)
    g[f"{m}.W2"] = np.einsum("bsh,bsk->hk", c["a1"], dt)
    g[f"{m}.b2"] = dt.sum(axis=(0, 1))
    da1 = dt @ p[f"{m}.W2"].T
    dh1 = da1 * (c["h1"] > 0)
    g[f"{m}.W1"] = np.einsum("bsk,bsh->kh", c["x"], dh1)
    g[f"{m}.b1"] = dh1.sum(axis=(0, 1))
    return g


def _softmax_ce(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over rows of cross-entropy with a target distribution per row; and d loss / d logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    ex = np.exp(z)
    sm = ex / ex.sum(axis=1, keepdims=True)
    logp = z - np.log(ex.sum(axis=1, keepdims=True))
    rows = logits.shape[0]
    loss = float(-(target * logp).sum() / rows)
    return loss, (sm * target.sum(axis=1, keepdims=True) - target) / rows


def _info_nce(a: np.ndarray, b: np.ndarray, target: np.ndarray, tau: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Symmetric contrastive loss between rows of ``a`` and ``b`` (unit vectors) with soft targets."""
    logits = a @ b.T / tau
    l1, g1 = _softmax_ce(logits, target)
    l2, g2 = _softmax_ce(logits.T, target.T)
    dlogits = (g1 + g2.T) / 2
    return (l1 + l2) / 2, dlogits @ b / tau, dlogits.T @ a / tau


def loss_and_grads(
    p: dict[str, np.ndarray], batch: Batch, views: np.ndarray, cfg: Config
) -> tuple[float, dict[str, float], dict[str, np.ndarray]]:
    """``views``: (2, B, 3) modality keep-masks of the two dropout views (already ANDed with presence)."""
    caches = {m: _modality_forward(p, m, batch.x[m], batch.mask) for m in MODALITIES}
    de = {m: np.zeros_like(caches[m]["e"]) for m in MODALITIES}
    parts: dict[str, float] = {}
    # cross-modal InfoNCE, over the windows where both modalities are present
    modal = 0.0
    for i, a in enumerate(MODALITIES):
        for b in MODALITIES[i + 1 :]:
            both = (batch.present[:, i] > 0) & (batch.present[:, MODALITIES.index(b)] > 0)
            if both.sum() < 2:
                continue
            idx = np.flatnonzero(both)
            target = np.eye(len(idx))
            loss, ga, gb = _info_nce(caches[a]["e"][idx], caches[b]["e"][idx], target, cfg.tau)
            modal += loss
            de[a][idx] += cfg.w_modal * ga
            de[b][idx] += cfg.w_modal * gb
    parts["modal"] = modal
    # temporal consistency between two dropout views, soft targets from the overlap
    joints, norms, sums = [], [], []
    for v in range(2):
        s = sum(views[v, :, j, None] * caches[m]["e"] for j, m in enumerate(MODALITIES))
        n = np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        joints.append(s / n)
        norms.append(n)
        sums.append(s)
    om = overlap(batch)
    target = om / np.maximum(om.sum(axis=1, keepdims=True), 1e-12)
    temporal, gz0, gz1 = _info_nce(joints[0], joints[1], target, cfg.tau)
    parts["temporal"] = temporal
    for v, gz in enumerate((gz0, gz1)):
        z = joints[v]
        ds = cfg.w_temporal * (gz - z * (z * gz).sum(axis=1, keepdims=True)) / norms[v]
        for j, m in enumerate(MODALITIES):
            de[m] += views[v, :, j, None] * ds
    grads: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        grads.update(_modality_backward(p, m, caches[m], batch.mask, de[m]))
    total = cfg.w_modal * modal + cfg.w_temporal * temporal
    return total, parts, grads


def dropout_views(present: np.ndarray, drop: float, rng: np.random.Generator) -> np.ndarray:
    views = np.zeros((2, *present.shape))
    for v in range(2):
        keep = (rng.random(present.shape) >= drop) * present
        for i in range(present.shape[0]):
            if keep[i].sum() == 0 and present[i].sum() > 0:
                keep[i, rng.choice(np.flatnonzero(present[i]))] = 1.0
        views[v] = keep
    return views


# ------------------------------------------------------------------------------------------------------- training
def train(
    windows: Sequence[Standardised],
    runs: Sequence[int],
    cfg: Config,
    echo: Callable[[str], None] = lambda line: None,
) -> Encoder:
    """Fit the encoder; batches are contiguous stretches of runs (so overlapping windows meet in a batch)."""
    rng = np.random.default_rng(cfg.seed)
    dims = {m: windows[0].x[m].shape[1] for m in MODALITIES}
    p = init_params(dims, cfg, rng)
    m1 = {k: np.zeros_like(v) for k, v in p.items()}
    m2 = {k: np.zeros_like(v) for k, v in p.items()}
    order = np.argsort(np.asarray(runs) * 1e7 + np.asarray([w.start for w in windows]), kind="stable")
    step = 0
    chunk = 8  # consecutive windows kept together
    for epoch in range(cfg.epochs):
        blocks = [order[i : i + chunk] for i in range(0, len(order), chunk)]
        rng.shuffle(blocks)  # type: ignore[arg-type]
        flat = np.concatenate(blocks)
        totals: dict[str, float] = {"modal": 0.0, "temporal": 0.0}
        nb = 0
        for b in range(0, len(flat), cfg.batch):
            idx = flat[b : b + cfg.batch]
            if len(idx) < 4:
                continue
            batch = make_batch([windows[i] for i in idx], [runs[i] for i in idx])
            views = dropout_views(batch.present, cfg.drop, rng)
            _, parts, grads = loss_and_grads(p, batch, views, cfg)
            step += 1
            for k in p:
                g = grads[k] + cfg.weight_decay * p[k]
                m1[k] = 0.9 * m1[k] + 0.1 * g
                m2[k] = 0.999 * m2[k] + 0.001 * g * g
                mh, vh = m1[k] / (1 - 0.9**step), m2[k] / (1 - 0.999**step)
                p[k] -= cfg.lr * mh / (np.sqrt(vh) + 1e-8)
            for key in totals:
                totals[key] += parts[key]
            nb += 1
        if epoch % 5 == 0 or epoch == cfg.epochs - 1:
            echo(
                f"epoch {epoch + 1}/{cfg.epochs}: cross-modal {totals['modal'] / max(nb, 1):.3f}, "
                f"temporal {totals['temporal'] / max(nb, 1):.3f}"
            )
    meta = {
        "hidden": cfg.hidden,
        "dim": cfg.dim,
        "tau": cfg.tau,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "dims": dims,
        "windows": len(windows),
    }
    return Encoder(p, meta)


def gradient_check(seed: int = 0, eps: float = 1e-6) -> float:
    """Largest relative difference between the analytic and the numeric gradient on a tiny random problem."""
    rng = np.random.default_rng(seed)
    cfg = Config(hidden=5, dim=4, tau=0.5)
    dims = {"metrics": 3, "traces": 2, "logs": 4}
    p = init_params(dims, cfg, rng)
    b, s = 5, 3
    batch = Batch(
        x={m: rng.normal(size=(b, s, k)) for m, k in dims.items()},
        mask=np.asarray([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=float),
        present=np.asarray([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float),
        run=np.asarray([0, 0, 0, 1, 1]),
        start=np.asarray([0.0, 1.0, 2.0, 0.0, 1.5]),
        end=np.asarray([4.0, 5.0, 6.0, 4.0, 5.5]),
    )
    views = dropout_views(batch.present, 0.3, rng)
    _, _, grads = loss_and_grads(p, batch, views, cfg)
    worst = 0.0
    for k, v in p.items():
        for _ in range(4):
            i = tuple(rng.integers(0, n) for n in v.shape)
            old = v[i]
            v[i] = old + eps
            up, _, _ = loss_and_grads(p, batch, views, cfg)
            v[i] = old - eps
            down, _, _ = loss_and_grads(p, batch, views, cfg)
            v[i] = old
            num = (up - down) / (2 * eps)
            ana = grads[k][i]
            worst = max(worst, abs(num - ana) / max(1e-6, abs(num) + abs(ana)))
    return worst
