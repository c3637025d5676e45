"""The two places the state embedding enters the loop, kept small so the services only call them.

- ``with_embedding(severity)``: never waits for telemetry (the scope's next window is read in the background; the
  last finished assessment counts). The detector's mu gains one SLO-violation term (``w2 * weight``) while the scope's
  window looks anomalous, with the evidence line naming the most shifted services. The embedding learns its healthy
  baseline only from windows where mu is 0. Any failure of the embedding leaves mu as it was (logged): it can add
  evidence, never hide or break the other oracles.
- ``refine_diagnosis(diagnosis)``: the diagnoser's localisation gains the embedding's ranking (the call-graph walk
  over per-service shifts): it fills an empty localisation, otherwise it is appended after the reasoner's own
  components, with an evidence line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from stratus.contracts import DiagnosisReady, Severity
from stratus.embedding.runtime import Assessment, CalibrationStateError, StateEmbedding
from stratus.embedding.sources import PRESETS
from stratus.embedding.telemetry import (
    JaegerSource,
    KubeApiLike,
    KubeLogSource,
    MetricQuery,
    PrometheusSource,
    TelemetryReader,
)
from stratus.settings import EmbeddingSettings

log = logging.getLogger(__name__)
TOP = 3


def from_settings(
    settings: EmbeddingSettings, api: KubeApiLike | None, jaeger_url: str | None = None
) -> StateEmbedding:
    """The runtime the settings describe (raises ``ArtefactError`` for a bad model file, ``ValueError`` for bad
    metric queries)."""
    if settings.embedding_metric_queries is not None:
        queries = [MetricQuery.model_validate(q) for q in settings.embedding_metric_queries]
    else:
        preset = PRESETS.get(settings.embedding_metric_preset)
        if preset is None:
            known = ", ".join(sorted(PRESETS))
            raise ValueError(f"unknown STRATUS_EMBEDDING_METRIC_PRESET {settings.embedding_metric_preset!r}: {known}")
        queries = preset()
    prom = str(settings.embedding_prometheus_url) if settings.embedding_prometheus_url else None
    jaeger = str(settings.embedding_jaeger_url) if settings.embedding_jaeger_url else jaeger_url
    reader = TelemetryReader(
        prometheus=PrometheusSource(prom, queries, rate=settings.embedding_rate_interval) if prom else None,
        jaeger=JaegerSource(jaeger) if jaeger else None,
        logs=KubeLogSource(api) if api is not None and settings.embedding_logs else None,
        step=max(settings.embedding_stride_s / 15.0, 0.5),
    )
    model = Path(settings.embedding_model) if settings.embedding_model else None
    embedding = StateEmbedding.load(
        reader,
        model,
        window_s=settings.embedding_window_s,
        stride_s=settings.embedding_stride_s,
        min_baseline=settings.embedding_min_baseline,
        persist=settings.embedding_persist,
        clear=settings.embedding_clear,
        calibration=settings.embedding_calibration,
        calibration_margin=settings.embedding_calibration_margin,
        release=settings.embedding_clear_ratio,
        warmup=settings.embedding_warmup_windows,
        state_file=settings.embedding_state_file,
    )
    try:
        restored = embedding.load_calibrations()
    except CalibrationStateError as exc:
        log.error("%s", exc)  # calibrating again is safe: the embedding raises nothing until calibrated
    else:
        if restored:
            log.info("state embedding: calibrations of %d scopes restored", restored)
    return embedding


async def with_embedding(
    embedding: StateEmbedding, scope: str, severity: Severity, *, weight: float, w_violations: float
) -> Severity:
    if severity.crashed:
        return severity
    assessment = _latest(embedding, scope, healthy=severity.mu == 0)
    if assessment is None or not assessment.anomalous or weight == 0:
        return severity
    return severity.model_copy(
        update={
            "mu": severity.mu + w_violations * weight,
            "violations": [*severity.violations, assessment.evidence(TOP)],
        }
    )


def _latest(embedding: StateEmbedding, scope: str, healthy: bool) -> Assessment | None:
    """The last finished assessment of ``scope``; a new one is started in the background when none is running. The
    probe never waits for telemetry (a slow or dead source must not delay the other oracles)."""
    task = embedding.tasks.get(scope)
    if task is not None and task.done():
        exc = task.exception() if not task.cancelled() else None
        if exc is not None:
            log.warning("state embedding of %s failed (%r); mu without it", scope, exc)
    if task is None or task.done():
        embedding.tasks[scope] = asyncio.create_task(embedding.observe(scope, healthy=healthy))
    return embedding.last(scope)


async def refine_diagnosis(embedding: StateEmbedding, scope: str, diagnosis: DiagnosisReady) -> DiagnosisReady:
    try:
        ranking = await embedding.localise(scope)
    except Exception:
        log.exception("state-embedding localisation of %s failed; the diagnosis stays as it was", scope)
        return diagnosis
    top = [r for r in ranking if r.shift > 0][:TOP]
    if not top:
        return diagnosis
    line = "state embedding: most shifted on the call graph: " + ", ".join(f"{r.service} ({r.shift:.1f})" for r in top)
    localisation = list(diagnosis.localisation)
    localisation += [r.service for r in top if r.service not in localisation]
    return diagnosis.model_copy(update={"localisation": localisation, "evidence": [*diagnosis.evidence, line]})
