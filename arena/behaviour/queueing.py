"""A fluid model of a rate-limited queue and its callers' retries: whether a service recovers after a burst or stays
collapsed once the burst is gone (a metastable failure).

Why it is shaped this way: the arena computes requests without sleeping, so a queue of individual requests cannot
be simulated from the checker's own requests (a wrk2 run is computed at one instant). The standing load comes
instead from the cluster's own clients: every ``http_loop`` process of a running pod (``watch -n 0.125 wget URL``
is 8 requests per second), followed through the call graph (Services, consul, and the replicas that share the
load) to each process whose program admits requests through an ``AdmissionQueue``. Between two looks (every
kubelet pass over the queueing container, every request it serves, every metrics scrape) its depth is integrated
in small steps:

    depth' = sum_i(rate_i * attempts_i) - qps_limit, clipped to [0, capacity]

``attempts_i`` is 1 while the wait (depth / qps_limit) is within caller i's per-attempt deadline and the queue has
room, and the caller's ``max_attempts`` otherwise: every attempt times out (or is rejected) and is retried. The
server still serves queued requests whose callers gave up, so once the wait passes the deadline the retries keep
it there as long as ``rate * attempts > qps_limit``, although ``rate`` alone is below the limit and the burst that
tipped it over is gone. What gets it out is less amplification (fewer attempts), more capacity (a higher limit,
more replicas) or an empty queue (a restart: the queue lives in the process), and only the first two survive the
next burst. Loads are looked up again at most every ``LOOK_S`` and hold until the next look.

The checker's own requests wait in the queue as it is (or are rejected when it is full) and are not added to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from arena.apps.catalogue import RetryPolicy, expand
from arena.behaviour import logstyle
from arena.behaviour.load import client_loops, loop_arg
from arena.behaviour.world import Landed, Process, World, meta, pod_key
from arena.hooks import ClusterView, Obj

STEP_S = 0.05
MAX_STEPS = 4000
LOOK_S = 0.25
LOG_EVERY_S = 5.0
MAX_HOPS = 8


@dataclass(frozen=True)
class Policy:
    """A caller's retry policy as its process resolved it."""

    timeout_ms: float
    attempts: int
    backoff_ms: float
    multiplier: float

    def backoff(self, attempt: int) -> float:
        """Milliseconds slept after failed attempt ``attempt`` (1-based)."""
        return self.backoff_ms * self.multiplier ** (attempt - 1)


@dataclass
class Arrival:
    """Requests per second one caller process sends to the queueing process, and how it retries them."""

    rate: float
    policy: Policy | None
    caller: Obj
    caller_container: str
    caller_proc: Process
    retry: RetryPolicy | None


@dataclass
class Counters:
    """A caller's counters of what its retry loop did, integrated with the queue (PREFIX_*_total)."""

    prefix: str | None
    requests_metric: str | None
    requests: float = 0.0
    attempts: float = 0.0
    timeouts: float = 0.0
    failures: float = 0.0
    successes: float = 0.0


@dataclass
class QueueState:
    at: float
    depth: float = 0.0
    looked: float = -math.inf
    logged: float = -math.inf
    arrivals: list[Arrival] = field(default_factory=list)
    counters: dict[tuple[str, str, str], Counters] = field(default_factory=dict)


def _positive(raw: str, fallback: str) -> float:
    for value in (raw, fallback):
        try:
            number = float(value)
        except ValueError:
            continue
        if number > 0 and math.isfinite(number):
            return number
    return 1.0


def _resolved(template: str, proc: Process) -> float:
    """A positive number from the process's configuration; an unusable value falls back to the image's baked one."""
    return _positive(expand(template, proc.config), expand(template, proc.image.config))


def policy(retry: RetryPolicy, proc: Process) -> Policy:
    return Policy(
        timeout_ms=_resolved(retry.timeout_ms, proc),
        attempts=max(int(_resolved(retry.max_attempts, proc)), 1),
        backoff_ms=_resolved(retry.initial_backoff_ms, proc) if retry.initial_backoff_ms != "0" else 0.0,
        multiplier=_resolved(retry.backoff_multiplier, proc),
    )


def limits(proc: Process) -> tuple[float, float]:
    """(qps_limit, capacity) of a queueing process."""
    q = proc.program.queue
    assert q is not None
    return _resolved(q.qps_limit, proc), max(math.floor(_resolved(q.capacity, proc)), 1)


