"""The bench's ``--embedding`` option: a real Prometheus scraping the arena, and the settings that switch the state
embedding on in the detector and the diagnoser, on the arena's compressed clock (the dataset's windows)."""

from __future__ import annotations

from arena.bench.embedding.plan import load_plan
from stratus.localinfra import LocalServer
from stratus.promstack import ensure_installed, start_prometheus


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


def embedding_warmup_s(fresh: bool, min_baseline: int = 6, calibration: int = 8) -> float:
    """How long the detector watches the healthy app before an injection: a whole window of clean telemetry (the
    bench's own recovery happened while the detector was paused), and the baseline's first windows and the scope's
    calibration windows when the services just started."""
    plan = load_plan()
    extra = (min_baseline + calibration) * plan.stride_s if fresh else 0.0
    return plan.window_s + plan.stride_s + extra
