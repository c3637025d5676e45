"""Requests: an HTTP request to a front end walks the call graph of the image catalogue, hop by hop.

Each hop is a real connection through ``World.connect`` (DNS -> Service -> endpoints -> targetPort -> listening
process, NetworkPolicies) or a consul lookup, then the callee's operation runs its own steps. Backends are checked the
same way (MongoDB also checks TLS, the user and its role on the database). Chaos experiments on either end of a hop
drop or delay it. The walk yields the HTTP status, the latency (simulated, not slept), Jaeger-style spans with error
tags, per-operation metrics, and log lines in the callers (e.g. Thrift connect errors), so every symptom comes from
the same state as the pods' own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arena.apps.catalogue import FlagFault, Step, expand
from arena.behaviour import backends, cpu, flags, logstyle, queueing
from arena.behaviour.datastores import parse_redis_address
from arena.behaviour.load import saturated
from arena.behaviour.mongo import MongoError, MongoState
from arena.behaviour.world import Landed, Process, Refused, Runtime, World, meta, pod_key
from arena.hooks import ClusterView, Obj

HOP_MS = 0.15
BACKEND_MS = 0.3
MAX_DEPTH = 24
"""Spans above an operation (a hop adds a client and a server span): a proxy whose upstream is itself (localhost)
loops until the client gives up."""


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start_us: int
    duration_us: int
    kind: str
    pod: str
    ip: str
    namespace: str
    tags: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    @property
    def error(self) -> bool:
        return bool(self.tags.get("error"))


@dataclass(frozen=True)
class HttpResult:
    status: int
    """HTTP status; 0 when the connection itself failed (wrk2 counts it as a socket error)."""
    latency_ms: float
    trace_id: str | None = None
    error: str | None = None


Observer = Callable[[str, str, str, str, float], None]
"""(namespace, service, operation, code, seconds) for every server span."""


class _HopError(Exception):
    def __init__(self, message: str, latency_ms: float = 0.0) -> None:
        super().__init__(message)
        self.latency_ms = latency_ms


class RequestModel:
    """Serves HTTP requests to the applications' front ends; thread-safe enough for one event loop."""

    def __init__(
        self,
        runtime: Runtime,
        on_trace: Callable[[list[Span]], None] | None = None,
        observe: Observer | None = None,
        timeout_ms: float = 10_000.0,
    ) -> None:
        self.rt, self.on_trace, self.observe, self.timeout_ms = runtime, on_trace, observe, timeout_ms

    def http(self, view: ClusterView, namespace: str, service: str, port: int, method: str, path: str) -> HttpResult:
        world = World(view, self.rt)
        client = {"metadata": {"namespace": namespace, "name": "wrk2", "labels": {"app": "wrk2"}}, "status": {}}
        conn = world.connect(client, namespace, f"{service}:{port}")
        if isinstance(conn, Refused):
            latency = self.timeout_ms if conn.kind == "timeout" else 0.5
            return HttpResult(0, latency, None, conn.detail or conn.kind)
        proc = conn.process
        if saturated(world, conn) is not None:  # its CPU is pinned: the request waits until the client gives up
            return HttpResult(0, self.timeout_ms, None, "upstream request timeout")
        route = path.split("?", 1)[0]
        op = proc.program.operation_for(route)
        rid = None
        if op is not None and route not in proc.program.routes:  # matched by a prefix: the rest names the resource
            prefix = max(
                (r for r in proc.program.routes if r != "/" and r.endswith("/") and route.startswith(r)), key=len
            )
            rid = route[len(prefix) :].strip("/") or None
        trace_id = uuid.uuid4().hex[:16]
        spans: list[Span] = []
        start_us = int(time.time() * 1e6)
        try:
            extra = self._chaos(world, None, conn.pod)
        except _HopError as e:
            return HttpResult(0, e.latency_ms, None, str(e))
        if op is None:
            span = self._span(trace_id, None, conn, f"HTTP {method} {route}", start_us, 0.3, "server")
            span.tags.update({"http.status_code": 404, "http.method": method, "http.url": path})
            spans.append(span)
            self._emit(spans)
            return HttpResult(404, 0.3 + extra, trace_id, "not found")
        ok, err, dur = self._operation(world, conn, op, None, trace_id, start_us, spans, is_http=True, rid=rid)
        status = 200 if ok else 500
        root = spans[0]
        root.tags.update({"http.status_code": status, "http.method": method, "http.url": path})
        if not ok:
            root.tags["error"] = True
            if proc.program.style == "nginx":
                self.rt.log(conn.pod, str(conn.container.get("name")), _nginx_error(route, op, err))
        self._emit(spans)
        return HttpResult(status, dur + extra + HOP_MS, trace_id, err)

    # -- the walk ------------------------------------------------------------------------------------------------
    def _operation(
        self,
        world: World,
        conn: Landed,
        op_name: str,
        parent: Span | None,
        trace_id: str,
        start_us: int,
        spans: list[Span],
        is_http: bool = False,
        rid: str | None = None,
    ) -> tuple[bool, str | None, float]:
        """Run ``op_name`` in the landed process; ``rid`` is the request's id (a product id) when the caller sent
        one."""
        proc = conn.process
        op = proc.program.operations.get(op_name)
        if _depth(parent, spans) > MAX_DEPTH:
            span = self._span(trace_id, parent, conn, op_name, start_us, self.timeout_ms, "server")
            span.tags["error"] = True
            spans.append(span)
            return False, "upstream request timeout", self.timeout_ms
        if op is None:
            span = self._span(trace_id, parent, conn, op_name, start_us, 0.1, "server")
            span.tags["error"] = True
            spans.append(span)
            return False, f"unknown method {op_name}", 0.1
        span = self._span(trace_id, parent, conn, op.span, start_us, 0.0, "server")
        spans.append(span)
        work = op.work_ms * self.rt.rng.lognormvariate(0.0, 0.3)
        ok, err = True, None
        pause = 0.0
        if op.faults:
            ok, err, pause = self._faults(world, conn, op.faults, rid)
            if not ok:
                span.tags["error"] = True
                span.logs.append(str(err))
        work = cpu.stretch(world, conn.pod, conn.container, work)
        queued = 0.0
        if ok and proc.program.queue is not None:
            wait = queueing.admit(world, conn)
            if wait is None:
                ok, err = False, f"rpc error: code = ResourceExhausted desc = {op_name}: request queue is full"
                span.tags["error"] = True
                span.logs.append(err)
            else:
                queued = wait
        elapsed = work / 2 + pause + queued
        for step in op.steps if ok else []:
            if step.probability < 1 and self.rt.rng.random() >= step.probability:
                continue
            if step.if_flag and not flags.truthy(flags.evaluate(world, conn.pod, proc, step.if_flag)):
                continue
            if step.unless_flag and flags.truthy(flags.evaluate(world, conn.pod, proc, step.unless_flag)):
                continue
            try:
                elapsed += self._step(world, conn, step, span, trace_id, start_us + int(elapsed * 1000), spans, rid=rid)
            except _HopError as e:
                elapsed += e.latency_ms
                ok, err = False, str(e)
                span.tags["error"] = True
                span.logs.append(str(e))
                break
        elapsed += work / 2
        span.duration_us = int(elapsed * 1000)
        if self.observe and proc.program.tracer:
            code = ("200" if ok else "500") if is_http else ("OK" if ok else "ERROR")
            self.observe(str(meta(conn.pod).get("namespace")), proc.program.tracer, op.span, code, elapsed / 1000)
        return ok, err, elapsed

    def _faults(
        self, world: World, conn: Landed, faults: list[FlagFault], rid: str | None
    ) -> tuple[bool, str | None, float]:
        """The op's flag-guarded code paths, in order: (ok, the error, stall in ms)."""
        proc, pod = conn.process, conn.pod
        name = str(conn.container.get("name"))
        pause = 0.0
        for fault in faults:
            value = flags.evaluate(world, pod, proc, fault.flag, False)
            on = flags.truthy(value)
            if fault.effect == "cpu_burn":
                cpu.set_burners(world, pod, conn.container, fault.threads if on else 0, fault.log if on else None)
                continue
            if not on or (fault.only_id is not None and rid != fault.only_id):
                continue
            share = min(max(flags.number(value), 0.0), 1.0) if fault.probability_from_value else fault.probability
            if share < 1 and self.rt.rng.random() >= share:
                continue
            if fault.effect == "fail":
                if fault.log:
                    self.rt.log(pod, name, fault.log)
                return False, f"rpc error: code = {fault.code} desc = {fault.error}", pause
            took = fault.pause_ms * self.rt.rng.lognormvariate(0.0, 0.25)
            pause += took
            if fault.log:
                self.rt.log(pod, name, fault.log.replace("{ms}", str(int(took))))
        return True, None, pause

    def _step(
        self,
        world: World,
        conn: Landed,
        step: Step,
        span: Span,
        trace_id: str,
        start_us: int,
        spans: list[Span],
        rid: str | None = None,
    ) -> float:
        proc, pod = conn.process, conn.pod
        ns = str(meta(pod).get("namespace"))
        address = expand(step.address, proc.config)
        if step.kind == "call" and step.retry is not None:
            return self._retried(world, conn, step, span, trace_id, start_us, spans, rid)
        if step.kind == "call":
            if step.via == "consul":
                target = world.consul_lookup(pod, ns, proc.config.get("consulAddress", "consul:8500"), address)
            else:
                target = world.connect(pod, ns, address)
            client = self._span(trace_id, span, conn, f"{step.operation}", start_us, HOP_MS, "client")
            spans.append(client)
            if isinstance(target, Refused):
                msg = _call_error(proc, target)
                client.tags["error"] = True
                client.logs.append(msg)
                if proc.program.style == "cpp":
                    self.rt.log(pod, str(conn.container.get("name")), logstyle.cpp(proc, "error", msg, 60))
                elif proc.program.style == "grpc":
                    self.rt.log(pod, str(conn.container.get("name")), f"{step.operation} failed: {msg}")
                raise _HopError(msg, self.timeout_ms if target.kind == "timeout" else HOP_MS)
            try:
                extra = self._chaos(world, pod, target.pod)
            except _HopError as e:
                client.tags["error"] = True
                client.logs.append(_timeout_error(proc, target.pod))
                client.duration_us = int(e.latency_ms * 1000)
                raise _HopError(_timeout_error(proc, target.pod), e.latency_ms) from e
            ok, err, dur = self._operation(
                world,
                target,
                step.operation or "",
                client,
                trace_id,
                start_us + int((HOP_MS + extra) * 1000),
                spans,
                rid=rid if step.forward_id else None,
            )
            total = dur + 2 * HOP_MS + extra
            client.duration_us = int(total * 1000)
            if not ok:
                client.tags["error"] = True
                raise _HopError(_downstream_error(proc, err or "error"), total)
            return total
        return self._backend(world, conn, step, address)

    def _retried(
        self,
        world: World,
        conn: Landed,
        step: Step,
        span: Span,
        trace_id: str,
        start_us: int,
        spans: list[Span],
        rid: str | None,
    ) -> float:
        """A call under the caller's retry policy: each attempt has its own deadline (the callee keeps serving an
        attempt its caller gave up on); DeadlineExceeded, Unavailable and ResourceExhausted are retried after a
        back-off; once the attempts run out the caller logs and returns its own error."""
        retry = step.retry
        assert retry is not None
        policy = queueing.policy(retry, conn.process)
        once = step.model_copy(update={"retry": None})
        elapsed, code = 0.0, "Unknown"
        for attempt in range(1, policy.attempts + 1):
            first = len(spans)
            try:
                took = self._step(world, conn, once, span, trace_id, start_us + int(elapsed * 1000), spans, rid=rid)
                if took <= policy.timeout_ms:
                    return elapsed + took
                elapsed += policy.timeout_ms
                code = "DeadlineExceeded"
                client = spans[first]  # the attempt's client span: the caller gave up at its deadline
                client.tags["error"] = True
                client.logs.append("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
                client.duration_us = int(policy.timeout_ms * 1000)
            except _HopError as e:
                elapsed += min(e.latency_ms, policy.timeout_ms)
                code = _grpc_code(str(e)) if e.latency_ms <= policy.timeout_ms else "DeadlineExceeded"
            if code not in ("DeadlineExceeded", "Unavailable", "ResourceExhausted"):
                break
            if attempt < policy.attempts:
                elapsed += policy.backoff(attempt)
        name = str(conn.container.get("name"))
        self.rt.log(conn.pod, name, logstyle.go(conn.process, "WRN", 181, retry.log.replace("{code}", code)))
        raise _HopError(retry.error, elapsed)

    def _backend(self, world: World, conn: Landed, step: Step, address: str) -> float:
        ns = str(meta(conn.pod).get("namespace"))
        kind = step.kind
        if kind in ("postgres", "kafka"):
            copies = 0
            if kind == "kafka" and step.copies_flag:
                copies = int(flags.number(flags.evaluate(world, conn.pod, conn.process, step.copies_flag, 0)))
            error = backends.store_step(world, conn, kind, address, step.topic, copies)
            if error is not None:
                raise _HopError(error, self.timeout_ms if "i/o timeout" in error else HOP_MS)
            return BACKEND_MS
        password = None
        if kind == "redis":
            address, password = parse_redis_address(address)
        target = world.connect(conn.pod, ns, address)
        server = "mongodb" if kind == "mongodb" else kind
        if isinstance(target, Refused) or target.process.program.server != server:
            latency = self.timeout_ms if isinstance(target, Refused) and target.kind == "timeout" else HOP_MS
            error = _backend_error(conn.process, kind, address, target)
            if step.panics:
                name = str(conn.container.get("name"))
                key = (pod_key(conn.pod), name, self.rt.instance(conn.pod, name))
                self.rt.panics.setdefault(key, f"Tried to get hotelId [1], but got memmcached error = {error}")
            raise _HopError(error, latency)
        extra = self._chaos(world, conn.pod, target.pod)
        if kind == "mongodb":
            self._mongo_access(world, conn, target, step, address)
        if kind == "redis":
            denied = backends.store_state(world, target.pod, target.container, "redis").auth_error(password)
            if denied:
                raise _HopError(denied, HOP_MS)
        return BACKEND_MS + extra

    def _mongo_access(self, world: World, conn: Landed, target: Landed, step: Step, address: str) -> None:
        from arena.behaviour.model import _tls_required

        if _tls_required(target.process):
            raise _HopError(_backend_error(conn.process, "mongodb", address, None))
        state: MongoState = world.mongo_state(target.pod, target.container)
        principal = None
        if step.user:
            try:
                principal = state.authenticate(step.user, step.password or "", "admin")
            except MongoError as e:
                raise _HopError("server returned error on SASL authentication step: Authentication failed.") from e
        if "--auth" in target.process.args and not MongoState.allowed(principal, step.database or "test", step.access):
            verb = "insert" if step.access == "write" else "find"
            raise _HopError(f"not authorized on {step.database} to execute command {{ {verb}: ... }}")
        if step.access == "write":
            state.collections.add((step.database or "test", "data"))

    def _chaos(self, world: World, src: Obj | None, dst: Obj) -> float:
        """Extra latency for a hop src -> dst; raises when the hop is dropped."""
        extra = 0.0
        for pod in (src, dst):
            if pod is None:
                continue
            for _, spec in world.chaos_on(pod):
                if spec.action == "network-loss" and self.rt.rng.random() * 100 < spec.loss:
                    raise _HopError("context deadline exceeded", self.timeout_ms)
                if spec.action == "network-delay":
                    extra += spec.latency_ms
        return extra

    # -- spans ---------------------------------------------------------------------------------------------------
    def _span(
        self, trace_id: str, parent: Span | None, conn: Landed, operation: str, start_us: int, dur_ms: float, kind: str
    ) -> Span:
        proc: Process = conn.process
        return Span(
            trace_id=trace_id,
            span_id=uuid.uuid4().hex[:16],
            parent_id=parent.span_id if parent else None,
            service=(proc.program.tracer or proc.binary),
            operation=operation,
            start_us=start_us,
            duration_us=int(dur_ms * 1000),
            kind=kind,
            pod=str(meta(conn.pod).get("name")),
            ip=str((conn.pod.get("status") or {}).get("podIP", "")),
            namespace=str(meta(conn.pod).get("namespace")),
            tags={"span.kind": kind},
        )

    def _emit(self, spans: list[Span]) -> None:
        if self.on_trace and spans:
            self.on_trace(spans)


def _depth(parent: Span | None, spans: list[Span]) -> int:
    by_id = {sp.span_id: sp for sp in spans}
    depth = 0
    while parent is not None:
        depth += 1
        parent = by_id.get(parent.parent_id or "")
    return depth


def _call_error(proc: Process, target: Refused) -> str:
    if proc.program.style in ("go", "grpc"):
        if target.kind == "unavailable":
            return f"rpc error: code = Unavailable desc = {target.detail}"
        if target.kind == "timeout":
            return "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        dialing = f"transport: Error while dialing {target.detail}"
        return f'rpc error: code = Unavailable desc = connection error: desc = "{dialing}"'
    if target.kind == "nxdomain":
        return f"Could not resolve host for client socket. <Host: {target.host} Port: {target.port}>"
    if target.kind == "timeout":
        return f"TSocket::open() connect() <Host: {target.host} Port: {target.port}>: Connection timed out"
    return f"TSocket::open() connect() <Host: {target.host} Port: {target.port}>: Connection refused"


def _grpc_code(message: str) -> str:
    """The status code of a gRPC error line (``rpc error: code = X desc = ...``)."""
    _, sep, rest = message.partition("code = ")
    return rest.split(" ", 1)[0] if sep else "Unknown"


def _timeout_error(proc: Process, pod: Obj) -> str:
    if proc.program.style in ("go", "grpc"):
        return "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    return "THRIFT_EAGAIN (timed out)"


def _downstream_error(proc: Process, err: str) -> str:
    if proc.program.style in ("go", "grpc"):
        return err if err.startswith("rpc error") else f"rpc error: code = Unknown desc = {err}"
    return err


def _backend_error(proc: Process, kind: str, address: str, target: Refused | Landed | None) -> str:
    host, _, port = address.rpartition(":")
    if kind == "mongodb":
        if proc.program.style == "go":
            return "no reachable servers"
        return (
            "No suitable servers found (`serverSelectionTryOnce` set): [connection refused calling ismaster on "
            f"'{address}']"
        )
    if kind == "memcached":
        return (
            f"dial tcp {address}: connect: connection refused"
            if proc.program.style == "go"
            else f"Failed to connect to memcached {host}:{port}"
        )
    return f"Could not connect to Redis at {address}: Connection refused"


def _nginx_error(route: str, op: str, err: str | None) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
    return (
        f"{stamp} [error] 18#18: *1041 [lua] {op}.lua:62: {op}(): {op} failed: {err}, client: 10.244.0.1, "
        f'server: localhost, request: "POST {route} HTTP/1.1", host: "nginx-thrift:8080"'
    )


__all__ = ["ClusterView", "HttpResult", "RequestModel", "Span"]
