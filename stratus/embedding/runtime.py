"""The state embedding at run time, per scope: windows of telemetry, the healthy baseline, and the two scores.

``StateEmbedding.observe(scope, healthy)`` is called by the detector on every probe. It reads only the telemetry
that arrived since its last read (one stride), keeps the chunks that make up the current window, featurises the
window, standardises it against the scope's baseline, encodes it and scores it. When the caller says the scope is
healthy (no incident, mu = 0) *and* the window does not look anomalous, the window joins the baseline (and its
embedding the healthy set): the baseline follows slow drift but never learns a fault as normal.

Whether a scope's window *raises* (counts in mu) is decided per scope, because one threshold for every scope has a
small per-window false-positive rate that continuous probing turns into incidents on healthy scopes. Each scope
calibrates its own threshold (``Calibration``): while the scope is healthy it keeps its recent scores, and its
threshold is the artefact's, or a high quantile of its own healthy scores times a margin when that is higher: a noisy
scope learns its noise level, a quiet one keeps the artefact's sensitivity, and no scope is ever more sensitive than
the artefact. A scope raises nothing until it has ``calibration`` windows. Then hysteresis: it raises after
``persist`` windows over its threshold in a row and clears after ``clear`` windows under a lower one (``release`` times
the threshold), so a scope near its threshold does not flap. Windows over the
threshold are not learnt at once: they join the calibration only when the run of them ends before the scope raises
(noise), and are dropped when it raises (a fault is never learnt as noise); a raised scope learns nothing.

The warm-up is counted in time, not in reads. A detector may read far more often than the stride (its probe loop sets
the pace), and windows read a second apart share nearly all their telemetry: six of them are one stretch of load, and
a baseline learnt from it (its median and MAD) turns the next change of load into a shift of 10^2 or more, which a
calibration learnt just as quickly then calls an incident. So a window counts as separate healthy evidence only a
stride after the last one that did, and a scope raises nothing until its baseline covers ``warmup`` window lengths of
healthy telemetry and then its calibration's scores as many again.

A scope whose pods change is no evidence while the change settles: from a pod created or gone until a whole window
plus ``settle`` windows later, and beyond that while its windows stay over the threshold (the change's own shift
outlasting the minimum: a new pod warming up, the survivors of a scale-down taking its load) until a window plus
``settle_max`` windows have passed; a window under the threshold meanwhile is evidence, and a shift that outlives the
longest settling is evidence. The telemetry of a window reaches back further than the window (rate() intervals), a
new pod starts cold and the survivors of a scale-down take its load: a benign rollout's settling period is neither a
fault (a broken change shows in pod states) nor a healthy state to learn. A scope whose pods were *all* replaced
between two reads (the namespace recreated, the app redeployed) is a new deployment: its baseline and calibration
restart, since the old ones describe pods and counters that no longer exist.

``localise(scope, until)`` is for the diagnoser, which keeps no state: it reads a stretch of history ending at
``until``, takes the windows before the incident's lead time as the healthy reference, and ranks the services of the
last window by the call-graph walk over their shifts.

The calibrations are kept in a file (``save_calibrations``/``load_calibrations``) when the settings name one, so a
restarted detector neither raises nothing for a calibration period (a blind spot) nor calibrates during a fault that
began while it was down. What is read back is checked (size, shape, finite values) and refused whole when wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import OrderedDict, deque
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
CALIBRATION_KEEP = 240
"""Healthy scores kept per scope for its threshold (an hour at the default 15 s stride)."""
CALIBRATION_QUANTILE = 0.95
LEARN_STRIDE = 0.9
"""A window is separate healthy evidence when it ends at least this fraction of a stride after the last one that was
(the fraction absorbs the probe's jitter)."""
MAX_SCOPES = 256
"""Scopes whose state is kept; the one observed least recently is forgotten first (and calibrates again)."""
MAX_STATE_BYTES = 2 * 1024 * 1024
"""The largest calibration file read back (256 scopes of 240 scores take about 1.2 MB)."""
STATE_VERSION = 1
SAVE_EVERY_S = 30.0


class CalibrationStateError(ValueError):
    """A calibration file that cannot be trusted (too large, not JSON, wrong shape or values)."""


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
    threshold: float | None = None
    """The scope's own threshold on the rule's statistic (``Detector.statistic``) after this window."""
    calibrating: bool = False
    """The scope has too few healthy windows for its own threshold yet, so it raises nothing."""

    def evidence(self, top: int = 3) -> str:
        shifted = ", ".join(f"{r.service} ({r.shift:.1f})" for r in self.ranking[:top])
        prob = f", p(fault) {self.probability:.2f}" if self.probability is not None else ""
        missing = f"; no {', '.join(self.missing)}" if self.missing else ""
        return f"state embedding: anomaly {self.score:.1f}{prob}; most shifted: {shifted or 'none'}{missing}"


@dataclass
class Calibration:
    """One scope's threshold and hysteresis (see the module docstring). ``value`` is the detection rule's statistic:
    0 is normal and larger is worse, without bound, so that a margin can multiply it."""

    windows: int
    """Healthy windows needed before the scope may raise."""
    margin: float
    persist: int = 3
    clear: int = 2
    release: float = 0.8
    """A raised scope counts a window as under its threshold when it is under ``release`` times it."""
    quantile: float = CALIBRATION_QUANTILE
    span: float = 0.0
    """Seconds a run over the threshold must last, besides ``persist`` windows, before the scope raises (the window
    length: overlapping windows all see one short burst, so only a run whose last window no longer overlaps its
    first is more than one burst)."""
    warmup: float = 0.0
    """Seconds of telemetry the healthy scores must cover before the scope may raise, besides ``windows`` of them
    (from the first scored window's start to the last one's end): a quantile of scores read in quick succession over
    one stretch of telemetry knows nothing of the scope's other loads."""
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=CALIBRATION_KEEP))
    first: float | None = None
    """The end of the first healthy window scored."""
    latest: float | None = None
    """The end of the last healthy window scored."""
    restored: bool = False
    """The scores came back from the state file: they covered their warm-up when they were saved."""
    pending: list[float] = field(default_factory=list)
    """Scores of the current run over the threshold, learnt if the run ends before the scope raises."""
    over: int = 0
    under: int = 0
    raised: bool = False
    since: float | None = None
    """When the current run over the threshold began (its first window's end)."""

    @property
    def covered(self) -> float:
        """Seconds of telemetry the healthy scores cover (the scored windows' ends, plus one window)."""
        if self.first is None or self.latest is None:
            return 0.0
        return self.latest - self.first + self.span

    @property
    def ready(self) -> bool:
        return len(self.scores) >= self.windows and (self.restored or self.covered >= self.warmup)

    def restore(self, scores: list[float]) -> None:
        if scores:
            self.scores.extend(scores)
            self.restored = True

    def _learn(self, values: list[float], at: float | None) -> None:
        self.scores.extend(values)
        if at is not None and values:
            self.first = at if self.first is None else self.first
            self.latest = at

    def threshold(self, floor: float) -> float:
        if not self.scores:
            return floor
        return max(floor, float(np.quantile(np.asarray(self.scores), self.quantile)) * self.margin)

    def step(
        self, value: float | None, floor: float, *, healthy: bool, at: float | None = None, learn: bool = True
    ) -> bool:
        """Take one window's statistic (None: the window is no evidence either way, e.g. no telemetry or a changing
        scope) at ``at`` (the window's end); return whether the scope raises. ``learn`` False: the window may raise
        but is no new healthy score (it was read less than a stride after the last one learnt)."""
        if value is None:
            self.over, self.pending = 0, []
            return self.raised
        if not self.ready:  # calibrating: raises nothing, learns every healthy window
            if healthy and learn:
                self._learn([value], at)
            return False
        threshold = self.threshold(floor)
        over = value > (threshold * self.release if self.raised else threshold)
        if over:
            self.over, self.under = self.over + 1, 0
            if self.over == 1:
                self.since = at
            if not self.raised and healthy:
                self.pending.append(value)
            lasted = self.span <= 0 or at is None or self.since is None or at - self.since >= self.span
            if self.over >= self.persist and lasted:
                self.raised, self.pending = True, []
        else:
            self.over, self.under = 0, self.under + 1
            if self.raised and self.under >= self.clear:
                self.raised = False
            if not self.raised and healthy and value <= threshold:
                self._learn([*self.pending, value] if learn else self.pending, at)
            self.pending = []
        if not healthy:
            self.pending = []
        return self.raised


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
    """The embedding of the last window assessed (joins the healthy set when the window is learnt)."""
    calibration: Calibration | None = None
    pods: frozenset[str] = frozenset()
    """The scope's pods at the last read that listed any."""
    changed_at: float | None = None
    """When the scope's pods last changed (the newest pod's creation, or a read that found a pod gone)."""
    changes: set[str] = field(default_factory=set)
    """Pods created or gone in the current change (reported in ``Assessment.changing``)."""
    sampled_at: float | None = None
    """The end of the last window that counted as separate healthy evidence (the next one ends a stride later)."""


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

    def _head(self, probability: float | None) -> bool:
        return probability is not None and self.kind in ("head", "state_heads")

    def statistic(self, score: float, probability: float | None) -> float:
        """What the rule compares with its threshold, on a scale where 0 is normal and larger is worse without bound
        (so that a scope's calibration can multiply it by a margin): the distance, or the head's odds of a fault."""
        return _odds(probability) if probability is not None and self._head(probability) else max(score, 0.0)

    def floor(self, probability: float | None) -> float:
        """The artefact's threshold on ``statistic``'s scale."""
        if self._head(probability):
            return _odds(self.thresholds.get(self.kind, 0.5))
        return self.thresholds.get("distance", 3.0)

    def anomalous(self, score: float, probability: float | None) -> bool:
        return self.statistic(score, probability) > self.floor(probability)


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
        clear: int = 2,
        calibration: int = 8,
        calibration_margin: float = 1.25,
        release: float = 0.8,
        settle: float = 1.0,
        settle_max: float = 3.0,
        warmup: float = 0.0,
        max_scopes: int = MAX_SCOPES,
        state_file: Path | None = None,
    ) -> None:
        self.reader, self.encoder = reader, encoder
        self.window_s, self.stride_s = window_s, stride_s
        self.text = text
        self.clock = clock
        self.min_baseline = min_baseline
        self.history_windows = history_windows
        self.persist, self.clear = max(1, persist), max(1, clear)
        self.calibration, self.calibration_margin = max(1, calibration), max(1.0, calibration_margin)
        self.release = min(max(release, 0.0), 1.0)
        self.settle_s = max(settle, 0.0) * window_s
        """After a pod change, windows ending within ``window_s + settle_s`` of it are no evidence."""
        self.settle_max_s = max(settle_max * window_s, self.settle_s)
        """... nor later ones still over the threshold, until one is under it or ``window_s + settle_max_s`` passed."""
        self.warmup_s = max(warmup, 0.0) * window_s
        """Seconds of healthy telemetry the baseline must cover, then the calibration's scores as many again."""
        self.max_scopes = max(1, max_scopes)
        self.state_file = state_file
        self.saved_at: float | None = None
        self.restored: dict[str, list[float]] = {}
        """Calibration scores read back from ``state_file``, given to each scope when it is first observed."""
        self.rule = Detector(encoder)
        self.scopes: OrderedDict[str, _Scope] = OrderedDict()
        self.tasks: dict[str, asyncio.Task[Assessment | None]] = {}
        """The background read of each scope (``hooks.with_embedding``)."""

    @classmethod
    def load(cls, reader: TelemetryReader, model: Path | None = None, **kwargs: object) -> StateEmbedding:
        encoder = Encoder.load(model or DEFAULT_MODEL)
        return cls(reader, encoder, text=default_embedder(), **kwargs)  # type: ignore[arg-type]

    def calibrations(self) -> dict[str, list[float]]:
        """Every scope's healthy scores (what ``save_calibrations`` writes)."""
        out = dict(self.restored)
        for name, st in self.scopes.items():
            if st.calibration is not None and st.calibration.scores:
                out[name] = [round(v, 6) for v in st.calibration.scores]
        return dict(list(out.items())[-self.max_scopes :])

    def save_calibrations(self, path: Path | None = None) -> None:
        """Write the calibrations atomically (a temporary file renamed over the old one)."""
        path = path or self.state_file
        if path is None:
            return
        body = json.dumps({"version": STATE_VERSION, "scopes": self.calibrations()}, separators=(",", ":"))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, path)

    def load_calibrations(self, path: Path | None = None) -> int:
        """Read calibrations back (a missing file is a fresh start); raises ``CalibrationStateError`` for a file that
        cannot be trusted. Returns the number of scopes restored."""
        path = path or self.state_file
        if path is None or not path.exists():
            return 0
        self.restored = parse_calibrations(path, self.max_scopes)
        for name, scores in self.restored.items():
            st = self.scopes.get(name)
            if st is not None and st.calibration is not None:
                st.calibration.restore(scores)
        return len(self.restored)

    def _scope(self, scope: str, *, restart: bool = False) -> _Scope:
        st = self.scopes.get(scope)
        if st is None or restart:
            st = self.scopes[scope] = _Scope(
                chunks=deque(),
                baseline=Baseline(capacity=HEALTHY_KEEP, min_windows=self.min_baseline, min_span=self.warmup_s),
                templates=TemplateLookup(),
                healthy=deque(maxlen=HEALTHY_KEEP),
                tokens={},
                calibration=Calibration(
                    self.calibration,
                    self.calibration_margin,
                    persist=self.persist,
                    clear=self.clear,
                    release=self.release,
                    span=self.window_s,
                    warmup=self.warmup_s,
                ),
            )
            assert st.calibration is not None
            st.calibration.restore(self.restored.pop(scope, []))
            while len(self.scopes) > self.max_scopes:
                gone, _ = self.scopes.popitem(last=False)
                task = self.tasks.get(gone)
                if task is not None and task.done():
                    del self.tasks[gone]
        self.scopes.move_to_end(scope)
        return st

    async def observe(self, scope: str, healthy: bool) -> Assessment | None:
        """Read what arrived since the last call; None until a first whole window has been seen."""
        st = self._scope(scope)
        now = self.clock()
        if st.last_end is not None and now - st.last_end < self.stride_s * 0.5:
            return st.last
        start = now - self.window_s if st.last_end is None or now - st.last_end > self.window_s else st.last_end
        chunk = await self.reader.read(scope, start, now)
        st = self._track_pods(scope, st, chunk, now)
        st.chunks.append(chunk)
        st.last_end = now
        while st.chunks and st.chunks[0].end <= now - self.window_s + 1e-6:
            st.chunks.popleft()
        window = Telemetry.merge(list(st.chunks)).slice(now - self.window_s, now)
        wf = featurise(window, st.templates, window.services)
        assessment = self._assess(scope, st, wf, window.missing)
        cal = st.calibration
        assert cal is not None
        floor = self.rule.floor(assessment.probability)
        value = self.rule.statistic(assessment.score, assessment.probability) if assessment.ready else None
        # A window read less than a stride after the last one learnt shares most of its telemetry: it may raise, but
        # it is no separate healthy evidence (the baseline's and the calibration's windows are a stride apart).
        learn = st.sampled_at is None or now - st.sampled_at >= self.stride_s * LEARN_STRIDE
        if learn:
            st.sampled_at = now
        if self._settling(st, now, value, cal.threshold(floor)):
            # The pods changed within a window and the settling time (a rollout, a scale, a replaced pod): a changing
            # scope is neither evidence of a telemetry fault (a broken change shows in pod states) nor a healthy
            # state to learn.
            assessment.changing = sorted(st.changes)[:5]
            st.encoded, value = None, None
        elif value is not None:
            if healthy and learn and not cal.raised and value <= cal.threshold(floor):
                self._learn(st, wf)
        elif healthy and learn and not assessment.anomalous:
            self._learn(st, wf)  # the baseline is still filling
        was_ready, was_raised = cal.ready, cal.raised
        raised = cal.step(value, floor, healthy=healthy, at=now, learn=learn)
        if raised != was_raised:
            log.info(
                "state embedding: %s %s (statistic %s, threshold %.3f)",
                scope,
                "raises" if raised else "clears",
                "none" if value is None else f"{value:.3f}",
                cal.threshold(floor),
            )
        assessment.threshold = cal.threshold(floor)
        if value is not None and cal.over and not raised:
            log.info(
                "state embedding: %s over its threshold (statistic %.3f, threshold %.3f, %d in a row)",
                scope,
                value,
                assessment.threshold,
                cal.over,
            )
        assessment.calibrating = not cal.ready
        assessment.anomalous = raised and value is not None  # a changing scope or an outage is no evidence
        st.last = assessment
        log.debug(
            "state embedding %s: value %s, threshold %.3f, changing %s, calibration %d/%d, raised %s",
            scope,
            None if value is None else round(value, 3),
            assessment.threshold,
            assessment.changing,
            len(cal.scores),
            cal.windows,
            cal.raised,
        )
        due = self.saved_at is None or now - self.saved_at >= SAVE_EVERY_S
        if self.state_file is not None and cal.ready and (due or not was_ready):
            self.saved_at = now
            try:
                self.save_calibrations()
            except OSError as exc:
                log.warning("could not save the embedding's calibrations to %s (%r)", self.state_file, exc)
        return assessment

    def _settling(self, st: _Scope, now: float, value: float | None, threshold: float) -> bool:
        """Whether a window is part of the scope's last pod change: every window for a window and the settling time
        after it, then until a window and ``settle_max_s`` after it the windows over the threshold (the change's own
        shift: a new pod warming up, a scale-down's survivors taking the load); those under it are evidence again."""
        if st.changed_at is None:
            return False
        since = now - st.changed_at
        if since < self.window_s + self.settle_s:
            return True
        return since < self.window_s + self.settle_max_s and value is not None and value > threshold

    def _track_pods(self, scope: str, st: _Scope, chunk: Telemetry, now: float) -> _Scope:
        """Note the pods' changes since the last read; a scope whose pods were all replaced starts again."""
        pods = frozenset(name for _, name in chunk.pods_created)
        if not pods:  # no pods listed (the API down, or no logs source): nothing known about changes
            return st
        if st.pods and not pods & st.pods:
            log.info(
                "state embedding: every pod of %s was replaced (%d -> %d pods); its baseline and calibration restart",
                scope,
                len(st.pods),
                len(pods),
            )
            st = self._scope(scope, restart=True)
        if st.changed_at is None or now - st.changed_at >= self.window_s + self.settle_max_s:
            st.changes = set()
        gone = st.pods - pods
        fresh = {name for t, name in chunk.pods_created if now - t < self.window_s + self.settle_s}
        if st.pods:
            fresh -= st.pods  # a pod seen before is no change now
        if gone:
            st.changed_at = now
        if fresh:
            newest = max(t for t, name in chunk.pods_created if name in fresh)
            st.changed_at = newest if st.changed_at is None else max(st.changed_at, newest)
        st.changes |= gone | fresh
        st.pods = pods
        return st

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


