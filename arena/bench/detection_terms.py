"""The detection terms that need more than the arena's probes, for the bench and the unseen harness alike.

- Operator SLO queries (``STRATUS_SLO_QUERIES`` with ``STRATUS_PROMETHEUS_URL``): a real Prometheus scrapes the app
  plane (``start_slo_prometheus``); the queries default to the examples in ``deploy/prometheus/slo-queries.yml``.
- The latency term (``STRATUS_LATENCY_SLO_ENABLED``): judged against the scope's healthy latency samples, so a run
  waits for them before its fault (``wait_latency``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import yaml

from stratus.lastgood import LastGoodStore
from stratus.lastgood import bucket_name as lastgood_bucket
from stratus.latency import SampleStore
from stratus.latency import bucket_name as latency_bucket
from stratus.localinfra import LocalServer
from stratus.promstack import REPO_ROOT, ensure_installed, start_prometheus

EXAMPLE_SLO_QUERIES = REPO_ROOT / "deploy" / "prometheus" / "slo-queries.yml"


def example_slo_queries() -> str:
    """The JSON of the example queries (``STRATUS_SLO_QUERIES``'s format: name -> PromQL)."""
    return json.dumps(yaml.safe_load(EXAMPLE_SLO_QUERIES.read_text())["queries"])


def start_slo_prometheus(plane_url: str, scrape_interval: str = "1s") -> LocalServer:
    """A Prometheus scraping the arena's app plane (installing the package first when it is missing)."""
    ensure_installed()
    return start_prometheus([plane_url.split("://", 1)[1]], scrape_interval=scrape_interval)


def slo_query_env(prometheus_url: str, queries: str | None = None) -> dict[str, str]:
    """The services' settings for the SLO queries against ``prometheus_url`` (the examples unless ``queries``)."""
    return {"STRATUS_PROMETHEUS_URL": prometheus_url, "STRATUS_SLO_QUERIES": queries or example_slo_queries()}


def latency_enabled(env: Mapping[str, str]) -> bool:
    """Whether these settings switch the latency term on (as the settings read a boolean)."""
    return env.get("STRATUS_LATENCY_SLO_ENABLED", "").strip().lower() in ("1", "true", "yes", "on")


async def wait_last_good(
    js: Any, scope: str, since: float, timeout: float = 15.0, stream_prefix: str = "STRATUS"
) -> bool:
    """Until the detector has recorded a healthy snapshot of the scope taken after ``since`` (Unix time): a fix that
    restores recorded content (code in a ConfigMap, a program a workload ran) needs it, and a fault injected before
    it would leave the record of the app as it was before this scenario's preparation, or none. False when none came
    within ``timeout`` (an app the detector never finds healthy): the scenario runs without it."""
    store = LastGoodStore(js, lastgood_bucket(stream_prefix))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await store.latest(scope)
        if snap is not None and snap.taken_at >= since:
            return True
        await asyncio.sleep(0.25)
    return False


async def wait_latency(js: Any, scope: str, timeout: float = 90.0, stream_prefix: str = "STRATUS") -> None:
    """Until the detector has recorded the scope's healthy latency samples (three of one service)."""
    store = SampleStore(js, latency_bucket(stream_prefix))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(len(v) >= 3 for v in (await store.get(scope)).values()):
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"no healthy latency samples of {scope} within {timeout:.0f}s")
