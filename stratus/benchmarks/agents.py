"""Synthetic agents for the bus benchmarks: ``python -m stratus.benchmarks.agents SERVICE`` answers the work of one
agent (diagnoser, mitigator or undoer) at once, with the events the real one would publish, so what is timed is the
bus and the coordinator. One process is one replica: replicas share the service's durable consumer. Plain nats-py on
purpose: the same harness measures any version of the coordinator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api as js_api
from pydantic import BaseModel

from stratus import contracts as c
from stratus.actions import Scale
from stratus.settings import CommonSettings


def answers(request: c.Work) -> list[c.IncidentEvent]:
    """What the real agent would publish for ``request``, done in no time."""
    i = request.incident_id
    if isinstance(request, c.DiagnoseRequest):
        return [c.DiagnosisReady(id=f"{request.id}:diagnosis", incident_id=i, localisation=["web"], summary="web down")]
    if isinstance(request, c.MitigateRequest):
        action = Scale(kind="Deployment", namespace=request.scope, name="web", replicas=1)
        tx, n = request.tx_id, request.attempt
        return [
            c.TransactionStarted(id=f"{tx}:started", incident_id=i, tx_id=tx, attempt=n, worker="synthetic"),
            c.ActionExecuted(
                id=f"{tx}:1", incident_id=i, tx_id=tx, attempt=n, seq=1, action=action, ok=True, mu_after=0
            ),
            c.TransactionEnded(id=f"{tx}:ended", incident_id=i, tx_id=tx, attempt=n, actions=1, hidden_mu=[0.0]),
        ]
    return [
        c.UndoCompleted(
            id=f"{request.id}:done",
            incident_id=i,
            tx_id=request.tx_id,
            attempt=request.attempt,
            undone=1,
            restored_digest=request.checkpoint_digest,
        )
    ]


async def serve(service: str, url: str, stop: asyncio.Event) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    durable = c.CONSUMERS[service].durable if hasattr(c, "CONSUMERS") else c.DEFAULT_TOPOLOGY.consumer(service).durable
    config = js_api.ConsumerConfig(durable_name=durable, ack_wait=30, max_deliver=-1, max_ack_pending=1000)
    sub = await js.pull_subscribe(c.work_subject(service), durable=durable, stream=c.WORK_STREAM, config=config)

    async def publish(event: BaseModel) -> None:
        kind = str(getattr(event, "kind", "event"))
        msg_id = str(getattr(event, "id", ""))
        subject = c.events_subject(str(getattr(event, "incident_id", "")), kind)
        await js.publish(subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id}, timeout=10)

    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch=16, timeout=0.5)
            except (NatsTimeout, TimeoutError):
                continue
            for msg in msgs:
                request = c.WORK_ADAPTER.validate_json(msg.data)
                for event in answers(request):
                    await publish(event)
                await msg.ack()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stratus.benchmarks.agents", description=__doc__.split("\n")[0])
    parser.add_argument("service", choices=("diagnoser", "mitigator", "undoer"))
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.service, str(CommonSettings().nats_url), stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
