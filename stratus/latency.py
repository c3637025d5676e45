"""Latency regressions from traces: each service's latest requests against what it took while its scope was healthy.

Why: a fault that only slows a service down (a busy loop, forced garbage collections, CPU throttling) leaves every
pod Ready and every probe answering 2xx under its budget, so no other oracle of mu sees it. Traces do: every request
leaves one *entry span* per service it crosses (a span whose parent is in another service, or none).

How it is shaped:

- **Latest, not a window.** A service's current latency is the median of its entry spans that started within
  ``burst_s`` of its newest one (the last round of requests), and only when that newest span is younger than
  ``window_s``. A fix then shows at the next requests: a whole window of old slow spans would make the coordinator
  see no improvement right after a good fix, and undo it.
- **Healthy reference, learned and persisted.** While a probe finds the scope at mu 0 (the detector calls ``learn``),
  each service's latest latency becomes one sample, at most one per ``learn_interval_s``; the reference is the median
  of the last ``max_samples``. The samples live in a JetStream KV bucket (one key per scope), so every detector and
  coordinator replica judges against the same reference and a restart forgets nothing. Learning only at mu 0 means a
  slow service never teaches itself that slow is normal (it is a violation, so mu is not 0).
- **A regression** is a latency over ``factor`` times the reference *and* at least ``min_delta_s`` over it: jitter
  of sub-millisecond spans is not a fault. A service with fewer than ``min_samples`` samples is not judged.
- **Hostile inputs.** Every read is bounded: services per scope, traces per service, spans per read, the bytes of a
  Jaeger answer and of a stored reference, the length of names. A source that fails or answers garbage adds nothing
  (logged): latency can add evidence to mu, never hide or break the other oracles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from stratus.embedding.telemetry import Workloads, parse_trace

log = logging.getLogger(__name__)

MAX_SERVICES = 60
"""Services read per scope (the rest are not judged)."""
MAX_TRACES = 20
"""Traces asked for per service and read."""
MAX_SPANS = 5_000
"""Spans read per scope and round."""
MAX_ANSWER_BYTES = 4_000_000
"""A Jaeger answer larger than this is dropped."""
MAX_NAME = 120
MAX_VIOLATIONS = 5
"""At most this many slow services count in mu (the slowest, by ratio to healthy)."""
MAX_STORED_BYTES = 64_000
CACHE_S = 1.0
"""Two reads of the same scope this close share one fetch."""

Obj = dict[str, Any]


@dataclass(frozen=True)
class LatencyPolicy:
    factor: float = 3.0
    min_delta_s: float = 0.025
    window_s: float = 30.0
    burst_s: float = 3.0
    min_samples: int = 3
    max_samples: int = 20
    learn_interval_s: float = 10.0


def entry_latencies(spans: list[tuple[str, str, str | None, float, float]]) -> dict[str, list[tuple[float, float]]]:
    """``(span_id, service, parent_id, start, duration)`` -> per service, ``(start, duration)`` of its entry spans
    (the parent is unknown or in another service)."""
    service_of = {span_id: service for span_id, service, _, _, _ in spans}
    out: dict[str, list[tuple[float, float]]] = {}
    for _span_id, service, parent, start, duration in spans:
        if parent is not None and service_of.get(parent) == service:
            continue
        out.setdefault(service, []).append((start, duration))
    return out


def latest_latency(
    entries: dict[str, list[tuple[float, float]]], now: float, policy: LatencyPolicy
) -> dict[str, float]:
    """Per service, the median duration of its last round of requests (see the module docstring)."""
    out: dict[str, float] = {}
    for service, rows in entries.items():
        if not rows:
            continue
        newest = max(start for start, _ in rows)
        if now - newest > policy.window_s:
            continue
        burst = [d for start, d in rows if newest - start <= policy.burst_s]
        out[service] = statistics.median(burst)
    return out


def regressions(current: dict[str, float], samples: dict[str, list[float]], policy: LatencyPolicy) -> list[str]:
    """Violation lines for the services slower than their healthy reference (the slowest first, at most
    ``MAX_VIOLATIONS``)."""
    found: list[tuple[float, str]] = []
    for service, took in current.items():
        history = samples.get(service) or []
        if len(history) < policy.min_samples:
            continue
        ref = statistics.median(history)
        if took > ref * policy.factor and took - ref >= policy.min_delta_s:
            ratio = took / ref if ref > 0 else float("inf")
            found.append(
                (ratio, f"latency: {service} {took * 1000:.0f}ms, healthy {ref * 1000:.1f}ms (x{min(ratio, 1e6):.0f})")
            )
    found.sort(key=lambda r: (-r[0], r[1]))
    return [line for _, line in found[:MAX_VIOLATIONS]]


def add_sample(
    samples: dict[str, list[float]], current: dict[str, float], policy: LatencyPolicy
) -> dict[str, list[float]]:
    """``samples`` with one more healthy sample per service of ``current`` (bounded per service and in services)."""
    out = {k: list(v) for k, v in samples.items()}
    for service, took in sorted(current.items()):
        if service not in out and len(out) >= MAX_SERVICES:
            continue
        out[service] = [*out.get(service, []), took][-policy.max_samples :]
    return out


class JaegerSpans:
    """The latest entry spans of a scope's services from a Jaeger-compatible query API (bounded reads)."""

    def __init__(self, url: str, http: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.AsyncClient(timeout=5.0)

    async def _json(self, path: str, params: dict[str, str]) -> Any:
        async with self.http.stream("GET", f"{self.url}{path}", params=params) as resp:
            if resp.status_code != 200:
                return None
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    return None
        return json.loads(body)

    async def entries(self, scope: str, since: float, until: float) -> dict[str, list[tuple[float, float]]]:
        doc = await self._json("/api/services", {"namespace": scope})
        data = doc.get("data") if isinstance(doc, dict) else None
        services = sorted({s[:MAX_NAME] for s in data or [] if isinstance(s, str) and s})[:MAX_SERVICES]
        params = {"start": str(int(since * 1e6)), "end": str(int(until * 1e6)), "limit": str(MAX_TRACES)}

        async def traces(service: str) -> list[Obj]:
            try:
                got = await self._json("/api/traces", {**params, "service": service, "namespace": scope})
            except (httpx.HTTPError, ValueError):
                return []
            rows = got.get("data") if isinstance(got, dict) else None
            return [t for t in rows or [] if isinstance(t, dict)][:MAX_TRACES]

        seen: dict[str, tuple[str, str, str | None, float, float]] = {}
        workloads = Workloads()
        for found in await asyncio.gather(*(traces(s) for s in services)):
            for trace in found:
                for span in parse_trace(trace, scope, workloads):
                    if len(seen) >= MAX_SPANS:
                        break
                    seen.setdefault(
                        span.span_id, (span.span_id, span.service, span.parent_id, span.start, span.duration)
                    )
        return entry_latencies(list(seen.values()))

    async def aclose(self) -> None:
        await self.http.aclose()


class SampleStore:
    """Healthy samples per scope in a JetStream KV bucket (one key per scope, JSON, at most ``MAX_STORED_BYTES``)."""

    def __init__(self, js: Any, bucket: str) -> None:
        self.js = js
        self.bucket = bucket
        self._kv: Any = None
        self._lock = asyncio.Lock()

    async def kv(self) -> Any:
        from nats.js import api as js_api

        from stratus.bus import key_value

        async with self._lock:
            if self._kv is None:
                config = js_api.KeyValueConfig(bucket=self.bucket, history=1, max_value_size=MAX_STORED_BYTES)
                self._kv = await key_value(self.js, config)
            return self._kv

    @staticmethod
    def key(scope: str) -> str:
        from stratus.bus import kv_key

        return kv_key(scope)

    async def get(self, scope: str) -> dict[str, list[float]]:
        from nats.js.errors import KeyNotFoundError, NotFoundError

        try:
            entry = await (await self.kv()).get(self.key(scope))
        except (KeyNotFoundError, NotFoundError):
            return {}
        return parse_samples(entry.value if entry else None)

    async def put(self, scope: str, samples: dict[str, list[float]]) -> bool:
        data = json.dumps(samples, sort_keys=True, separators=(",", ":")).encode()
        if len(data) > MAX_STORED_BYTES:
            log.warning("healthy latency of %s is over %d bytes: not recorded", scope, MAX_STORED_BYTES)
            return False
        await (await self.kv()).put(self.key(scope), data)
        return True


def parse_samples(raw: bytes | None) -> dict[str, list[float]]:
    """Stored samples, validated: anything malformed is dropped, never trusted."""
    if not raw or len(raw) > MAX_STORED_BYTES:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, list[float]] = {}
    for service, values in list(doc.items())[:MAX_SERVICES]:
        if not isinstance(service, str) or not isinstance(values, list):
            continue
        good = [float(v) for v in values[-100:] if isinstance(v, int | float) and 0 <= v < 3600]
        if good:
            out[service[:MAX_NAME]] = good
    return out