def _failing(a: Arrival, wait_s: float, full: bool) -> bool:
    return a.policy is not None and (full or wait_s * 1000 > a.policy.timeout_ms)


def _integrate(st: QueueState, dt: float, qps: float, cap: float) -> None:
    n = min(max(math.ceil(dt / STEP_S), 1), MAX_STEPS)
    h = dt / n
    for _ in range(n):
        wait_s = st.depth / qps
        full = st.depth >= cap - 0.5
        offered = 0.0
        for a in st.arrivals:
            failing = _failing(a, wait_s, full)
            tries = a.policy.attempts if failing and a.policy is not None else 1
            offered += a.rate * tries
            key = (str(meta(a.caller).get("namespace")), str(meta(a.caller).get("name")), a.caller_container)
            c = st.counters.setdefault(
                key, Counters(a.retry.metrics if a.retry else None, a.caller_proc.program.requests_metric)
            )
            c.requests += a.rate * h
            c.attempts += a.rate * tries * h
            if failing:
                c.failures += a.rate * h
                if not full:
                    c.timeouts += a.rate * tries * h
            else:
                c.successes += a.rate * h
        st.depth = min(max(st.depth + (offered - qps) * h, 0.0), cap)


def advance(world: World, pod: Obj, container: Obj, proc: Process) -> QueueState:
    """The queue of this container instance, integrated up to now (and its loads looked up again when due)."""
    name = str(container.get("name"))
    key = (pod_key(pod), name, world.rt.instance(pod, name))
    now = world.rt.clock()
    queues = world.rt.queues
    st = queues.get(key)
    if st is None:
        for old in [k for k in queues if k[:2] == key[:2]]:  # the previous instance's queue died with it
            del queues[old]
        st = queues[key] = QueueState(at=now)
    qps, cap = limits(proc)
    if now > st.at:
        _integrate(st, now - st.at, qps, cap)
        st.at = now
    if now - st.looked >= LOOK_S:
        st.arrivals = offered(world, pod, name)
        st.looked = now
    return st


def admit(world: World, conn: Landed) -> float | None:
    """Milliseconds a request arriving now waits in the landed process's queue; None when it is rejected (full)."""
    st = advance(world, conn.pod, conn.container, conn.process)
    qps, cap = limits(conn.process)
    if st.depth >= cap - 0.5:
        wait_s = st.depth / qps
        offered = sum(
            a.rate * (a.policy.attempts if _failing(a, wait_s, True) and a.policy else 1) for a in st.arrivals
        )
        if offered <= qps or world.rt.rng.random() < qps / offered:  # a slot freed before it arrived
            return 1000.0 * st.depth / qps
        return None
    return 1000.0 * st.depth / qps


def tick(world: World, pod: Obj, container: Obj, proc: Process) -> None:
    """Advance the queue on a kubelet pass; while it is full, the server and its failing callers say so (at most
    every ``LOG_EVERY_S``)."""
    st = advance(world, pod, container, proc)
    qps, cap = limits(proc)
    now = world.rt.clock()
    full = st.depth >= cap - 0.5
    if not full or now - st.logged < LOG_EVERY_S:
        return
    st.logged = now
    line = f"request queue full: depth={int(st.depth)} capacity={int(cap)} qps_limit={qps:g}, rejecting new requests"
    world.rt.log(pod, str(container.get("name")), logstyle.go(proc, "WRN", 96, line))
    for a in st.arrivals:
        if a.retry is not None and _failing(a, st.depth / qps, full):
            msg = a.retry.log.replace("{code}", "DeadlineExceeded")
            world.rt.log(a.caller, a.caller_container, logstyle.go(a.caller_proc, "WRN", 181, msg))


# ------------------------------------------------------------------------------------------------- the load
def offered(world: World, target: Obj, container: str) -> list[Arrival]:
    """Who sends the target container's process requests, how many per second, and with which retry policy: every
    HTTP client loop of a running pod, followed hop by hop through the operations' calls."""
    out: list[Arrival] = []
    uid = meta(target).get("uid")
    for pod, proc, parts in client_loops(world):
        loop = proc.program.http_loop
        every = _positive(loop_arg(proc, loop.every), "0") if loop is not None else 0
        if every <= 0:
            continue
        conn = world.connect(pod, str(meta(pod).get("namespace")), parts.netloc)
        if not isinstance(conn, Landed):
            continue
        op = conn.process.program.operation_for(parts.path or "/")
        if op is not None:
            _walk(world, conn, op, 1.0 / every, (uid, container), out, 0)
    return out


