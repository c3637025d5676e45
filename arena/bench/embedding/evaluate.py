"""Train the state embedding and measure it against the baselines, in one run, on the same windows.

Splits (by run, never by window): ``train`` runs fit the encoder and the heads (three quarters of them) and calibrate
the thresholds (the other quarter); ``seen`` runs are new runs of families trained on (often on other services);
``unseen`` runs are of families never seen in training. Every method scores every evaluated window against the same
healthy reference (the run's healthy windows before it).

Detection: ROC AUC; F1 at the best threshold whose false-positive rate on the evaluated windows is <= 5% (the
operating point the issue names); and, as the product would run it, F1 and FPR at the threshold calibrated on the
training runs' healthy windows (their 97th percentile). Event recall: the share of evaluated fault runs with at
least one flagged fault window at the calibrated threshold. Localisation: top-1 / top-3 over fault windows whose
truth is a service the window knows. Latency: median time per window of the whole product path (features from the
window's telemetry, standardisation, encoding, scores).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arena.bench.embedding.baselines import IForest, TextBaseline, baro, robust_z
from arena.bench.embedding.plan import Plan, load_plan
from arena.bench.embedding.train import Config, train
from arena.bench.embedding.windows import Run, Window, dataset_windows, load_runs
from stratus.embedding.baseline import Baseline
from stratus.embedding.features import TemplateLookup, featurise
from stratus.embedding.model import Encoded, Encoder
from stratus.embedding.scoring import (
    anomaly_score,
    displacement,
    healthy_spread,
    kmeans,
    localisation_extra,
    localisation_features,
    logistic_fit,
    service_shift,
    sigmoid,
    walk_rank,
)
from stratus.embedding.text import default_embedder

TARGET_FPR = 0.05
CALIBRATION_QUANTILE = 0.97
HISTORY = 64


@dataclass
class Options:
    dataset: Path
    out: Path
    seed: int = 7
    epochs: int = 30
    states: int = 4
    model_out: Path | None = None


@dataclass
class MethodResult:
    name: str
    auc: float = 0.0
    f1_at_fpr: float = 0.0
    f1: float = 0.0
    fpr: float = 0.0
    event_recall: float = 0.0
    top1: float = float("nan")
    top3: float = float("nan")
    top1_unseen: float = float("nan")
    ms_per_window: float = float("nan")
    detail: dict[str, Any] = field(default_factory=dict)


def dataset_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((folder / "runs").glob("*.json.gz")):
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _windows(opts: Options, plan: Plan, runs: list[Run], echo: Callable[[str], None]) -> list[Window]:
    cache = opts.out / f"windows-{dataset_digest(opts.dataset)}.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            cached: list[Window] = pickle.load(f)
        echo(f"windows from {cache}")
        return cached
    t = time.perf_counter()
    ws = dataset_windows(
        runs, plan.window_s, plan.stride_s, default_embedder(), echo, transient=plan.transient_families
    )
    echo(f"featurised in {time.perf_counter() - t:.0f} s")
    opts.out.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(ws, f)
    return ws


# ------------------------------------------------------------------------------------------------------- metrics
def auc(scores: np.ndarray, y: np.ndarray) -> float:
    pos, neg = scores[y == 1], scores[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([neg, pos]), kind="stable"), kind="stable") + 1
    return float((ranks[neg.size :].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def prf(scores: np.ndarray, y: np.ndarray, thr: float) -> tuple[float, float, float]:
    pred = scores > thr
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    f1 = 2 * tp / max(2 * tp + fp + fn, 1.0)
    fpr = fp / max(float(np.sum(y == 0)), 1.0)
    rec = tp / max(tp + fn, 1.0)
    return f1, fpr, rec


def f1_at_fpr(scores: np.ndarray, y: np.ndarray, max_fpr: float) -> tuple[float, float]:
    best, best_thr = 0.0, float("inf")
    for thr in np.unique(scores):
        f1, fpr, _ = prf(scores, y, float(thr))
        if fpr <= max_fpr and f1 > best:
            best, best_thr = f1, float(thr)
    return best, best_thr


# -------------------------------------------------------------------------------------------------------- the run
def evaluate(opts: Options, echo: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    plan = load_plan()
    runs = load_runs(opts.dataset)
    if not runs:
        raise ValueError(f"no recorded runs in {opts.dataset / 'runs'}: run `stratus embedding-bench record` first")
    windows = _windows(opts, plan, runs, echo)
    rng = np.random.default_rng(opts.seed)
    train_runs = sorted(i for i, r in enumerate(runs) if r.split == "train")
    calib = set(rng.choice(train_runs, size=max(1, len(train_runs) // 4), replace=False).tolist())
    fit = set(train_runs) - calib
    split = {i: r.split for i, r in enumerate(runs)}

    t = time.perf_counter()
    encoder = train(
        [w.std for w in windows if w.run in fit],
        [w.run for w in windows if w.run in fit],
        Config(epochs=opts.epochs, seed=opts.seed),
        echo,
    )
    echo(f"encoder trained in {time.perf_counter() - t:.0f} s on {sum(w.run in fit for w in windows)} windows")
    enc = [encoder.encode(w.std) for w in windows]
    history = _histories(windows)

    # the embedding's own scores
    anomaly = np.zeros(len(windows))
    shifts: list[np.ndarray] = []
    walks: list[np.ndarray] = []
    for i, w in enumerate(windows):
        healthy = np.stack([enc[j].joint for j in history[i]]) if history[i] else np.zeros((0, 1))
        anomaly[i] = anomaly_score(enc[i].joint, healthy, healthy_spread(healthy) if history[i] else None)
        sh = _shift(enc, i, history[i])
        shifts.append(sh)
        walks.append(walk_rank(w.std.services, sh, w.std.edges))
    head_x = np.stack([np.concatenate([e.joint, [np.log1p(a)]]) for e, a in zip(enc, anomaly, strict=True)])
    y = np.asarray([1 if w.label == "fault" else 0 for w in windows])
    usable = np.asarray([w.ready and w.label in ("clean", "fault") for w in windows])
    in_fit = np.asarray([w.run in fit for w in windows]) & usable
    head = logistic_fit(head_x[in_fit], y[in_fit])
    head_score = sigmoid(head_x @ head[0] + head[1])
    centres = kmeans(head_x[in_fit, :-1], opts.states, np.random.default_rng(opts.seed))
    state = np.argmin(((head_x[:, None, :-1] - centres[None]) ** 2).sum(axis=2), axis=1)
    state_heads: list[tuple[np.ndarray, float]] = []
    for k in range(opts.states):
        sel = in_fit & (state == k)
        if sel.sum() >= 10 and 0 < y[sel].sum() < sel.sum():
            state_heads.append(logistic_fit(head_x[sel], y[sel]))
        else:
            state_heads.append(head)
    state_score = np.asarray(
        [float(sigmoid(head_x[i] @ state_heads[state[i]][0] + state_heads[state[i]][1])) for i in range(len(windows))]
    )
    loc_head = _fit_localisation_head(windows, runs, enc, shifts, walks, history, in_fit)

    # the baselines
    t = time.perf_counter()
    forest = IForest(opts.seed).fit([w for w in windows if w.run in fit and w.ready and w.label == "clean"], rng)
    text = TextBaseline(default_embedder())
    det: dict[str, np.ndarray] = {
        "embedding (distance)": anomaly,
        "embedding + head": head_score,
        "embedding + state heads": state_score,
    }
    per: dict[str, list[np.ndarray]] = {
        "embedding (distance)": [w_ * np.maximum(s, 1e-6) ** 0.5 for w_, s in zip(walks, shifts, strict=True)],
        "embedding + head": [
            _loc_score(loc_head, shifts[i], walks[i], enc[i], history[i], enc, windows[i]) for i in range(len(windows))
        ],
    }
    per["embedding + state heads"] = per["embedding + head"]
    evaluated = [i for i, w in enumerate(windows) if w.ready and split[w.run] != "train"]
    scored = sorted(set(evaluated) | {i for i, w in enumerate(windows) if w.run in calib and w.ready})
    for name in ("robust-z", "BARO", "IsolationForest", "text embedding"):
        det[name] = np.zeros(len(windows))
        per[name] = [np.zeros(len(w.std.services)) for w in windows]
    for i in scored:
        w = windows[i]
        det["robust-z"][i], per["robust-z"][i] = robust_z(w)
        det["BARO"][i], per["BARO"][i] = baro(w, runs[w.run])
        det["IsolationForest"][i], per["IsolationForest"][i] = forest.score(w)
        det["text embedding"][i], per["text embedding"][i] = text.score(w, [windows[j] for j in history[i]])
    echo(f"baselines scored in {time.perf_counter() - t:.0f} s")

    results = []
    for name in det:
        results.append(_measure(name, det[name], per[name], windows, runs, evaluated, calib, y))
    latency = _latency(windows, runs, encoder, plan, evaluated, text, forest)
    for r in results:
        r.ms_per_window = latency.get(r.name, float("nan"))
    calib_windows = [i for i, w in enumerate(windows) if w.run in calib and w.ready and w.label in ("clean", "fault")]
    chosen = _choose(det, y, calib_windows)
    report = {
        "dataset": str(opts.dataset),
        "dataset_digest": dataset_digest(opts.dataset),
        "runs": {s: sum(1 for r in runs if r.split == s) for s in ("train", "seen", "unseen")},
        "windows": {
            "evaluated": len(evaluated),
            "fault": int(sum(windows[i].label == "fault" for i in evaluated)),
            "clean": int(sum(windows[i].label == "clean" for i in evaluated)),
        },
        "seed": opts.seed,
        "results": [r.__dict__ for r in results],
        "chosen": chosen,
        "families": _families(det, per, windows, runs, evaluated, calib, y),
    }
    if opts.model_out is not None:
        calib_clean = [i for i, w in enumerate(windows) if w.run in calib and w.ready and w.label == "clean"]
        thresholds = {
            "distance": float(np.quantile(anomaly[calib_clean], CALIBRATION_QUANTILE)),
            "head": float(np.quantile(head_score[calib_clean], CALIBRATION_QUANTILE)),
            "state_heads": float(np.quantile(state_score[calib_clean], CALIBRATION_QUANTILE)),
        }
        _save(opts, encoder, head, centres, state_heads, loc_head, thresholds, chosen, report, plan)
    (opts.out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    (opts.out / "report.md").write_text(table(report))
    return report


def _histories(windows: list[Window]) -> list[list[int]]:
    """For each window: the earlier healthy windows of its run that its baseline holds (at most HISTORY)."""
    out: list[list[int]] = []
    clean_so_far: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        seen = clean_so_far.setdefault(w.run, [])
        out.append(list(seen[-HISTORY:]))
        if w.label == "clean":
            seen.append(i)
    return out


def _shift(enc: list[Encoded], i: int, hist: list[int]) -> np.ndarray:
    e = enc[i]
    healthy: list[np.ndarray | None] = []
    for s in e.services:
        rows = [enc[j].service[enc[j].services.index(s)] for j in hist if s in enc[j].services]
        healthy.append(np.stack(rows) if rows else None)
    return service_shift(e.service, healthy)


def _extra(e: Encoded, hist: list[int], enc: list[Encoded], w: Window) -> np.ndarray:
    """The localisation head's extra inputs (as the product computes them: ``localisation_extra``)."""
    healthy: list[np.ndarray | None] = []
    for s in e.services:
        rows = [enc[j].service[enc[j].services.index(s)] for j in hist if s in enc[j].services]
        healthy.append(np.stack(rows) if rows else None)
    return localisation_extra(displacement(e.service, healthy), w.std.raw_z)


