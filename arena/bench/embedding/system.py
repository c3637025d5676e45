"""The bench's ``--embedding`` option: a real Prometheus scraping the arena, and the settings that switch the state
embedding on in the detector and the diagnoser, on the arena's compressed clock (the dataset's windows)."""

from __future__ import annotations

from arena.bench.embedding.plan import load_plan
from stratus.localinfra import LocalServer
from stratus.promstack import ensure_installed, start_prometheus
from stratus.settings import EmbeddingSettings


def start_embedding_prometheus(plane_url: str) -> LocalServer:
    ensure_installed()
    plan = load_plan()
    return start_prometheus([plane_url.split("://", 1)[1]], scrape_interval=f"{plan.scrape_s:g}s")


def embedding_env(prometheus_url: str, plane_url: str) -> dict[str, str]:
    plan = load_plan()
    return {
        "STRATUS_EMBEDDING_ENABLED": "true",
        "STRATUS_EMBEDDING_PROMETHEUS_URL": prometheus_url,
        "STRATUS_EMBEDDING_JAEGER_URL": plane_url,
        "STRATUS_EMBEDDING_METRIC_PRESET": "arena",
        "STRATUS_EMBEDDING_RATE_INTERVAL": plan.rate_interval,
        "STRATUS_EMBEDDING_WINDOW_S": f"{plan.window_s:g}",
        "STRATUS_EMBEDDING_STRIDE_S": f"{plan.stride_s:g}",
    }


def embedding_warmup_s(fresh: bool) -> float:
    """How long the detector watches the healthy app before an injection: a whole window of clean telemetry (the
    bench's own recovery happened while the detector was paused), and when the services just started, the scope's
    warm-up: its baseline and then its calibration each cover ``embedding_warmup_windows`` windows of time and hold
    their count of windows a stride apart (the first window reaches back one window before the detector started)."""
    plan = load_plan()
    settings = EmbeddingSettings()
    extra = 0.0
    if fresh:
        by_time = 2 * max(settings.embedding_warmup_windows - 1, 0.0) * plan.window_s
        by_count = (settings.embedding_min_baseline + settings.embedding_calibration) * plan.stride_s
        extra = max(by_time, by_count) + plan.stride_s  # one more stride: the probe's reads are not aligned on it
    return plan.window_s + plan.stride_s + extra