def parse_calibrations(path: Path, max_scopes: int = MAX_SCOPES) -> dict[str, list[float]]:
    """The calibrations in ``path``, checked whole: bounded size, the expected version and shape, at most
    ``max_scopes`` scopes of at most ``CALIBRATION_KEEP`` finite, non-negative scores."""

    def refuse(why: str) -> CalibrationStateError:
        return CalibrationStateError(
            f"refused the embedding's calibration file {path}: {why}; delete it (or set "
            "STRATUS_EMBEDDING_STATE_FILE to another path) and the scopes calibrate again"
        )

    size = path.stat().st_size
    if size > MAX_STATE_BYTES:
        raise refuse(f"{size} bytes, more than {MAX_STATE_BYTES}")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise refuse(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("scopes"), dict):
        raise refuse(f"not a version {STATE_VERSION} calibration object")
    scopes: dict[str, object] = data["scopes"]
    if len(scopes) > max_scopes:
        raise refuse(f"{len(scopes)} scopes, more than {max_scopes}")
    out: dict[str, list[float]] = {}
    for name, scores in scopes.items():
        if len(name) > 253 or not isinstance(scores, list) or len(scores) > CALIBRATION_KEEP:
            raise refuse(f"scope {name[:60]!r} is not a list of at most {CALIBRATION_KEEP} scores")
        good = [
            float(v)
            for v in scores
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        ]
        if len(good) != len(scores):
            raise refuse(f"scope {name[:60]!r} has scores that are not finite non-negative numbers")
        out[name] = good
    return out


def _odds(p: float) -> float:
    p = min(max(p, 0.0), 1.0 - 1e-9)
    return p / (1.0 - p)


def _stack(rows: deque[np.ndarray] | None) -> np.ndarray | None:
    return np.stack(list(rows)) if rows else None