def _walk(
    world: World, conn: Landed, op_name: str, rate: float, target: tuple[object, str], out: list[Arrival], hops: int
) -> None:
    op = conn.process.program.operations.get(op_name)
    if op is None or hops > MAX_HOPS:
        return
    ns = str(meta(conn.pod).get("namespace"))
    for step in op.steps:
        if step.kind != "call":
            continue
        address = expand(step.address, conn.process.config)
        if step.via == "consul":
            landed = world.consul_lookup(conn.pod, ns, conn.process.config.get("consulAddress", "consul:8500"), address)
        else:
            landed = world.connect(conn.pod, ns, address)
        if not isinstance(landed, Landed):
            return  # the operation fails at this step: the later ones are not reached
        pool = _pool(world, landed)
        share = rate * step.probability / len(pool)
        for member in pool:
            if (meta(member.pod).get("uid"), str(member.container.get("name"))) == target:
                resolved = policy(step.retry, conn.process) if step.retry else None
                out.append(
                    Arrival(share, resolved, conn.pod, str(conn.container.get("name")), conn.process, step.retry)
                )
            _walk(world, member, step.operation or "", share, target, out, hops + 1)


def _pool(world: World, landed: Landed) -> list[Landed]:
    """The serving replicas a call could have landed on (the same program on the same port in the namespace): the
    load is shared among them."""
    ns = meta(landed.pod).get("namespace")
    members: list[Landed] = []
    for pod in world.view.list("Pod", str(ns)):
        if meta(pod).get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
            continue
        for c in (pod.get("spec") or {}).get("containers") or []:
            proc = world.serving(pod, c)
            if proc is not None and proc.program is landed.process.program and landed.port in proc.ports():
                members.append(Landed(pod, c, proc, landed.port))
    return members or [landed]


# ------------------------------------------------------------------------------------------------- metrics
def queue_metrics(view: ClusterView, world: World) -> list[str]:
    """The queueing processes' gauges and their callers' counters, as the programs export them."""
    gauges: list[str] = []
    counters: dict[str, list[str]] = {}
    for pod in view.list("Pod"):
        for c in (pod.get("spec") or {}).get("containers") or []:
            name = str(c.get("name"))
            if (pod_key(pod), name, world.rt.instance(pod, name)) not in world.rt.queues:
                continue
            proc = world.serving(pod, c)
            if proc is None or proc.program.queue is None or proc.program.queue.metrics is None:
                continue
            st = advance(world, pod, c, proc)
            qps, cap = limits(proc)
            labels = f'namespace="{meta(pod).get("namespace")}",pod="{meta(pod).get("name")}"'
            prefix = proc.program.queue.metrics
            gauges += [
                f"{prefix}_queue_depth{{{labels}}} {int(st.depth)}",
                f"{prefix}_backend_qps_limit{{{labels}}} {qps:g}",
                f"{prefix}_queue_capacity{{{labels}}} {int(cap)}",
            ]
            for (ns, caller, _), k in st.counters.items():
                clabels = f'namespace="{ns}",pod="{caller}"'
                if k.requests_metric:
                    counters.setdefault(k.requests_metric, []).append(f"{{{clabels}}} {int(k.requests)}")
                if k.prefix:
                    for suffix, value in (
                        ("attempts", k.attempts),
                        ("timeouts", k.timeouts),
                        ("failures", k.failures),
                        ("successes", k.successes),
                    ):
                        counters.setdefault(f"{k.prefix}_{suffix}_total", []).append(f"{{{clabels}}} {int(value)}")
    lines: list[str] = []
    for metric in sorted({g.split("{", 1)[0] for g in gauges}):
        lines += [f"# TYPE {metric} gauge", *(g for g in gauges if g.startswith(metric + "{"))]
    for metric, samples in sorted(counters.items()):
        lines += [f"# TYPE {metric} counter", *(metric + s for s in samples)]
    return lines
