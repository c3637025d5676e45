"""Bootstrapping a diagnosis from traces: the call graph, and the deepest failing services first.

Why *deepest*: an error propagates up the call chain, so every caller of a broken service reports errors too. The
span that failed while none of its descendants failed is where the failure started. When that span is a client span
with no child (the callee never answered: connection refused, no endpoints, a timeout), the failure belongs to the
*callee*, which has no span of its own; it is recovered from the span's peer tags, from other traces where the same
client operation did reach a server, or from the host named in the span's error log.

Traces are Jaeger-shaped (``{traceID, spans: [{spanID, operationName, references, tags, logs, processID}],
processes: {pid: {serviceName, tags}}}``); a ``parentSpanID`` field is accepted too.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Obj = dict[str, Any]

RECENT_WINDOW_US = 60 * 1_000_000
"""Traces older than this before the newest one belong to an earlier episode: the call graph still learns from them,
but they localise nothing (a fault that persists keeps producing recent failing traces)."""
STILL_LAST_N = 10
STILL_MIN_RATIO = 0.1
SLOW_HOP_MIN_US = 500_000
SLOW_HOP_FACTOR = 20

_PEER_TAGS = ("peer.service", "net.peer.name", "peer.hostname", "server.address", "net.host.name", "rpc.service")
_HOST_IN_LOG = (
    re.compile(r"<Host: (?P<host>[\w.-]+) Port: \d+>"),
    re.compile(r"(?:dial tcp|calling ismaster on '?|connect to \w+ at) (?P<host>[A-Za-z][\w.-]*):\d+"),
    re.compile(r"\b(?P<host>srv-[\w-]+)\b"),
)


class CallEdge(BaseModel):
    model_config = ConfigDict(frozen=True)

    caller: str = Field(description="The calling service.")
    callee: str = Field(description="The called service.")
    calls: int = Field(description="Spans of this edge seen.")
    errors: int = Field(description="Of which failed.")


class Hypothesis(BaseModel):
    """A place where failures start: a service (and operation), with how often and how deep."""

    model_config = ConfigDict(frozen=True)

    service: str = Field(description="The service where the failure starts (a trace service name or a host).")
    operation: str = Field(description="The failing operation.")
    traces: int = Field(description="Failing traces in which this is the deepest failure.")
    depth: int = Field(description="The deepest call depth at which it was seen (root = 0).")
    inferred: bool = Field(default=False, description="True when the callee was inferred (it left no span).")
    signal: str = Field(default="error", description="error (failing spans) or latency (a slow hop, no error).")
    pods: list[str] = Field(default_factory=list, description="Hostnames (pods) reporting it, from process tags.")
    evidence: list[str] = Field(default_factory=list, description="Examples of what the spans said.")


class CallGraph(BaseModel):
    services: list[str] = Field(default_factory=list, description="Every service seen in the traces.")
    edges: list[CallEdge] = Field(default_factory=list, description="Caller -> callee, with counts.")
    failing_traces: int = Field(default=0, description="Traces with at least one error span.")
    total_traces: int = Field(default=0, description="Traces read.")
    hypotheses: list[Hypothesis] = Field(default_factory=list, description="Deepest failures, most frequent first.")


def _tags(items: Any) -> dict[str, Any]:
    if isinstance(items, dict):
        return items
    out: dict[str, Any] = {}
    for t in items or []:
        if isinstance(t, dict) and "key" in t:
            out[str(t["key"])] = t.get("value")
    return out


def is_error(span: Obj) -> bool:
    """``error=true``, ``http.status_code >= 500``, or ``otel.status_code=ERROR``."""
    tags = _tags(span.get("tags"))
    if str(tags.get("error", "")).lower() == "true":
        return True
    try:
        if int(str(tags.get("http.status_code", tags.get("http.response.status_code", 0)))) >= 500:
            return True
    except ValueError:
        pass
    return str(tags.get("otel.status_code", "")).upper() == "ERROR"


def _parent(span: Obj) -> str | None:
    for ref in span.get("references") or []:
        if ref.get("refType", "CHILD_OF") in ("CHILD_OF", "FOLLOWS_FROM") and ref.get("spanID"):
            return str(ref["spanID"])
    parent = span.get("parentSpanID") or span.get("parentSpanId")
    return str(parent) if parent else None


def _messages(span: Obj) -> list[str]:
    out = []
    for log in span.get("logs") or []:
        fields = _tags(log.get("fields"))
        for key in ("message", "error", "error.object", "event"):
            if key in fields and key != "event":
                out.append(str(fields[key]))
    return out


class _Trace:
    def __init__(self, trace: Obj) -> None:
        processes = trace.get("processes") or {}
        self.spans: dict[str, Obj] = {}
        self.service: dict[str, str] = {}
        self.host: dict[str, str] = {}
        for span in trace.get("spans") or []:
            sid = str(span.get("spanID"))
            self.spans[sid] = span
            proc = processes.get(span.get("processID")) or span.get("process") or {}
            self.service[sid] = str(proc.get("serviceName", "?"))
            host = _tags(proc.get("tags")).get("hostname")
            if host:
                self.host[sid] = str(host)
        starts = [int(sp.get("startTime") or 0) for sp in self.spans.values()]
        self.start = min(starts) if starts else 0
        self.children: dict[str, list[str]] = defaultdict(list)
        self.parent: dict[str, str] = {}
        for sid, span in self.spans.items():
            p = _parent(span)
            if p and p in self.spans:
                self.parent[sid] = p
                self.children[p].append(sid)

    def depth(self, sid: str) -> int:
        d = 0
        while sid in self.parent and d < 100:
            sid, d = self.parent[sid], d + 1
        return d

    def has_failing_descendant(self, sid: str) -> bool:
        stack = list(self.children.get(sid, []))
        while stack:
            child = stack.pop()
            if is_error(self.spans[child]):
                return True
            stack += self.children.get(child, [])
        return False


def _kind(span: Obj) -> str:
    return str(_tags(span.get("tags")).get("span.kind", ""))


def build_call_graph(traces: list[Obj]) -> CallGraph:
    """The call graph of the traces and the ranked places where their failures start."""
    unique: dict[str, Obj] = {}
    for raw in traces:
        if isinstance(raw, dict):  # a query per service returns a trace once per service it crosses
            unique.setdefault(str(raw.get("traceID") or id(raw)), raw)
    parsed = [_Trace(raw) for raw in unique.values()]
    edges: Counter[tuple[str, str]] = Counter()
    edge_errors: Counter[tuple[str, str]] = Counter()
    callee_of: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    services: set[str] = set()
    for t in parsed:
        for sid, span in t.spans.items():
            services.add(t.service[sid])
            parent = t.parent.get(sid)
            if parent is None:
                continue
            caller, callee = t.service[parent], t.service[sid]
            if caller != callee:
                edges[(caller, callee)] += 1
                edge_errors[(caller, callee)] += is_error(span)
                callee_of[(caller, str(t.spans[parent].get("operationName")))][callee] += 1
    found: dict[tuple[str, str], dict[str, Any]] = {}
    newest = max((t.start for t in parsed), default=0)
    recent = [t for t in parsed if not newest or t.start >= newest - RECENT_WINDOW_US]
    failing_traces = [t for t in recent if any(is_error(s) for s in t.spans.values())]
    outcomes: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for t in recent:
        for sid, sp in t.spans.items():
            outcomes[(t.service[sid], str(sp.get("operationName", "")))].append((t.start, is_error(sp)))
    for t in failing_traces:
        deepest = [sid for sid, s in t.spans.items() if is_error(s) and not t.has_failing_descendant(sid)]
        seen_here: set[tuple[str, str]] = set()
        for sid in deepest:
            span, service = t.spans[sid], t.service[sid]
            op = str(span.get("operationName", ""))
            inferred = False
            messages = _messages(span)
            if not t.children.get(sid) and (_kind(span) == "client" or _peer(span)):
                answered_by = _peer(span) or _learned(callee_of, service, op) or _host_in(messages)
                if answered_by is not None and answered_by != service:
                    service = answered_by
                    inferred = True
            key = (service, op)
            entry = found.setdefault(
                key, {"traces": 0, "depth": 0, "inferred": inferred, "pods": set(), "ev": [], "seen_as": set()}
            )
            entry["seen_as"].add((t.service[sid], op))
            if key not in seen_here:
                entry["traces"] += 1
                seen_here.add(key)
            entry["depth"] = max(entry["depth"], t.depth(sid) + (1 if inferred else 0))
            if not inferred and sid in t.host:
                entry["pods"].add(t.host[sid])
            reporter = t.service[sid]
            for m in messages[:1]:
                if len(entry["ev"]) < 3 and m not in entry["ev"]:
                    entry["ev"].append(f"{reporter} {op}: {m[:160]}")
    hypotheses = [
        Hypothesis(
            service=svc,
            operation=op,
            traces=e["traces"],
            depth=e["depth"],
            inferred=e["inferred"],
            pods=sorted(e["pods"]),
            evidence=e["ev"],
        )
        for (svc, op), e in found.items()
        if any(still_happening(outcomes[k]) for k in e["seen_as"])
    ]
    hypotheses.sort(key=lambda h: (-h.traces, -h.depth, h.service))
    hypotheses += slow_hops(recent)
    return CallGraph(
        services=sorted(services),
        edges=[CallEdge(caller=a, callee=b, calls=n, errors=edge_errors[(a, b)]) for (a, b), n in edges.items()],
        failing_traces=len(failing_traces),
        total_traces=len(parsed),
        hypotheses=hypotheses,
    )


def still_happening(observations: list[tuple[int, bool]]) -> bool:
    """Whether the latest observations (start time, bad) of a call still show the problem: a burst that is over
    (the last calls all fine) localises nothing; an intermittent fault (one bad call in ten) still does."""
    latest = [bad for _, bad in sorted(observations)[-STILL_LAST_N:]]
    return bool(latest) and sum(latest) / len(latest) >= STILL_MIN_RATIO


def slow_hops(parsed: list[_Trace]) -> list[Hypothesis]:
    """Calls whose time is spent *between* caller and callee (the hop, not the callee's own work), far above the
    other hops: a network delay or an overloaded target shows there without any error span."""
    gaps: list[tuple[int, str, str, str, int]] = []
    for t in parsed:
        for sid, span in t.spans.items():
            kids = t.children.get(sid, [])
            other = [k for k in kids if t.service[k] != t.service[sid]]
            if not other:
                continue
            inner = sum(int(t.spans[k].get("duration") or 0) for k in other)
            gap = int(span.get("duration") or 0) - inner
            callee = t.service[other[0]]
            op = str(t.spans[other[0]].get("operationName", ""))
            gaps.append((gap, callee, op, t.host.get(other[0], ""), t.start))
    if len(gaps) < 3:
        return []
    ordered = sorted(g for g, *_ in gaps)
    median = ordered[len(ordered) // 2]
    threshold = max(SLOW_HOP_MIN_US, SLOW_HOP_FACTOR * max(median, 1))
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    pods: dict[tuple[str, str], set[str]] = defaultdict(set)
    observed: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for gap, callee, op, host, start in gaps:
        observed[(callee, op)].append((start, gap >= threshold))
        if gap >= threshold:
            found[(callee, op)].append(gap)
            if host:
                pods[(callee, op)].add(host)
    out = [
        Hypothesis(
            service=callee,
            operation=op,
            traces=len(slow),
            depth=0,
            signal="latency",
            pods=sorted(pods[(callee, op)]),
            evidence=[
                f"calls to {callee} {op} spend {max(slow) / 1e6:.1f}s in the hop (median hop {median / 1e3:.1f}ms)"
            ],
        )
        for (callee, op), slow in found.items()
        if still_happening(observed[(callee, op)])
    ]
    return sorted(out, key=lambda h: (-h.traces, h.service))


def _peer(span: Obj) -> str | None:
    tags = _tags(span.get("tags"))
    for key in _PEER_TAGS:
        if tags.get(key):
            return str(tags[key]).split(":")[0]
    return None


def _learned(callee_of: dict[tuple[str, str], Counter[str]], service: str, op: str) -> str | None:
    seen = callee_of.get((service, op))
    return seen.most_common(1)[0][0] if seen else None


def _host_in(messages: list[str]) -> str | None:
    for m in messages:
        for pattern in _HOST_IN_LOG:
            hit = pattern.search(m)
            if hit:
                return hit.group("host")
    return None


def rank_failing_services(traces: list[Obj]) -> list[str]:
    """Services where failures start, most likely first (each service once)."""
    out: list[str] = []
    for h in build_call_graph(traces).hypotheses:
        if h.service not in out:
            out.append(h.service)
    return out