def _loc_score(
    head: tuple[np.ndarray, float],
    shift: np.ndarray,
    walk: np.ndarray,
    e: Encoded,
    hist: list[int],
    enc: list[Encoded],
    w: Window,
) -> np.ndarray:
    feats = localisation_features(shift, walk, _extra(e, hist, enc, w))
    return sigmoid(feats @ head[0] + head[1])


def _fit_localisation_head(
    windows: list[Window],
    runs: list[Run],
    enc: list[Encoded],
    shifts: list[np.ndarray],
    walks: list[np.ndarray],
    history: list[list[int]],
    in_fit: np.ndarray,
) -> tuple[np.ndarray, float]:
    xs, ys = [], []
    for i, w in enumerate(windows):
        truth = set(runs[w.run].localization)
        if not in_fit[i] or w.label != "fault" or not truth & set(w.std.services):
            continue
        xs.append(localisation_features(shifts[i], walks[i], _extra(enc[i], history[i], enc, w)))
        ys.append(np.asarray([1.0 if s in truth else 0.0 for s in w.std.services]))
    if not xs:
        return np.zeros(3 + _extra(enc[0], [], enc, windows[0]).shape[1]), 0.0
    x, y = np.concatenate(xs), np.concatenate(ys)
    weights = np.where(y > 0, (len(y) - y.sum()) / max(y.sum(), 1), 1.0)
    return logistic_fit(x, y, l2=1.0, weights=weights)