@dataclass
class LatencyOracle:
    """mu's latency term for the severity meter: ``violations(scope)`` and, from the detector, ``learn(scope)``."""

    spans: JaegerSpans
    store: SampleStore
    policy: LatencyPolicy = LatencyPolicy()
    clock: Any = time.time
    _cache: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    _learned: dict[str, float] = field(default_factory=dict)

    async def current(self, scope: str) -> dict[str, float]:
        now = self.clock()
        cached = self._cache.get(scope)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        entries = await self.spans.entries(scope, now - self.policy.window_s, now + 1)
        latest = latest_latency(entries, now, self.policy)
        self._cache[scope] = (now, latest)
        return latest

    async def violations(self, scope: str) -> list[str]:
        try:
            current, samples = await asyncio.gather(self.current(scope), self.store.get(scope))
        except Exception:
            log.warning("latency of %s not read; mu without it", scope, exc_info=True)
            return []
        return regressions(current, samples, self.policy)

    async def learn(self, scope: str) -> None:
        now = self.clock()
        if now - self._learned.get(scope, float("-inf")) < self.policy.learn_interval_s:
            return
        current = await self.current(scope)
        if not current:
            return
        before = await self.store.get(scope)
        samples = add_sample(before, current, self.policy)
        if await self.store.put(scope, samples):
            self._learned[scope] = now
            judged = sorted(s for s, v in samples.items() if len(v) == self.policy.min_samples)
            if judged and any(len(before.get(s, [])) < self.policy.min_samples for s in judged):
                log.info("latency of %s: %d service(s) judged from now on", scope, len(judged))

    async def aclose(self) -> None:
        await self.spans.aclose()


def bucket_name(stream_prefix: str) -> str:
    return f"{stream_prefix}_LATENCY"


def from_settings(settings: Any, js: Any) -> LatencyOracle | None:
    """The oracle the settings describe (``SeveritySettings`` plus the topology), or None when it is off or has no
    trace source."""
    if not settings.latency_slo_enabled:
        return None
    if not settings.jaeger_url:
        log.warning("STRATUS_LATENCY_SLO_ENABLED without STRATUS_JAEGER_URL: no latency term in mu")
        return None
    policy = LatencyPolicy(
        factor=settings.latency_factor,
        min_delta_s=settings.latency_min_delta_s,
        window_s=settings.latency_window_s,
        burst_s=settings.latency_burst_s,
        min_samples=settings.latency_min_samples,
        max_samples=settings.latency_max_samples,
        learn_interval_s=settings.latency_learn_interval_s,
    )
    return LatencyOracle(
        JaegerSpans(str(settings.jaeger_url)), SampleStore(js, bucket_name(settings.topology.stream_prefix)), policy
    )
