"""Raw runtime telemetry of one scope over a time span, as the three production sources give it.

- Metrics: Prometheus's HTTP API (``/api/v1/query_range``), one configured PromQL query per signal; each query
  returns one series per service (the label named in the query's definition).
- Traces: a Jaeger-compatible query API (``/api/services``, ``/api/traces``).
- Logs: pod logs from the Kubernetes API (``sinceTime`` + ``timestamps=true``).

Everything is reduced at once to small typed records (``SeriesRecord``, ``SpanRecord``, ``LogRecord``) with times in
epoch seconds and services named after their *workload* (the Deployment/StatefulSet that owns the pod), so that the
three modalities agree on who is who. Pod names map to workloads through the pods' owner references (exact: a
ReplicaSet is named ``<deployment>-<pod-template-hash>``); a pod that has gone falls back to the naming rule.

Every input is bounded (points per series, spans, log lines and line length); anything malformed is skipped, never
raised: a half-broken telemetry source degrades a modality, it does not stop detection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from stratus.reasoners.bootstrap import _tags, is_error

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_POINTS = 2_000
MAX_SPANS = 50_000
MAX_LOG_LINES = 20_000
MAX_LINE_CHARS = 1_000
MAX_SERVICES = 200

_RS_HASH = re.compile(r"^(?P<base>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")
_STS_ORDINAL = re.compile(r"^(?P<base>.+)-\d+$")
_BARE_POD = re.compile(r"^(?P<base>.+)-[a-z0-9]{5}$")


@dataclass(frozen=True)
class SeriesRecord:
    signal: str
    """The configured query's name (e.g. ``requests``)."""
    service: str
    points: tuple[tuple[float, float], ...]
    """(epoch seconds, value), oldest first; NaN and infinite samples dropped."""


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start: float
    """Epoch seconds."""
    duration: float
    """Seconds."""
    error: bool
    kind: str = ""


@dataclass(frozen=True)
class LogRecord:
    time: float
    service: str
    pod: str
    text: str


