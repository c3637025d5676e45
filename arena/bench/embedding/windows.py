"""Recorded runs -> labelled windows, standardised exactly as the product does at run time.

Per run, windows end every ``stride`` seconds; each is featurised (``stratus.embedding.features``), standardised
against the run's healthy baseline *so far* (``stratus.embedding.baseline``), and only then, when it ends before the
injection, added to that baseline: a window is never compared with itself or with the future, as in production.

Labels: ``clean`` (a noop run, or ending before the injection), ``fault`` (at least one stride of the fault inside,
starting before the recovery), ``other`` (the transition after recovery; left out of the scores), ``warmup`` (the
baseline has too few windows yet; left out too). One drain3 template miner per application carries across its runs,
in the order they were recorded, as a long-running detector's would.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stratus.embedding.baseline import Baseline, Standardised
from stratus.embedding.features import TemplateLookup, WindowFeatures, featurise
from stratus.embedding.telemetry import Telemetry
from stratus.embedding.text import TextEmbedder

Label = Literal["clean", "fault", "other"]


@dataclass
class Run:
    id: str
    app: str
    family: str
    split: str
    localization: list[str]
    namespace: str
    t0: float
    t_inject: float | None
    t_recover: float | None
    t_end: float
    telemetry: Telemetry

    @classmethod
    def load(cls, path: Path) -> Run:
        with gzip.open(path, "rt") as f:
            doc: dict[str, Any] = json.load(f)
        job = doc["job"]
        return cls(
            id=job["id"],
            app=job["app"],
            family=job["family"],
            split=job["split"],
            localization=list(job.get("localization") or []),
            namespace=doc["namespace"],
            t0=float(doc["t0"]),
            t_inject=doc.get("t_inject"),
            t_recover=doc.get("t_recover"),
            t_end=float(doc["t_end"]),
            telemetry=Telemetry.from_json(doc["telemetry"]),
        )


@dataclass
class Window:
    run: int
    """Index of the run in the dataset."""
    label: Label
    """clean, fault or other (the truth; ``ready`` says whether the baseline was ready to score it)."""
    ready: bool
    std: Standardised
    raw: WindowFeatures
    reference: tuple[float, float]
    """The time span the baseline was drawn from (BARO's "normal" period)."""


def label_of(run: Run, start: float, end: float, stride: float, transient_s: float | None = None) -> Label:
    """``transient_s``: the fault's effect lasts this long after injection (a killed container restarts), so later
    windows of the fault period are neither fault nor clean."""
    if run.t_inject is None:
        return "clean"
    if end <= run.t_inject:
        return "clean"
    recover = run.t_recover if run.t_recover is not None else math.inf
    if transient_s is not None:
        recover = min(recover, run.t_inject + transient_s)
    if end > run.t_inject + stride and start < recover:
        return "fault"
    return "other"


def run_windows(
    run: Run,
    index: int,
    window_s: float,
    stride_s: float,
    templates: TemplateLookup,
    text: TextEmbedder | None,
    min_baseline: int = 6,
    transient_s: float | None = None,
) -> list[Window]:
    out: list[Window] = []
    baseline = Baseline(capacity=64, min_windows=min_baseline)
    end = run.t0
    known = run.telemetry.services
    first = run.telemetry.start
    last_clean = first
    while end <= run.t_end + 1e-6:
        start = end - window_s
        if start < first - 1e-6:
            end += stride_s
            continue
        wf = featurise(run.telemetry.slice(start, end), templates, known)
        label = label_of(run, start, end, stride_s, transient_s)
        std = baseline.standardise(wf, text)
        ref = (first, min(last_clean, start))
        ready = baseline.ready
        if label == "clean":
            baseline.add(wf)
            last_clean = end
        out.append(Window(index, label, ready, std, wf, ref))
        end += stride_s
    return out


def load_runs(folder: Path) -> list[Run]:
    runs = [Run.load(p) for p in sorted((folder / "runs").glob("*.json.gz"))]
    return sorted(runs, key=lambda r: (r.app, r.t0))


def dataset_windows(
    runs: list[Run],
    window_s: float,
    stride_s: float,
    text: TextEmbedder | None,
    echo: Callable[[str], None] = lambda line: None,
    transient: dict[str, float] | None = None,
) -> list[Window]:
    out: list[Window] = []
    miners: dict[str, TemplateLookup] = {}
    for i, run in enumerate(runs):
        templates = miners.setdefault(run.app, TemplateLookup())
        ws = run_windows(run, i, window_s, stride_s, templates, text, transient_s=(transient or {}).get(run.family))
        out.extend(ws)
    echo(
        f"{len(out)} windows from {len(runs)} runs: "
        + ", ".join(f"{lab} {sum(w.ready and w.label == lab for w in out)}" for lab in ("clean", "fault", "other"))
        + f", warm-up {sum(not w.ready for w in out)}"
    )
    return out
