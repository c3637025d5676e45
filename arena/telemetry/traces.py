"""A bounded trace store that answers the Jaeger query API (the JSON the Jaeger UI and AIOpsLab's exporter read)."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any

from arena.behaviour.requests import Span

_LOOKBACK = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | None, default: float) -> float:
    if not text:
        return default
    m = _LOOKBACK.match(text.strip())
    if not m:
        raise ValueError(f"invalid duration {text!r}: use e.g. 500ms, 30s, 5m, 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


class TraceStore:
    def __init__(self, max_traces: int = 20_000) -> None:
        self.traces: deque[list[Span]] = deque(maxlen=max_traces)
        self.lock = threading.Lock()

    def add(self, spans: list[Span]) -> None:
        with self.lock:
            self.traces.append(spans)

    def _all(self) -> list[list[Span]]:
        with self.lock:
            return list(self.traces)

    def services(self, namespace: str | None = None) -> list[str]:
        return sorted({s.service for t in self._all() for s in t if namespace in (None, s.namespace)})

    def operations(self, service: str, namespace: str | None = None) -> list[str]:
        return sorted(
            {s.operation for t in self._all() for s in t if s.service == service and namespace in (None, s.namespace)}
        )

    def find(
        self,
        service: str | None = None,
        operation: str | None = None,
        lookback_s: float = 3600.0,
        limit: int = 20,
        start_us: int | None = None,
        end_us: int | None = None,
        tags: dict[str, str] | None = None,
        min_duration_us: int | None = None,
        namespace: str | None = None,
    ) -> list[list[Span]]:
        end = end_us or int(time.time() * 1e6)
        start = start_us or int(end - lookback_s * 1e6)
        out: list[list[Span]] = []
        for trace in reversed(self._all()):
            root = trace[0]
            if not start <= root.start_us <= end:
                continue
            if namespace and root.namespace != namespace:
                continue
            matches = [s for s in trace if service in (None, s.service) and operation in (None, s.operation)]
            if not matches:
                continue
            if tags and not any(all(str(s.tags.get(k)).lower() == v.lower() for k, v in tags.items()) for s in matches):
                continue
            if min_duration_us and not any(s.duration_us >= min_duration_us for s in matches):
                continue
            out.append(trace)
            if limit and len(out) >= limit:
                break
        return out

    def get(self, trace_id: str) -> list[Span] | None:
        return next((t for t in self._all() if t and t[0].trace_id == trace_id), None)


def _tag(key: str, value: Any) -> dict[str, Any]:
    kind = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "string"
    return {"key": key, "type": kind, "value": value if kind != "string" else str(value)}


def jaeger_trace(spans: list[Span]) -> dict[str, Any]:
    processes: dict[tuple[str, str], str] = {}
    out_spans = []
    for s in spans:
        pid = processes.setdefault((s.service, s.pod), f"p{len(processes) + 1}")
        refs = [{"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_id}] if s.parent_id else []
        tags = [_tag(k, v) for k, v in s.tags.items()]
        if s.error and "otel.status_code" not in s.tags:
            tags.append(_tag("otel.status_code", "ERROR"))
        out_spans.append(
            {
                "traceID": s.trace_id,
                "spanID": s.span_id,
                "flags": 1,
                "operationName": s.operation,
                "references": refs,
                "startTime": s.start_us,
                "duration": s.duration_us,
                "tags": tags,
                "logs": [
                    {"timestamp": s.start_us, "fields": [_tag("event", "error"), _tag("message", line)]}
                    for line in s.logs
                ],
                "processID": pid,
                "warnings": None,
            }
        )
    by_pid = {}
    for (service, pod), pid in processes.items():
        ip = next((s.ip for s in spans if s.pod == pod), "")
        ns = next((s.namespace for s in spans if s.pod == pod), "")
        by_pid[pid] = {
            "serviceName": service,
            "tags": [_tag("hostname", pod), _tag("ip", ip), _tag("k8s.namespace.name", ns)],
        }
    return {"traceID": spans[0].trace_id, "spans": out_spans, "processes": by_pid, "warnings": None}


def envelope(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}