@dataclass
class Telemetry:
    """What the sources returned for ``[start, end)``."""

    start: float
    end: float
    series: list[SeriesRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    """Workloads of the scope known from the Kubernetes API (may be empty)."""
    missing: list[str] = field(default_factory=list)
    """Modalities whose source failed or is not configured: ``metrics``, ``traces``, ``logs``."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Tracer service names -> workloads (learnt from the traces' pods), for metrics labelled by tracer name."""
    pods_created: list[tuple[float, str]] = field(default_factory=list)
    """(creation time, pod) of the scope's pods, from the Kubernetes API: pods created inside a window mean the
    scope was changing (a rollout, a scale-up, a replaced pod) during it."""

    def slice(self, start: float, end: float) -> Telemetry:
        """The part of this telemetry inside ``[start, end)``."""
        series = []
        for s in self.series:
            pts = tuple(p for p in s.points if start <= p[0] < end)
            if pts:
                series.append(SeriesRecord(s.signal, s.service, pts))
        return Telemetry(
            start=start,
            end=end,
            series=series,
            spans=[s for s in self.spans if start <= s.start < end],
            logs=[r for r in self.logs if start <= r.time < end],
            services=list(self.services),
            missing=list(self.missing),
            aliases=dict(self.aliases),
            pods_created=[p for p in self.pods_created if start <= p[0] < end],
        )

    def to_json(self) -> Obj:
        return {
            "start": self.start,
            "end": self.end,
            "services": self.services,
            "missing": self.missing,
            "aliases": self.aliases,
            "series": [[s.signal, s.service, [list(p) for p in s.points]] for s in self.series],
            "spans": [
                [s.trace_id, s.span_id, s.parent_id, s.service, s.operation, s.start, s.duration, s.error, s.kind]
                for s in self.spans
            ],
            "logs": [[r.time, r.service, r.pod, r.text] for r in self.logs],
        }

    @classmethod
    def from_json(cls, doc: Obj) -> Telemetry:
        return cls(
            start=float(doc["start"]),
            end=float(doc["end"]),
            services=[str(s) for s in doc.get("services") or []],
            missing=[str(m) for m in doc.get("missing") or []],
            aliases={str(k): str(v) for k, v in (doc.get("aliases") or {}).items()},
            series=[
                SeriesRecord(str(sig), str(svc), tuple((float(t), float(v)) for t, v in pts))
                for sig, svc, pts in doc.get("series") or []
            ],
            spans=[
                SpanRecord(
                    str(a), str(b), None if c is None else str(c), str(d), str(e), float(f), float(g), bool(h), i
                )
                for a, b, c, d, e, f, g, h, i in doc.get("spans") or []
            ],
            logs=[LogRecord(float(t), str(svc), str(pod), str(text)) for t, svc, pod, text in doc.get("logs") or []],
        )

    @staticmethod
    def merge(parts: Sequence[Telemetry]) -> Telemetry:
        """Consecutive chunks into one (series of the same signal and service are joined)."""
        if not parts:
            return Telemetry(0.0, 0.0)
        joined: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for p in parts:
            for s in p.series:
                joined.setdefault((s.signal, s.service), []).extend(s.points)
        series = [SeriesRecord(sig, svc, tuple(sorted(set(pts)))) for (sig, svc), pts in joined.items()]
        seen: set[tuple[str, str]] = set()
        spans = []
        for p in parts:
            for sp in p.spans:
                if (sp.trace_id, sp.span_id) not in seen:
                    seen.add((sp.trace_id, sp.span_id))
                    spans.append(sp)
        services = sorted({s for p in parts for s in p.services})
        missing = sorted({m for p in parts for m in p.missing})
        logs = [r for p in parts for r in p.logs]
        aliases = {k: v for p in parts for k, v in p.aliases.items()}
        created = sorted({c for p in parts for c in p.pods_created})
        return Telemetry(
            min(p.start for p in parts),
            max(p.end for p in parts),
            series,
            spans,
            logs,
            services,
            missing,
            aliases,
            created,
        )


def span_dict(s: SpanRecord) -> Obj:
    return asdict(s)


# ---------------------------------------------------------------------------------------------------- identities


class Workloads:
    """Pod name -> workload name, from the pods' owner references (exact) or the naming rule (fallback)."""

    def __init__(self, pods: Iterable[Obj] = ()) -> None:
        self.by_pod: dict[str, str] = {}
        self.workloads: set[str] = set()
        for pod in pods:
            meta = pod.get("metadata") or {}
            name = str(meta.get("name") or "")
            if not name:
                continue
            workload = owner_workload(pod) or workload_of(name)
            self.by_pod[name] = workload
            self.workloads.add(workload)

    def of(self, pod: str) -> str:
        return self.by_pod.get(pod) or workload_of(pod)


def owner_workload(pod: Obj) -> str | None:
    """The workload that owns a pod: a ReplicaSet ``<deployment>-<pod-template-hash>`` names its Deployment; a
    StatefulSet, DaemonSet or Job owns the pod directly."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or []:
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if not name:
            continue
        if kind == "ReplicaSet":
            h = labels.get("pod-template-hash")
            if h and name.endswith(f"-{h}"):
                return name[: -len(h) - 1]
            return name
        return name
    return None


def workload_of(pod: str) -> str:
    """The usual shapes of generated pod names: ``<deploy>-<rs hash>-<suffix>``, ``<sts>-<n>``, ``<ds>-<suffix>``."""
    for pattern in (_RS_HASH, _STS_ORDINAL, _BARE_POD):
        m = pattern.match(pod)
        if m:
            return m.group("base")
    return pod


# ------------------------------------------------------------------------------------------------------ metrics


class MetricQuery(BaseModel):
    """One signal read from Prometheus: a PromQL expression that returns one series per service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="The signal's name in features and explanations (e.g. requests, errors, p95).")
    query: str = Field(
        description="PromQL; ``$scope`` is replaced by the namespace and ``$rate`` by the rate interval (e.g. 1m)."
    )
    label: str = Field(default="service", description="The label that names the service of each returned series.")
    label_is_pod: bool = Field(
        default=False, description="True when that label holds a pod name (mapped to its workload)."
    )