def _measure(
    name: str,
    score: np.ndarray,
    per: list[np.ndarray],
    windows: list[Window],
    runs: list[Run],
    evaluated: list[int],
    calib: set[int],
    y: np.ndarray,
) -> MethodResult:
    ev = np.asarray([i for i in evaluated if windows[i].label in ("clean", "fault")])
    res = MethodResult(name)
    if ev.size == 0:
        return res
    s, yy = score[ev], y[ev]
    res.auc = auc(s, yy)
    res.f1_at_fpr, _ = f1_at_fpr(s, yy, TARGET_FPR)
    calib_clean = [i for i, w in enumerate(windows) if w.run in calib and w.ready and w.label == "clean"]
    thr = float(np.quantile(score[calib_clean], CALIBRATION_QUANTILE)) if calib_clean else float(np.median(s))
    res.f1, res.fpr, _ = prf(s, yy, thr)
    fault_runs: dict[int, bool] = {}
    for i in ev:
        if windows[i].label == "fault":
            fault_runs[windows[i].run] = fault_runs.get(windows[i].run, False) or bool(score[i] > thr)
    res.event_recall = sum(fault_runs.values()) / max(len(fault_runs), 1)
    hits1, hits3, hits1_unseen, n_unseen = [], [], [], 0
    for i in ev:
        w = windows[i]
        truth = set(runs[w.run].localization)
        if w.label != "fault" or not truth & set(w.std.services):
            continue
        order = np.argsort(-per[i], kind="stable")
        ranked = [w.std.services[k] for k in order]
        hits1.append(ranked[0] in truth)
        hits3.append(bool(truth & set(ranked[:3])))
        if runs[w.run].split == "unseen":
            hits1_unseen.append(ranked[0] in truth)
            n_unseen += 1
    if hits1:
        res.top1, res.top3 = float(np.mean(hits1)), float(np.mean(hits3))
    if hits1_unseen:
        res.top1_unseen = float(np.mean(hits1_unseen))
    res.detail = {"threshold": thr, "localised_windows": len(hits1), "unseen_localised_windows": n_unseen}
    return res


