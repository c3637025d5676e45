"""A tiny synthetic system for the embedding's tests: frontend -> api -> db-client, frontend -> auth, with request
metrics, spans and logs; faults add latency in the hop to a service or make it fail."""

from __future__ import annotations

import random

from stratus.embedding.telemetry import LogRecord, SeriesRecord, SpanRecord, Telemetry

SERVICES = ["frontend", "api", "store", "auth"]
CALLS = [("frontend", "api"), ("api", "store"), ("frontend", "auth")]
WORK = {"frontend": 0.002, "api": 0.003, "store": 0.004, "auth": 0.001}


def telemetry(
    start: float,
    end: float,
    *,
    seed: int = 0,
    rps: float = 20.0,
    delay: dict[str, float] | None = None,
    failing: str | None = None,
) -> Telemetry:
    rng = random.Random(seed * 100_003 + int(start * 10))
    delay, spans, logs = delay or {}, [], []
    t, n = start, 0
    while True:
        t += rng.expovariate(rps)
        if t >= end:
            break
        n += 1
        trace = f"t{seed}-{int(start * 1000)}-{n}"
        spans += _call(trace, "frontend", None, t, rng, delay, failing)
    if failing:
        logs.append(LogRecord(start + 0.5 * (end - start), failing, f"{failing}-abc", "fatal: connection refused"))
    series = []
    for svc in SERVICES:
        pts = tuple((float(s), rps * (1 + 0.05 * rng.random())) for s in range(int(start), int(end)))
        series.append(SeriesRecord("requests", svc, pts))
        lat = tuple((p[0], WORK[svc] + delay.get(svc, 0.0)) for p in pts)
        series.append(SeriesRecord("latency_mean", svc, lat))
    return Telemetry(start, end, series, spans, logs, services=list(SERVICES))


def _call(
    trace: str,
    svc: str,
    parent: SpanRecord | None,
    t: float,
    rng: random.Random,
    delay: dict[str, float],
    failing: str | None,
) -> list[SpanRecord]:
    sid = f"{svc}-{rng.randrange(1 << 30)}"
    out: list[SpanRecord] = []
    own = WORK[svc] * rng.lognormvariate(0, 0.2)
    children: list[SpanRecord] = []
    error = svc == failing
    elapsed = own / 2
    if not error:
        for a, b in CALLS:
            if a != svc:
                continue
            client_id = f"{svc}c-{rng.randrange(1 << 30)}"
            sub = _call(trace, b, None, t + elapsed, rng, delay, failing)
            server = sub[0]
            dur = server.duration + delay.get(b, 0.0) + 0.0002
            client = SpanRecord(trace, client_id, sid, svc, f"call {b}", t + elapsed, dur, server.error, "client")
            sub[0] = SpanRecord(trace, server.span_id, client_id, b, server.operation, server.start + delay.get(b, 0.0),
                                server.duration, server.error, "server")  # fmt: skip
            children.append(client)
            out += sub
            elapsed += dur
            error = error or server.error
    duration = elapsed + own / 2
    me = SpanRecord(trace, sid, parent.span_id if parent else None, svc, f"{svc} op", t, duration, error, "server")
    return [me, *children, *out]
