"""One window of telemetry -> raw per-service features, per modality (pure computation, no I/O).

- **Metrics**: per configured signal, the mean and the maximum of the service's series inside the window, plus the
  error ratio (errors / requests).
- **Traces**: the call graph's edges (caller -> callee: rate, error ratio, latency quantiles), and per service: the
  rate, error ratio and latency quantiles of its server spans, its exclusive (self) time, the time its callers lose
  in the hop to it (a network delay shows there and nowhere else), its calls that never got an answer, and how often
  it is where a trace's failure starts (an error span with no failing descendant).
- **Logs**: drain3 templates per service (count, error-like lines, distinct and new templates); the templates
  themselves are kept for the text embedding, which is weighted against the healthy baseline later.

Every count is a rate per second, latencies are ``log1p(milliseconds)``, so windows of any length compare. A feature
with no data is NaN (the baseline turns it into "no evidence"), except counts of a service the scope is known to
run, which are 0: a service that stops answering must look different from one that is idle by nature.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stratus.embedding.telemetry import LogRecord, SeriesRecord, SpanRecord, Telemetry

METRIC_SIGNALS = (
    "requests",
    "errors",
    "latency_mean",
    "latency_p95",
    "restarts",
    "not_ready",
    "waiting",
    "unavailable",
    "cpu",
    "cpu_throttled",
    "memory",
)
METRIC_FEATURES = (*(f"{s}_{a}" for s in METRIC_SIGNALS for a in ("mean", "max")), "error_ratio")
TRACE_FEATURES = (
    "rate",
    "error_ratio",
    "p50",
    "p95",
    "p99",
    "self_p95",
    "hop_p95",
    "out_error_ratio",
    "origin_ratio",
    "unanswered_rate",
    "max_duration",
)
LOG_FEATURES = ("lines", "error_lines", "templates")
COUNT_FEATURES = {
    "metrics": (),
    "traces": ("rate", "unanswered_rate"),
    "logs": ("lines", "error_lines", "templates"),
}
MAX_TEMPLATES_PER_SERVICE = 64

_ERRORISH = re.compile(
    r"error|fatal|panic|exception|fail|refused|timed? ?out|deadline|denied|unauthori[sz]ed|unavailable|"
    r"cannot|could not|no such|not found|crash|killed|oom",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Edge:
    caller: str
    callee: str
    rate: float
    """Calls per second."""
    error_ratio: float
    p50: float
    p95: float
    """Client-side latency quantiles, log1p(ms)."""


@dataclass
class WindowFeatures:
    """Raw features of one window: rows follow ``services``; NaN is "no data"."""

    start: float
    end: float
    services: list[str]
    metrics: np.ndarray
    traces: np.ndarray
    logs: np.ndarray
    templates: list[Counter[str]]
    """Per service: template text -> lines in the window."""
    edges: list[Edge] = field(default_factory=list)
    present: dict[str, bool] = field(default_factory=dict)
    """Whether each modality had a working source for this window."""

    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.services)}


def _ms(seconds: float) -> float:
    return math.log1p(max(seconds, 0.0) * 1000.0)


def _q(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def metric_features(series: Iterable[SeriesRecord], services: list[str], aliases: dict[str, str]) -> np.ndarray:
    idx = {s: i for i, s in enumerate(services)}
    sig = {s: i for i, s in enumerate(METRIC_SIGNALS)}
    out = np.full((len(services), len(METRIC_FEATURES)), np.nan)
    for rec in series:
        i, j = idx.get(aliases.get(rec.service, rec.service)), sig.get(rec.signal)
        if i is None or j is None or not rec.points:
            continue
        vals = np.asarray([v for _, v in rec.points], dtype=np.float64)
        mean, top = float(vals.mean()), float(vals.max())
        if rec.signal.startswith("latency"):
            mean, top = _ms(mean), _ms(top)
        if np.isnan(out[i, 2 * j]):
            out[i, 2 * j], out[i, 2 * j + 1] = mean, top
        else:  # two series of one service (aliases): rates add, the rest keep the worst
            out[i, 2 * j] = out[i, 2 * j] + mean if rec.signal in ("requests", "errors") else max(out[i, 2 * j], mean)
            out[i, 2 * j + 1] = max(out[i, 2 * j + 1], top)
    req, err = out[:, 0], out[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(req > 1e-9, np.nan_to_num(err) / req, np.nan)
    out[:, -1] = np.clip(ratio, 0.0, 1.0)
    return out


def trace_features(
    spans: Sequence[SpanRecord], services: list[str], seconds: float, known: set[str]
) -> tuple[np.ndarray, list[Edge]]:
    idx = {s: i for i, s in enumerate(services)}
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    children: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    for s in spans:
        if s.parent_id is not None and (s.trace_id, s.parent_id) in by_id:
            children[(s.trace_id, s.parent_id)].append(s)
    server: dict[str, list[SpanRecord]] = defaultdict(list)
    hop: dict[str, list[float]] = defaultdict(list)
    selftime: dict[str, list[float]] = defaultdict(list)
    out_calls: Counter[str] = Counter()
    out_errors: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    callee_of: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    edge_lat: dict[tuple[str, str], list[float]] = defaultdict(list)
    edge_err: Counter[tuple[str, str]] = Counter()
    unanswered: list[SpanRecord] = []
    for s in spans:
        parent = by_id.get((s.trace_id, s.parent_id)) if s.parent_id else None
        kids = children.get((s.trace_id, s.span_id), [])
        is_server = s.kind == "server" or (s.kind != "client" and (parent is None or parent.service != s.service))
        if is_server:
            server[s.service].append(s)
            own = s.duration - sum(k.duration for k in kids)
            selftime[s.service].append(max(own, 0.0))
            if parent is not None and parent.service != s.service:
                hop[s.service].append(max(parent.duration - s.duration, 0.0))
                callee_of[(parent.service, parent.operation)][s.service] += 1
                edge_lat[(parent.service, s.service)].append(parent.duration)
                edge_err[(parent.service, s.service)] += int(s.error or parent.error)
        else:
            out_calls[s.service] += 1
            out_errors[s.service] += int(s.error)
            if not kids and s.kind == "client":
                unanswered.append(s)
        if s.error and not any(k.error for k in kids):
            origins[s.service] += 1
    lost: Counter[str] = Counter()
    for s in unanswered:
        callee = callee_of.get((s.service, s.operation))
        if callee:
            target = callee.most_common(1)[0][0]
            lost[target] += 1
            edge_lat[(s.service, target)].append(s.duration)
            edge_err[(s.service, target)] += int(s.error)
            origins[target] += int(s.error)
            origins[s.service] -= int(s.error)
    out = np.full((len(services), len(TRACE_FEATURES)), np.nan)
    secs = max(seconds, 1e-6)
    for svc, i in idx.items():
        mine = server.get(svc, [])
        durations = [x.duration for x in mine]
        calls = len(mine) + lost[svc]
        if calls == 0 and out_calls[svc] == 0:
            if svc in known:
                out[i, 0], out[i, 9] = 0.0, 0.0
            continue
        errors = sum(x.error for x in mine) + lost[svc]
        out[i, 0] = calls / secs
        out[i, 1] = errors / calls if calls else math.nan
        out[i, 2] = _ms(_q(durations, 0.5)) if durations else math.nan
        out[i, 3] = _ms(_q(durations, 0.95)) if durations else math.nan
        out[i, 4] = _ms(_q(durations, 0.99)) if durations else math.nan
        out[i, 5] = _ms(_q(selftime[svc], 0.95)) if selftime[svc] else math.nan
        out[i, 6] = _ms(_q(hop[svc], 0.95)) if hop[svc] else math.nan
        out[i, 7] = out_errors[svc] / out_calls[svc] if out_calls[svc] else math.nan
        total = len(mine) + out_calls[svc]
        out[i, 8] = max(origins[svc], 0) / total if total else math.nan
        out[i, 9] = lost[svc] / secs
        out[i, 10] = _ms(max(durations)) if durations else math.nan
    edges = [
        Edge(
            caller=a,
            callee=b,
            rate=len(lat) / secs,
            error_ratio=edge_err[(a, b)] / len(lat),
            p50=_ms(_q(lat, 0.5)),
            p95=_ms(_q(lat, 0.95)),
        )
        for (a, b), lat in edge_lat.items()
        if a != b
    ]
    return out, edges


def log_features(
    logs: Sequence[LogRecord], services: list[str], seconds: float, known: set[str], templates: TemplateLookup
) -> tuple[np.ndarray, list[Counter[str]]]:
    idx = {s: i for i, s in enumerate(services)}
    counts: list[Counter[str]] = [Counter() for _ in services]
    out = np.full((len(services), len(LOG_FEATURES)), np.nan)
    errors = np.zeros(len(services))
    for rec in logs:
        i = idx.get(rec.service)
        if i is None:
            continue
        text = templates.template(rec.service, rec.text)
        if len(counts[i]) < MAX_TEMPLATES_PER_SERVICE or text in counts[i]:
            counts[i][text] += 1
        errors[i] += bool(_ERRORISH.search(rec.text))
    secs = max(seconds, 1e-6)
    for svc, i in idx.items():
        n = sum(counts[i].values())
        if n == 0 and svc not in known:
            continue
        out[i] = (math.log1p(n / secs * 60.0), math.log1p(errors[i] / secs * 60.0), float(len(counts[i])))
    return out, counts


class TemplateLookup:
    """drain3 template mining, one miner per service (templates of different programs never merge)."""

    def __init__(self, max_clusters: int = 500) -> None:
        from drain3 import TemplateMiner
        from drain3.masking import MaskingInstruction
        from drain3.template_miner_config import TemplateMinerConfig

        cfg = TemplateMinerConfig()
        cfg.drain_max_clusters = max_clusters
        cfg.masking_instructions = [
            MaskingInstruction(r"\d{4}-[A-Za-z0-9]{2,3}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?Z?", "TIME"),
            MaskingInstruction(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", "TIME"),
            MaskingInstruction(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "IP"),
            MaskingInstruction(r"\b[0-9a-f]{8,}\b", "HEX"),
            MaskingInstruction(r"(?<![A-Za-z])-?\d+(?:\.\d+)?(?![A-Za-z])", "NUM"),
        ]
        self._config = cfg
        self._miner_class = TemplateMiner
        self.miners: dict[str, object] = {}
        self.max_services = 500

    def template(self, service: str, line: str) -> str:
        miner = self.miners.get(service)
        if miner is None:
            if len(self.miners) >= self.max_services:
                return "<other>"
            miner = self.miners[service] = self._miner_class(config=self._config)
        result = miner.add_log_message(line[:1000])  # type: ignore[attr-defined]
        return str(result.get("template_mined") or "")[:300]


def featurise(window: Telemetry, templates: TemplateLookup, known: Iterable[str] = ()) -> WindowFeatures:
    """Raw features of ``window`` for every service it or the scope (``known``) names."""
    known_set = set(known) | set(window.services)
    aliases = window.aliases
    names = set(known_set)
    names |= {aliases.get(s.service, s.service) for s in window.series}
    names |= {s.service for s in window.spans}
    names |= {r.service for r in window.logs}
    services = sorted(n for n in names if n)
    seconds = max(window.end - window.start, 1e-6)
    metrics = metric_features(window.series, services, aliases)
    traces, edges = trace_features(window.spans, services, seconds, known_set)
    logs, counts = log_features(window.logs, services, seconds, known_set, templates)
    return WindowFeatures(
        start=window.start,
        end=window.end,
        services=services,
        metrics=metrics,
        traces=traces,
        logs=logs,
        templates=counts,
        edges=edges,
        present={m: m not in window.missing for m in ("metrics", "traces", "logs")},
    )