def _families(
    det: dict[str, np.ndarray],
    per: dict[str, list[np.ndarray]],
    windows: list[Window],
    runs: list[Run],
    evaluated: list[int],
    calib: set[int],
    y: np.ndarray,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    families = sorted({runs[windows[i].run].family for i in evaluated if windows[i].label == "fault"})
    clean = [i for i in evaluated if windows[i].label == "clean"]
    for fam in families:
        idx = [i for i in evaluated if runs[windows[i].run].family == fam and windows[i].label == "fault"]
        row: dict[str, Any] = {"split": runs[windows[idx[0]].run].split, "windows": len(idx)}
        for name in ("embedding + head", "BARO", "robust-z"):
            r = _measure(name, det[name], per[name], windows, runs, idx + clean, calib, y)
            row[name] = {"recall": r.event_recall, "top1": r.top1, "top3": r.top3}
        out[fam] = row
    return out


def _choose(det: dict[str, np.ndarray], y: np.ndarray, calib: list[int]) -> dict[str, Any]:
    """Which embedding detector the product uses, decided on the training runs held out for calibration (never on
    the evaluated runs): the state partition is kept only if it helps there."""
    idx = np.asarray(calib, dtype=int)
    score = {}
    for key, name in (
        ("distance", "embedding (distance)"),
        ("head", "embedding + head"),
        ("state_heads", "embedding + state heads"),
    ):
        score[key] = f1_at_fpr(det[name][idx], y[idx], TARGET_FPR)[0] if idx.size else 0.0
    best = max(score, key=lambda k: (score[k], k == "head"))
    return {
        "detector": best,
        "why": "F1 @ FPR<=5% on the calibration runs: "
        + ", ".join(f"{k} {v:.3f}" for k, v in score.items())
        + ("; the state partition helps, kept" if best == "state_heads" else "; the state partition does not help"),
    }


def _latency(
    windows: list[Window],
    runs: list[Run],
    encoder: Encoder,
    plan: Plan,
    evaluated: list[int],
    text: TextBaseline,
    forest: IForest,
) -> dict[str, float]:
    """Median CPU milliseconds (process time: the shared machine's load does not count) per window of each method's
    whole path, from the window's telemetry."""
    sample = evaluated[:: max(1, len(evaluated) // 60)][:60]
    times: dict[str, list[float]] = {}
    embedder = default_embedder()
    clock = time.process_time
    for i in sample:
        w = windows[i]
        run = runs[w.run]
        base = Baseline()
        for j in range(max(0, i - 40), i):
            if windows[j].run == w.run and windows[j].label == "clean":
                base.add(windows[j].raw)
        tl = TemplateLookup()
        piece = run.telemetry.slice(w.std.start, w.std.end)
        t0 = clock()
        wf = featurise(piece, tl, run.telemetry.services)
        std = base.standardise(wf, embedder)
        t1 = clock()
        e = encoder.encode(std)
        healthy = np.stack([e.joint] * 8)
        anomaly_score(e.joint, healthy)
        sh = np.linalg.norm(e.service, axis=1)
        walk_rank(std.services, sh, std.edges)
        t2 = clock()
        robust_z(w)
        t3 = clock()
        baro(w, run)
        t4 = clock()
        forest.score(w)
        t5 = clock()
        text.cache.clear()
        text.score(w, [])
        t6 = clock()
        prep = (t1 - t0) * 1000
        for name, ms in (
            ("embedding (distance)", prep + (t2 - t1) * 1000),
            ("embedding + head", prep + (t2 - t1) * 1000),
            ("embedding + state heads", prep + (t2 - t1) * 1000),
            ("robust-z", prep + (t3 - t2) * 1000),
            ("BARO", (t4 - t3) * 1000),
            ("IsolationForest", prep + (t5 - t4) * 1000),
            ("text embedding", prep + (t6 - t5) * 1000),
        ):
            times.setdefault(name, []).append(ms)
    return {k: statistics.median(v) for k, v in times.items()}


def _save(
    opts: Options,
    encoder: Encoder,
    head: tuple[np.ndarray, float],
    centres: np.ndarray,
    state_heads: list[tuple[np.ndarray, float]],
    loc_head: tuple[np.ndarray, float],
    thresholds: dict[str, float],
    chosen: dict[str, Any],
    report: dict[str, Any],
    plan: Plan,
) -> None:
    assert opts.model_out is not None
    params = dict(encoder.params)
    params["head.w"], params["head.b"] = head[0], np.asarray([head[1]])
    params["states.centres"] = centres
    params["states.w"] = np.stack([h[0] for h in state_heads])
    params["states.b"] = np.asarray([h[1] for h in state_heads])
    params["loc.w"], params["loc.b"] = loc_head[0], np.asarray([loc_head[1]])
    meta = {
        **encoder.meta,
        "version": opts.model_out.stem,
        "dataset_digest": report["dataset_digest"],
        "trained_on": "synthetic arena runs (stratus embedding-bench record), not production telemetry",
        "thresholds": thresholds,
        "detector": chosen["detector"],
        "window_s_trained": plan.window_s,
        "stride_s_trained": plan.stride_s,
    }
    digest = Encoder(params, meta).save(opts.model_out)
    report["model"] = {"path": str(opts.model_out), "sha256": digest, "bytes": opts.model_out.stat().st_size}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Dataset {report['dataset']} (digest {report['dataset_digest']}): runs {report['runs']}, evaluated windows "
        f"{report['windows']}, seed {report['seed']}.",
        "",
        "| method | AUC | F1 @ FPR<=5% | F1 (calibrated) | FPR (calibrated) | fault runs detected | top-1 | top-3 | "
        "top-1 unseen families | CPU ms / window |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['name']} | {r['auc']:.3f} | {r['f1_at_fpr']:.3f} | {r['f1']:.3f} | {r['fpr']:.3f} | "
            f"{r['event_recall']:.2f} | {_pct(r['top1'])} | {_pct(r['top3'])} | {_pct(r['top1_unseen'])} | "
            f"{r['ms_per_window']:.1f} |"
        )
    lines += ["", f"Detector kept for the product: {report['chosen']['detector']} ({report['chosen']['why']}).", ""]
    lines += [
        "| family (split) | fault windows | embedding + head: runs detected / top-1 / top-3 | BARO | robust-z |",
        "|---|---|---|---|---|",
    ]
    for fam, row in report["families"].items():
        cells = [
            f"{row[m]['recall']:.2f} / {_pct(row[m]['top1'])} / {_pct(row[m]['top3'])}"
            for m in ("embedding + head", "BARO", "robust-z")
        ]
        lines.append(f"| {fam} ({row['split']}) | {row['windows']} | " + " | ".join(cells) + " |")
    if "model" in report:
        m = report["model"]
        lines += ["", f"Model: {m['path']} ({m['bytes']} bytes, sha256 of arrays {m['sha256'][:16]}...)."]
    return "\n".join(lines) + "\n"


def _pct(v: float) -> str:
    return "-" if v != v else f"{100 * v:.0f}%"
