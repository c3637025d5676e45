"""A thin layer over nats-py JetStream: streams, durable pull consumers, typed publish and a consume loop.

Why not a framework: the safety story depends on exactly when a message is acknowledged. Here a message is acked
only after its handler returned; ``PermanentError`` terminates it (and the reason is kept in the dead-letter stream),
``TemporaryError`` naks it with a delay, anything unexpected naks it with a short delay so another replica (or this
one, later) gets it again. While a handler runs, the loop tells the server it is still in progress, so long work is
not redelivered to a second replica. A message that does not validate against its contract is never handed to a
handler: it is terminated and stored, with the validation error, in ``STRATUS_DEADLETTER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from pydantic import BaseModel, TypeAdapter, ValidationError

from stratus.contracts import STREAMS, SUBJECT_PREFIX, ConsumerSpec, StreamSpec
from stratus.errors import PermanentError, TemporaryError
from stratus.metrics import observe_message

log = logging.getLogger(__name__)

DEADLETTER_STREAM = "STRATUS_DEADLETTER"
DEADLETTER_SUBJECTS = f"{SUBJECT_PREFIX}.deadletter.>"

T = TypeVar("T")
Handler = Callable[[T, Msg], Awaitable[None]]


def deadletter_subject(service: str) -> str:
    return f"{SUBJECT_PREFIX}.deadletter.{service}"


class Bus:
    """One NATS connection with its JetStream context."""

    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js

    @classmethod
    async def connect(cls, url: str, *, name: str = "stratus", connect_timeout: float = 5.0) -> Bus:
        try:
            nc = await nats.connect(
                url,
                name=name,
                connect_timeout=connect_timeout,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                drain_timeout=5,
            )
        except Exception as exc:  # nats-py raises several unrelated types for "cannot connect"
            raise TemporaryError(f"cannot connect to NATS at {url}: {exc!r}", delay=1.0) from exc
        return cls(nc, nc.jetstream())

    async def close(self) -> None:
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()

    # --- topology ---------------------------------------------------------------------------------------------

    async def ensure_stream(self, spec: StreamSpec) -> None:
        retention = (
            js_api.RetentionPolicy.WORK_QUEUE if spec.retention == "workqueue" else js_api.RetentionPolicy.LIMITS
        )
        config = js_api.StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            retention=retention,
            storage=js_api.StorageType.FILE,
            max_age=spec.max_age_s,
            duplicate_window=120.0,
        )
        try:
            await self.js.stream_info(spec.name)
        except NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created concurrently by another service
                await self.js.add_stream(config)

    async def ensure_streams(self, streams: tuple[StreamSpec, ...] = STREAMS) -> None:
        for spec in (*streams, StreamSpec(name=DEADLETTER_STREAM, subjects=(DEADLETTER_SUBJECTS,))):
            await self.ensure_stream(spec)

    async def ensure_consumer(self, spec: ConsumerSpec) -> None:
        config = js_api.ConsumerConfig(
            durable_name=spec.durable,
            filter_subject=spec.filter_subject,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_s,
            max_deliver=spec.max_deliver,
            max_ack_pending=1000,
        )
        try:
            await self.js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.add_consumer(spec.stream, config)

    # --- publishing -------------------------------------------------------------------------------------------

    async def publish(self, subject: str, message: BaseModel, *, dedup_id: str | None = None) -> js_api.PubAck:
        """Publish to JetStream and wait for the ack; ``dedup_id`` (default: the message's ``id``) de-duplicates."""
        msg_id = dedup_id or getattr(message, "id", None)
        headers = {"Nats-Msg-Id": str(msg_id)} if msg_id else None
        try:
            return await self.js.publish(subject, message.model_dump_json().encode(), headers=headers, timeout=5.0)
        except (NatsTimeout, nats.errors.NoRespondersError) as exc:
            raise TemporaryError(f"JetStream did not acknowledge a publish to {subject}: {exc!r}") from exc

    async def deadletter(self, service: str, msg: Msg, reason: str) -> None:
        """Keep a message no handler could take, with the reason, so nothing is lost."""
        record = {
            "service": service,
            "subject": msg.subject,
            "reason": reason,
            "payload": msg.data.decode("utf-8", errors="replace"),
        }
        try:
            await self.js.publish(deadletter_subject(service), json.dumps(record).encode(), timeout=5.0)
        except Exception:
            log.exception("could not store a rejected message in %s", DEADLETTER_STREAM)

    # --- consuming --------------------------------------------------------------------------------------------

    async def consume(
        self,
        service: str,
        spec: ConsumerSpec,
        adapter: TypeAdapter[T],
        handler: Handler[T],
        *,
        stop: asyncio.Event,
        on_rejected: Callable[[T, Msg, PermanentError], Awaitable[None]] | None = None,
        batch: int = 1,
    ) -> None:
        """Fetch from the durable consumer until ``stop`` is set; decode, handle, and ack as documented above."""
        await self.ensure_consumer(spec)
        sub = await self.js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(batch=batch, timeout=0.5)
                except NatsTimeout:
                    continue
                except Exception as exc:  # connection trouble: keep trying, the client reconnects
                    if stop.is_set():
                        break
                    log.warning("%s: fetch from %s failed: %r", service, spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self._handle_one(service, spec, adapter, handler, msg, on_rejected)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle_one(
        self,
        service: str,
        spec: ConsumerSpec,
        adapter: TypeAdapter[T],
        handler: Handler[T],
        msg: Msg,
        on_rejected: Callable[[T, Msg, PermanentError], Awaitable[None]] | None,
    ) -> None:
        try:
            value = adapter.validate_json(msg.data)
        except ValidationError as exc:
            reason = f"malformed message on {msg.subject}: {_short_validation(exc)}"
            log.error("%s: %s", service, reason)
            observe_message(service, msg.subject, "malformed", None)
            await self.deadletter(service, msg, reason)
            await msg.term()
            return

        beat = asyncio.create_task(_keep_in_progress(msg, spec.ack_wait_s))
        started = time.perf_counter()
        try:
            await handler(value, msg)
        except PermanentError as exc:
            observe_message(service, msg.subject, "rejected", time.perf_counter() - started)
            log.error("%s: rejected %s: %s", service, msg.subject, exc)
            await self.deadletter(service, msg, str(exc))
            if on_rejected is not None:
                with contextlib.suppress(Exception):
                    await on_rejected(value, msg, exc)
            await msg.term()
        except TemporaryError as exc:
            observe_message(service, msg.subject, "retry", time.perf_counter() - started)
            log.warning("%s: will retry %s in %.1fs: %s", service, msg.subject, exc.delay, exc)
            await msg.nak(delay=exc.delay)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak(delay=0.5)
            raise
        except Exception:
            observe_message(service, msg.subject, "error", time.perf_counter() - started)
            log.exception("%s: handler failed on %s; it will be redelivered", service, msg.subject)
            await msg.nak(delay=1.0)
        else:
            observe_message(service, msg.subject, "handled", time.perf_counter() - started)
            await msg.ack()
        finally:
            beat.cancel()


async def _keep_in_progress(msg: Msg, ack_wait_s: float) -> None:
    while True:
        await asyncio.sleep(max(ack_wait_s / 3, 0.5))
        with contextlib.suppress(Exception):
            await msg.in_progress()


class KeyedDispatcher(Generic[T]):
    """Consume in parallel across keys and strictly in order within a key (the coordinator's incidents).

    One fetch loop feeds a queue per key; each key has one worker that handles its messages one after another and
    acks each when done. A ``TemporaryError`` is retried *in place* (after its delay), not nak'ed, so a later event of
    the same key can never overtake it; after ``max_attempts`` the message is nak'ed and the worker moves on.
    ``max_inflight`` bounds unacknowledged messages across keys.
    """

    def __init__(
        self,
        bus: Bus,
        service: str,
        spec: ConsumerSpec,
        adapter: TypeAdapter[T],
        handler: Handler[T],
        key: Callable[[T], str],
        *,
        max_inflight: int = 64,
        max_attempts: int = 20,
    ) -> None:
        self.bus, self.service, self.spec, self.adapter = bus, service, spec, adapter
        self.handler, self.key = handler, key
        self.max_attempts = max_attempts
        self._slots = asyncio.Semaphore(max_inflight)
        self._queues: dict[str, asyncio.Queue[tuple[T, Msg]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.ensure_consumer(self.spec)
        sub = await self.bus.js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        try:
            while not stop.is_set():
                await self._slots.acquire()
                try:
                    msgs = await sub.fetch(batch=1, timeout=0.5)
                except NatsTimeout:
                    self._slots.release()
                    continue
                except Exception as exc:
                    self._slots.release()
                    if stop.is_set():
                        break
                    log.warning("%s: fetch failed: %r", self.service, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self._dispatch(msg)
        finally:
            for worker in self._workers.values():
                worker.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _dispatch(self, msg: Msg) -> None:
        try:
            value = self.adapter.validate_json(msg.data)
        except ValidationError as exc:
            await self._reject(msg, f"malformed message on {msg.subject}: {_short_validation(exc)}")
            return
        k = self.key(value)
        queue = self._queues.setdefault(k, asyncio.Queue())
        queue.put_nowait((value, msg))
        worker = self._workers.get(k)
        if worker is None or worker.done():
            self._workers[k] = asyncio.create_task(self._work(k, queue))

    async def _reject(self, msg: Msg, reason: str) -> None:
        try:
            log.error("%s: %s", self.service, reason)
            observe_message(self.service, msg.subject, "malformed", None)
            await self.bus.deadletter(self.service, msg, reason)
            await msg.term()
        finally:
            self._slots.release()

    async def _work(self, k: str, queue: asyncio.Queue[tuple[T, Msg]]) -> None:
        while not queue.empty():
            value, msg = queue.get_nowait()
            try:
                await self._handle(value, msg)
            finally:
                self._slots.release()
        self._queues.pop(k, None)
        self._workers.pop(k, None)

    async def _handle(self, value: T, msg: Msg) -> None:
        beat = asyncio.create_task(_keep_in_progress(msg, self.spec.ack_wait_s))
        started = time.perf_counter()
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await self.handler(value, msg)
                except PermanentError as exc:
                    observe_message(self.service, msg.subject, "rejected", time.perf_counter() - started)
                    log.error("%s: rejected %s: %s", self.service, msg.subject, exc)
                    await self.bus.deadletter(self.service, msg, str(exc))
                    await msg.term()
                    return
                except (TemporaryError, Exception) as exc:
                    delay = exc.delay if isinstance(exc, TemporaryError) else min(0.2 * 2**attempt, 5.0)
                    outcome = "retry" if isinstance(exc, TemporaryError) else "error"
                    observe_message(self.service, msg.subject, outcome, None)
                    if isinstance(exc, TemporaryError):
                        log.warning("%s: retrying %s in %.1fs: %s", self.service, msg.subject, delay, exc)
                    else:
                        log.exception("%s: handler failed on %s (attempt %d)", self.service, msg.subject, attempt)
                    await asyncio.sleep(delay)
                    continue
                observe_message(self.service, msg.subject, "handled", time.perf_counter() - started)
                await msg.ack()
                return
            await msg.nak(delay=1.0)
        finally:
            beat.cancel()


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def decode_json(data: bytes) -> Any:
    return json.loads(data)