class PrometheusSource:
    """``/api/v1/query_range`` for each configured query over a span of time."""

    def __init__(
        self, url: str, queries: Sequence[MetricQuery], *, rate: str = "1m", http: httpx.AsyncClient | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.queries = list(queries)
        self.rate = rate
        self.http = http or httpx.AsyncClient(timeout=10.0)

    async def fetch(
        self, scope: str, start: float, end: float, step: float, workloads: Workloads
    ) -> list[SeriesRecord]:
        results = await asyncio.gather(*(self._one(q, scope, start, end, step, workloads) for q in self.queries))
        return [s for r in results for s in r]

    async def _one(
        self, q: MetricQuery, scope: str, start: float, end: float, step: float, workloads: Workloads
    ) -> list[SeriesRecord]:
        promql = q.query.replace("$scope", scope).replace("$rate", self.rate)
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{max(step, 0.001):.3f}"}
        resp = await self.http.get(f"{self.url}/api/v1/query_range", params=params)
        resp.raise_for_status()
        return parse_matrix(q, resp.json(), workloads)

    async def aclose(self) -> None:
        await self.http.aclose()


def parse_matrix(q: MetricQuery, doc: Any, workloads: Workloads) -> list[SeriesRecord]:
    """A Prometheus matrix result -> one record per service (series of the same service are summed)."""
    result = ((doc or {}).get("data") or {}).get("result") if isinstance(doc, dict) else None
    if not isinstance(result, list):
        return []
    per_service: dict[str, dict[float, float]] = {}
    for item in result[:MAX_SERVICES]:
        if not isinstance(item, dict):
            continue
        labels = item.get("metric") or {}
        name = labels.get(q.label) if isinstance(labels, dict) else None
        if not isinstance(name, str) or not name:
            continue
        service = workloads.of(name) if q.label_is_pod else name
        acc = per_service.setdefault(service, {})
        for pair in (item.get("values") or [])[:MAX_POINTS]:
            try:
                t, v = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(t) and math.isfinite(v):
                acc[t] = acc.get(t, 0.0) + v
    return [SeriesRecord(q.name, svc, tuple(sorted(pts.items()))) for svc, pts in per_service.items() if pts]


# ------------------------------------------------------------------------------------------------------- traces


class JaegerSource:
    """Traces of a time span from a Jaeger-compatible query API, reduced to ``SpanRecord``s."""

    def __init__(self, url: str, *, limit: int = 1_500, http: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.limit = limit
        self.http = http or httpx.AsyncClient(timeout=10.0)

    async def fetch(
        self, scope: str, start: float, end: float, workloads: Workloads, aliases: dict[str, str] | None = None
    ) -> list[SpanRecord]:
        """Spans of the scope's traces in ``[start, end)``; ``aliases`` collects tracer name -> workload."""
        resp = await self.http.get(f"{self.url}/api/services")
        resp.raise_for_status()
        services = [s for s in (resp.json().get("data") or []) if isinstance(s, str)][:MAX_SERVICES]
        traces: dict[str, Obj] = {}
        for service in services:
            params = {
                "service": service,
                "start": str(int(start * 1e6)),
                "end": str(int(end * 1e6)),
                "limit": str(self.limit),
            }
            r = await self.http.get(f"{self.url}/api/traces", params=params)
            if r.status_code != 200:
                continue
            for t in r.json().get("data") or []:
                if isinstance(t, dict) and t.get("traceID") is not None:
                    traces.setdefault(str(t["traceID"]), t)
        spans: list[SpanRecord] = []
        for t in traces.values():
            spans.extend(parse_trace(t, scope, workloads, aliases))
            if len(spans) >= MAX_SPANS:
                break
        return spans[:MAX_SPANS]

    async def aclose(self) -> None:
        await self.http.aclose()


def parse_trace(
    trace: Obj, scope: str | None, workloads: Workloads, aliases: dict[str, str] | None = None
) -> list[SpanRecord]:
    """A Jaeger trace -> span records of ``scope`` (processes tagged with another namespace are left out)."""
    processes = trace.get("processes") or {}
    out: list[SpanRecord] = []
    for span in trace.get("spans") or []:
        if not isinstance(span, dict):
            continue
        proc = processes.get(span.get("processID")) or span.get("process") or {}
        if not isinstance(proc, dict):
            continue
        ptags = _tags(proc.get("tags"))
        ns = ptags.get("k8s.namespace.name")
        if scope and ns and ns != scope:
            continue
        host = ptags.get("hostname") or ptags.get("k8s.pod.name")
        tracer = str(proc.get("serviceName") or "?")
        service = workloads.of(str(host)) if host else tracer
        if aliases is not None and host and len(aliases) < MAX_SERVICES:
            aliases.setdefault(tracer[:200], service)
        parent = None
        for ref in span.get("references") or []:
            if isinstance(ref, dict) and ref.get("spanID"):
                parent = str(ref["spanID"])
                break
        tags = _tags(span.get("tags"))
        try:
            start, duration = int(span.get("startTime") or 0) / 1e6, int(span.get("duration") or 0) / 1e6
        except (TypeError, ValueError):
            continue
        out.append(
            SpanRecord(
                trace_id=str(span.get("traceID") or trace.get("traceID")),
                span_id=str(span.get("spanID")),
                parent_id=parent or (str(span["parentSpanID"]) if span.get("parentSpanID") else None),
                service=service[:200],
                operation=str(span.get("operationName") or "")[:200],
                start=start,
                duration=max(duration, 0.0),
                error=is_error(span),
                kind=str(tags.get("span.kind") or ""),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------------- logs


class KubeApiLike(Protocol):
    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, raw: bool = False) -> Any:
        """One request to the Kubernetes API (``stratus.gateway.KubeApi``)."""
        ...

    def items(self, kind: str, namespace: str | None) -> list[Obj]:
        """Objects of a kind."""
        ...

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """The REST path of an object."""
        ...


class KubeLogSource:
    """Pods of the scope (for the workload map) and their containers' log lines since a time."""

    def __init__(self, api: KubeApiLike, *, limit_bytes: int = 256_000) -> None:
        self.api = api
        self.limit_bytes = limit_bytes

    async def pods(self, scope: str) -> list[Obj]:
        pods: list[Obj] = await asyncio.to_thread(self.api.items, "Pod", scope)
        return pods[: MAX_SERVICES * 5]

    async def fetch(
        self, scope: str, pods: list[Obj], start: float, end: float, workloads: Workloads
    ) -> list[LogRecord]:
        since = datetime.fromtimestamp(math.floor(start), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        jobs = []
        for pod in pods:
            meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
            status = pod.get("status") or {}
            started = {
                cs.get("name") for cs in status.get("containerStatuses") or [] if cs.get("state", {}).get("running")
            }
            for c in spec.get("containers") or []:
                if c.get("name") in started:
                    jobs.append((str(meta.get("name")), str(c.get("name"))))
        results = await asyncio.gather(
            *(asyncio.to_thread(self._read, scope, pod, container, since) for pod, container in jobs),
            return_exceptions=True,
        )
        out: list[LogRecord] = []
        for (pod_name, _), text in zip(jobs, results, strict=True):
            if not isinstance(text, str):
                continue
            out.extend(parse_log_lines(text, workloads.of(pod_name), pod_name, start, end))
            if len(out) >= MAX_LOG_LINES:
                break
        return out[:MAX_LOG_LINES]

    def _read(self, scope: str, pod: str, container: str, since: str) -> str:
        query = [
            ("container", container),
            ("timestamps", "true"),
            ("sinceTime", since),
            ("limitBytes", str(self.limit_bytes)),
        ]
        text: str = self.api.request("GET", self.api.path("Pod", scope, pod, "log"), query=query, raw=True)
        return text


def parse_log_lines(text: str, service: str, pod: str, start: float, end: float) -> list[LogRecord]:
    """Lines of ``kubectl logs --timestamps`` inside ``[start, end)``. A stamp without a fraction of a second is taken
    as the middle of its second, so consecutive spans of time each get a line exactly once."""
    out = []
    for line in text.splitlines()[:MAX_LOG_LINES]:
        stamp, _, rest = line.partition(" ")
        t = parse_time(stamp)
        if t is None:
            continue
        if "." not in stamp:
            t += 0.5
        if start <= t < end:
            out.append(LogRecord(t, service, pod, rest[:MAX_LINE_CHARS]))
    return out


def pod_creations(pods: list[Obj]) -> list[tuple[float, str]]:
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        t = parse_time(str(meta.get("creationTimestamp") or ""))
        if t is not None:
            out.append((t, str(meta.get("name") or "")))
    return sorted(out)


def parse_time(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def dumps(t: Telemetry) -> str:
    return json.dumps(t.to_json(), separators=(",", ":"))


class TelemetryReader:
    """The three sources together; a source that is not configured or fails marks its modality missing."""

    def __init__(
        self,
        *,
        prometheus: PrometheusSource | None = None,
        jaeger: JaegerSource | None = None,
        logs: KubeLogSource | None = None,
        step: float = 15.0,
    ) -> None:
        self.prometheus, self.jaeger, self.logs, self.step = prometheus, jaeger, logs, step

    async def read(self, scope: str, start: float, end: float) -> Telemetry:
        out = Telemetry(start, end)
        pods: list[Obj] = []
        if self.logs is not None:
            try:
                pods = await self.logs.pods(scope)
            except Exception as exc:  # the API may be down; the other modalities still count
                log.warning("embedding: pods of %s unavailable: %r", scope, exc)
        workloads = Workloads(pods)
        out.services = sorted(workloads.workloads)
        out.pods_created = pod_creations(pods)
        if self.prometheus is None:
            out.missing.append("metrics")
        else:
            try:
                out.series = await self.prometheus.fetch(scope, start, end, self.step, workloads)
            except Exception as exc:
                log.warning("embedding: metrics of %s unavailable: %r", scope, exc)
                out.missing.append("metrics")
        if self.jaeger is None:
            out.missing.append("traces")
        else:
            try:
                out.spans = await self.jaeger.fetch(scope, start, end, workloads, out.aliases)
            except Exception as exc:
                log.warning("embedding: traces of %s unavailable: %r", scope, exc)
                out.missing.append("traces")
        if self.logs is None or not pods:
            out.missing.append("logs")
        else:
            try:
                out.logs = await self.logs.fetch(scope, pods, start, end, workloads)
            except Exception as exc:
                log.warning("embedding: logs of %s unavailable: %r", scope, exc)
                out.missing.append("logs")
        return out

    async def aclose(self) -> None:
        for src in (self.prometheus, self.jaeger):
            if src is not None:
                await src.aclose()
