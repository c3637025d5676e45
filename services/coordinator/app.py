"""Wiring of the coordinator: Redis (records, A-Lock), the cluster observer, the engine, its watchdog, and one
serial consumer per partition of the events stream, switched on and off by the partition leases."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from services.coordinator.engine import Engine, Observer
from services.coordinator.handlers import EventHandler
from services.coordinator.memory import MemoryKeeper
from services.coordinator.partitions import Partitions
from stratus.alock import ALock
from stratus.bus import Bus, Dropped
from stratus.contracts import (
    ApprovalRequested,
    Checkpointed,
    DiagnoseRequest,
    Event,
    IncidentClosed,
    MitigateRequest,
    StateChanged,
    Topology,
    TransactionDecided,
    UndoRequest,
    utcnow,
)
from stratus.dependencies import kube_probe, redis_probe
from stratus.fence import JetStreamTokens
from stratus.gateway import ReadGateway
from stratus.kubeapi import kube_api
from stratus.latency import from_settings as latency_from_settings
from stratus.memory.store import MemoryStore
from stratus.metrics import set_incident_ages, set_open_incidents
from stratus.observer import ClusterObserver
from stratus.runtime import Deferred, ServiceRuntime, configure_logging
from stratus.settings import CoordinatorSettings


def subscribe_partitions(
    bus: Bus,
    topology: Topology,
    handler: Any,
    *,
    ack_wait_s: float,
    owns: Any = None,
    on_dropped: Any = None,
    manual: bool = True,
) -> dict[int, Any]:
    """One serial durable consumer per partition (``Topology.coordinator_consumer``), not started: the partition
    leases start and stop them. ``owns(partition)`` is asked before each message."""
    subscribers = {}
    for p in range(topology.partitions):
        subscribers[p] = bus.subscribe(
            topology.coordinator_consumer(p, ack_wait_s),
            Event,
            handler,
            name=f"coordinator_p{p}",
            description=f"Every incident event of partition {p} of {topology.partitions}, in order: the coordinator "
            "applies it to the incident's state machine (its own timeline events are ignored).",
            accept=None if owns is None else functools.partial(owns, p),
            on_dropped=on_dropped,
            manual=manual,
        )
    return subscribers


def build(settings: CoordinatorSettings, observer: Observer | None = None) -> ServiceRuntime:
    """The coordinator service; ``observer`` replaces the cluster observer (the synthetic benchmarks)."""
    runtime = ServiceRuntime("coordinator", settings)
    runtime.publishes(DiagnoseRequest, "{prefix}.work.diagnoser", "Diagnose a newly opened incident.")
    runtime.publishes(MitigateRequest, "{prefix}.work.mitigator", "Run one transaction under the enclosed lease.")
    runtime.publishes(UndoRequest, "{prefix}.work.undoer", "Roll an aborted transaction back from its journal.")
    runtime.publishes_event(StateChanged, "The incident's state machine moved.")
    runtime.publishes_event(Checkpointed, "mu and the state digest before a transaction (R1).")
    runtime.publishes_event(TransactionDecided, "Commit or abort of a transaction, with mu before and after (R3).")
    runtime.publishes_event(
        ApprovalRequested, "A transaction's plan waits for a human (approve mode); nothing is written before."
    )
    runtime.publishes_event(IncidentClosed, "The incident is resolved or escalated, with its visible mu-path.")
    topology = runtime.topology
    redis = aioredis.Redis.from_url(str(settings.redis_url))
    runtime.depends_on("redis", redis_probe(redis))
    handler: Deferred[Event] = Deferred()
    escalate: Deferred[Dropped] = Deferred()
    partitions = Partitions(
        redis,
        prefix=settings.redis_prefix,
        instance=runtime.instance,
        count=topology.partitions,
        lease_s=settings.partition_lease_s,
        start=lambda p: subscribers[p].start(),
        stop=lambda p: subscribers[p].stop(),
    )
    subscribers = subscribe_partitions(
        runtime.bus,
        topology,
        handler,
        ack_wait_s=settings.event_ack_wait_s,
        owns=partitions.owns,
        on_dropped=escalate,
    )

    async def start(bus: Bus) -> None:
        await redis.ping()
        cluster = observer
        if cluster is None:
            api = kube_api(settings)
            runtime.depends_on("kubernetes", kube_probe(api))
            cluster = ClusterObserver.from_settings(settings, ReadGateway(api), latency_from_settings(settings, bus.js))
        alock = ALock(redis, prefix=settings.redis_prefix, tokens=JetStreamTokens(bus))
        engine = Engine(bus, redis, alock, cluster, settings, prefix=settings.redis_prefix)
        engine.owns = lambda incident_id: partitions.owns(topology.partition(incident_id))
        if settings.memory_enabled:
            bucket = settings.memory_bucket_name(topology.stream_prefix)
            engine.memory = MemoryKeeper(
                MemoryStore(
                    bus.js, bucket, max_entries=settings.memory_max_entries, max_bytes=settings.memory_max_bytes
                )
            )
        handler.bind(EventHandler(engine))

        async def escalate_dropped(dropped: Dropped) -> None:
            if dropped.incident_id is not None:
                await engine.escalate_dropped(dropped.incident_id, dropped.reason)

        escalate.bind(escalate_dropped)

        async def watchdog() -> None:
            await engine.watchdog(runtime.stop)

        async def incident_gauge() -> None:  # stratus_incidents{state}: a full count from the durable store
            while not runtime.stop.is_set():
                with contextlib.suppress(Exception):
                    records = [await engine.store.load(i) for i in await engine.store.open_ids()]
                    set_open_incidents(Counter(r.state for r in records if r is not None))
                    now = utcnow()
                    ages: dict[str, float] = {}
                    for r in records:
                        if r is not None:
                            ages[r.state] = max(ages.get(r.state, 0.0), (now - r.updated_at).total_seconds())
                    set_incident_ages(ages)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runtime.stop.wait(), timeout=5.0)

        async def leases() -> None:
            await partitions.run(runtime.stop)

        async def memory_writes() -> None:  # an incident closed just before a stop is still remembered
            await runtime.stop.wait()
            await engine.flush_memory()

        runtime.task(leases)
        runtime.task(memory_writes)
        runtime.task(watchdog)
        runtime.task(incident_gauge)

    runtime.startup(start)
    runtime.health_details(
        lambda: {
            "redis": str(settings.redis_url),
            "partitions": ",".join(str(p) for p in partitions.owned) or "none",
        }
    )
    return runtime


def main() -> None:
    settings = CoordinatorSettings()
    configure_logging(settings.log_level, "coordinator", settings.log_format, settings.instance or "")
    asyncio.run(build(settings).run())
