"""The bus: FastStream's NATS broker on JetStream, with the delivery semantics the safety story depends on.

Every consumer is a durable JetStream pull consumer shared by all replicas of its service (work-queue semantics),
and every message goes through one middleware (``DeliveryMiddleware``) that decides its fate:

- the handler returned: **ack** (only then: a replica that dies mid-handle has its message redelivered);
- the body does not validate against its contract (the handler is never called): a ``DeadLetter`` record with the
  validation error, then **term**;
- ``PermanentError``: a ``DeadLetter`` record with the reason, the service's ``on_dropped`` hook (an agent turns it
  into a ``WorkFailed`` event, the coordinator escalates the incident), then **term**;
- ``TemporaryError``: **nak with its delay**; anything unexpected: nak with a back-off that grows per delivery;
- a message that failed on ``max_deliver`` deliveries (or arrives after that many, e.g. because it crashed every
  process that took it) is **exhausted**: dead-lettered and handed to ``on_dropped`` like a refusal. The server's own
  limit is off (``max_deliver=-1``), so the server never gives a message up silently: this middleware does, loudly.

While a handler runs the middleware tells the server the message is **in progress** every third of the ack wait, so
long work is not redelivered to a second replica. On stop, the broker stops fetching and waits up to
``STRATUS_STOP_GRACE_S`` for running handlers before it cancels them (a cancelled message is redelivered).

Per-key order (the coordinator's incidents) is not the middleware's job: a consumer with ``max_ack_pending=1`` is
handed one message at a time by the server, so nothing overtakes a message that is being retried (see
``Topology.coordinator_consumer``).

Subjects, streams and durable names come from a ``Topology`` (``STRATUS_SUBJECT_PREFIX`` and friends), so two
installs on one NATS server never share a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats
from faststream import BaseMiddleware
from faststream.exceptions import NackMessage, RejectMessage
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from stratus.contracts import DEFAULT_TOPOLOGY, ConsumerSpec, DeadLetter, StreamSpec, Topology
from stratus.errors import PermanentError, TemporaryError
from stratus.metrics import observe_message, record_published
from stratus.observability import ids_of, work_context
from stratus.scrub import scrub_json, scrub_model

if TYPE_CHECKING:
    from faststream.message import StreamMessage
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

PULL_TIMEOUT_S = 1.0
"""How long one pull request waits for a message; also how fast a stopping consumer notices."""


@dataclass(frozen=True)
class Dropped:
    """A message a service gave up on, as the ``on_dropped`` hook sees it."""

    service: str
    subject: str
    cause: str
    reason: str
    body: dict[str, Any] | None
    deliveries: int

    @property
    def incident_id(self) -> str | None:
        return ids_of(self.body)[0] if self.body else None


DroppedHook = Callable[[Dropped], Awaitable[None]]


@dataclass
class _Consumer:
    """What the middleware needs to know about one subscriber."""

    service: str
    spec: ConsumerSpec
    on_dropped: DroppedHook | None = None
    accept: Callable[[], bool] | None = None


@dataclass
class Bus:
    """One service's FastStream ``NatsBroker`` (one NATS connection), its topology and its consumers."""

    broker: NatsBroker
    topology: Topology = DEFAULT_TOPOLOGY
    service: str = "client"
    _consumers: dict[int, _Consumer] = field(default_factory=dict)
    _manual: set[int] = field(default_factory=set)

    @classmethod
    def create(
        cls,
        url: str,
        *,
        service: str,
        topology: Topology = DEFAULT_TOPOLOGY,
        tracer_provider: TracerProvider | None = None,
        stop_grace_s: float = 30.0,
        connect_timeout: int = 5,
        reconnect: bool = True,
    ) -> Bus:
        """A bus whose broker is not connected yet: register consumers, then ``start()``. ``reconnect=False``: one
        connection attempt, no reconnects (one-shot commands, see ``stratus.oneshot``)."""
        middlewares: list[Any] = []
        if tracer_provider is not None:
            from faststream.nats.opentelemetry import NatsTelemetryMiddleware

            middlewares.append(NatsTelemetryMiddleware(tracer_provider=tracer_provider))
        broker = NatsBroker(
            url,
            name=f"stratus-{service}",
            connect_timeout=connect_timeout,
            max_reconnect_attempts=-1 if reconnect else 0,
            reconnect_time_wait=1,
            allow_reconnect=reconnect,
            drain_timeout=5,
            graceful_timeout=stop_grace_s,
            logger=logging.getLogger(f"faststream.{service}"),
            log_level=logging.DEBUG,
        )
        bus = cls(broker=broker, topology=topology, service=service)
        middlewares.append(bus._middleware)
        for m in middlewares:
            broker.add_middleware(m)
        return bus

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "client",
        topology: Topology = DEFAULT_TOPOLOGY,
        connect_timeout: float = 5.0,
    ) -> Bus:
        """A connected bus that only publishes and reads (tools, tests); ``ensure_streams`` declares the topology."""
        bus = cls.create(url, service=name, topology=topology, connect_timeout=max(1, round(connect_timeout)))
        await bus.open()
        await bus.broker.start()
        return bus

    async def open(self) -> None:
        """Connect (raises ``TemporaryError`` when NATS does not answer)."""
        try:
            await self.broker.connect()
        except Exception as exc:  # nats-py raises several unrelated types for "cannot connect"
            servers = self.broker._connection_kwargs.get("servers") or ["?"]
            url = servers if isinstance(servers, str) else ", ".join(servers)
            raise TemporaryError(f"cannot connect to NATS at {url}: {exc!r}", delay=1.0) from exc

    async def start(self) -> None:
        """Start every registered consumer except the manual ones (the broker must be connected)."""
        for sub in self.broker.subscribers:
            if id(sub) not in self._manual and not sub.running:
                await sub.start()
        self.broker.running = True

    async def close(self) -> None:
        """Stop consuming (running handlers get the grace period), then drain and close the connection."""
        with contextlib.suppress(Exception):
            await self.broker.stop()

    @property
    def nc(self) -> NATS:
        nc: NATS = self.broker.config.connection_state.connection
        return nc

    @property
    def js(self) -> JetStreamContext:
        js: JetStreamContext = self.broker.config.connection_state.stream
        return js

    @property
    def connected(self) -> bool:
        state = self.broker.config.connection_state
        return bool(state) and bool(getattr(state.connection, "is_connected", False))

    @property
    def closed(self) -> bool:
        """The NATS connection was opened and is now closed for good (reconnects exhausted, or a fatal error): only a
        restart of the process brings it back, so liveness fails on it."""
        state = self.broker.config.connection_state
        return bool(state) and bool(getattr(state.connection, "is_closed", False))

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

    async def ensure_streams(self, streams: tuple[StreamSpec, ...] | None = None) -> None:
        for spec in self.topology.streams() if streams is None else streams:
            await self.ensure_stream(spec)

    # --- publishing -------------------------------------------------------------------------------------------

    async def publish(
        self, subject: str, message: BaseModel, *, dedup_id: str | None = None, stream: str | None = None
    ) -> js_api.PubAck | None:
        """Publish to JetStream and wait for the ack; ``dedup_id`` (default: the message's ``id``) de-duplicates.

        Goes through the broker, so the trace context travels in the headers."""
        msg_id = dedup_id or getattr(message, "id", None)
        headers = {"Nats-Msg-Id": str(msg_id)} if msg_id else None
        stream = stream or self._stream_of(subject)
        if stream in (self.topology.events_stream, self.topology.deadletter_stream):
            message = scrub_model(message)  # the audit trail never keeps a credential (stratus.scrub)
        try:
            ack = await self.broker.publish(message, subject, headers=headers, stream=stream, timeout=5.0)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise TemporaryError(f"JetStream did not acknowledge a publish to {subject}: {exc!r}") from exc
        record_published(self.service, subject)
        return ack

    async def publish_json(self, subject: str, payload: str, msg_id: str) -> None:
        """Publish a body that is already JSON (the coordinator's outbox), de-duplicated by ``msg_id``."""
        if self._stream_of(subject) in (self.topology.events_stream, self.topology.deadletter_stream):
            payload = scrub_json(payload)
        try:
            await self.broker.publish(
                payload.encode(),
                subject,
                headers={"Nats-Msg-Id": msg_id, "content-type": "application/json"},
                stream=self._stream_of(subject),
                timeout=5.0,
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise TemporaryError(f"JetStream did not acknowledge a publish to {subject}: {exc!r}") from exc
        record_published(self.service, subject)

    def _stream_of(self, subject: str) -> str:
        t = self.topology
        family = subject[len(t.prefix) + 1 :].split(".", 1)[0] if subject.startswith(t.prefix + ".") else ""
        streams = {
            "alerts": t.alerts_stream,
            "work": t.work_stream,
            "events": t.events_stream,
            "journal": t.journal_stream,
            "deadletter": t.deadletter_stream,
        }
        return streams.get(family, t.events_stream)

    async def deadletter(self, record: DeadLetter) -> None:
        """Keep a message no handler could take, with the reason, so nothing is lost."""
        dedup = f"dl:{record.service}:{record.stream_seq}" if record.stream_seq is not None else None
        await self.publish(
            self.topology.deadletter(record.service),
            record,
            dedup_id=dedup or f"dl:{time.time_ns()}",
            stream=self.topology.deadletter_stream,
        )

    # --- consuming --------------------------------------------------------------------------------------------

    def subscribe(
        self,
        spec: ConsumerSpec,
        body: Any,
        handler: Callable[[Any], Awaitable[None]],
        *,
        name: str,
        description: str,
        on_dropped: DroppedHook | None = None,
        accept: Callable[[], bool] | None = None,
        manual: bool = False,
    ) -> Any:
        """Register a durable pull consumer whose messages, validated as ``body`` (a model or an annotated union),
        go to ``handler`` one at a time per fetch, with the semantics of the module docstring.

        ``name`` and ``description`` (and ``body``'s field descriptions) become the AsyncAPI document. ``accept``
        is asked before each message: when it answers False (a coordinator replica that lost its partition), the
        message is nak'ed at once for the partition's new owner. Returns the FastStream subscriber (started with
        the broker, or, when ``manual``, by the caller with ``await sub.start()``)."""

        async def consume(message: Any) -> None:
            await handler(message)

        consume.__annotations__ = {"message": body, "return": None}
        consume.__name__ = consume.__qualname__ = name
        consume.__doc__ = description
        config = js_api.ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.NEW if spec.deliver == "new" else js_api.DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=spec.max_ack_pending,
            filter_subject=None if spec.filter_subjects else spec.filter_subject,
            filter_subjects=list(spec.filter_subjects) or None,
        )
        subscriber = self.broker.subscriber(
            spec.filter_subject,
            stream=JStream(spec.stream, declare=False),
            durable=spec.durable,
            config=config,
            pull_sub=PullSub(batch_size=1, timeout=PULL_TIMEOUT_S),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{spec.filter_subject}:{name}",
            description=description,
        )
        subscriber(consume)
        self._consumers[id(subscriber)] = _Consumer(self.service, spec, on_dropped, accept)
        if manual:
            self._manual.add(id(subscriber))
        return subscriber

    def declare(self, subject: str, body: Any, description: str) -> None:
        """Document that this service publishes ``body`` on ``subject`` (a template such as
        ``stratus.journal.{tx_id}``): it goes into the AsyncAPI document; publishing itself is ``publish``."""
        self.broker.publisher(subject, schema=body, title=f"{subject}:{self.service}", description=description)

    def _middleware(self, msg: Any, /, *, context: Any) -> DeliveryMiddleware:
        return DeliveryMiddleware(msg, context=context, bus=self)


class DeliveryMiddleware(BaseMiddleware):
    """Ack, nak, term and dead-letter as the module docstring says; heartbeats; metrics; log and trace context."""

    def __init__(self, msg: Any, /, *, context: Any, bus: Bus) -> None:
        super().__init__(msg, context=context)
        self.bus = bus

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        consumer = self.bus._consumers.get(id(self.context.get_local("handler_")))
        if consumer is None:  # not one of ours (e.g. health request/reply)
            return await call_next(msg)
        raw = msg.raw_message
        subject = raw.subject
        deliveries, seq = _delivery_of(raw)
        body = await _decoded(msg)
        incident_id, tx_id = ids_of(body or {})
        with work_context(incident_id, tx_id, consumer.service):
            if consumer.accept is not None and not consumer.accept():
                raise NackMessage(delay=0.2)  # not ours any more: the new owner takes it
            if deliveries > consumer.spec.max_deliver:
                await self._drop(consumer, raw, body, deliveries, seq, "exhausted", _exhausted(deliveries, "earlier"))
                raise RejectMessage()
            beat = asyncio.create_task(_keep_in_progress(raw, consumer.spec.ack_wait_s))
            started = time.perf_counter()
            try:
                result = await call_next(msg)
            except ValidationError as exc:
                reason = f"malformed message on {subject}: {_short_validation(exc)}"
                observe_message(consumer.service, subject, "malformed", None)
                log.error("%s: %s", consumer.service, reason)
                await self._drop(consumer, raw, body, deliveries, seq, "malformed", reason)
                raise RejectMessage() from None
            except PermanentError as exc:
                observe_message(consumer.service, subject, "rejected", time.perf_counter() - started)
                log.error("%s: rejected %s: %s", consumer.service, subject, exc)
                await self._drop(consumer, raw, body, deliveries, seq, "rejected", str(exc))
                raise RejectMessage() from None
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await raw.nak(delay=0.5)
                raise
            except Exception as exc:
                temporary = isinstance(exc, TemporaryError)
                observe_message(
                    consumer.service, subject, "retry" if temporary else "error", time.perf_counter() - started
                )
                if deliveries >= consumer.spec.max_deliver:
                    reason = _exhausted(deliveries, f"last: {exc!r}")
                    log.error("%s: giving up %s: %s", consumer.service, subject, reason)
                    await self._drop(consumer, raw, body, deliveries, seq, "exhausted", reason)
                    raise RejectMessage() from None
                if isinstance(exc, TemporaryError):
                    delay = exc.delay
                    log.warning("%s: will retry %s in %.1fs: %s", consumer.service, subject, delay, exc)
                else:
                    delay = min(0.5 * 2 ** (deliveries - 1), 10.0)
                    log.exception("%s: handler failed on %s; redelivery in %.1fs", consumer.service, subject, delay)
                raise NackMessage(delay=delay) from None
            finally:
                beat.cancel()
            observe_message(consumer.service, subject, "handled", time.perf_counter() - started)
            return result

    async def _drop(
        self,
        consumer: _Consumer,
        raw: Any,
        body: dict[str, Any] | None,
        deliveries: int,
        seq: int | None,
        cause: str,
        reason: str,
    ) -> None:
        """The dead-letter record, then the service's hook. If the record cannot be stored the message is not
        terminated (nak: it comes back), so nothing is dropped without a trace."""
        incident_id, tx_id = ids_of(body or {})
        record = DeadLetter(
            service=consumer.service,
            subject=raw.subject,
            cause=cause,  # type: ignore[arg-type]
            reason=reason,
            payload=raw.data.decode("utf-8", errors="replace"),
            deliveries=deliveries,
            stream_seq=seq,
            incident_id=incident_id,
            tx_id=tx_id,
        )
        try:
            await self.bus.deadletter(record)
        except Exception as exc:
            log.error("%s: could not store a dropped message in the dead-letter stream: %r", consumer.service, exc)
            raise NackMessage(delay=2.0) from exc
        if consumer.on_dropped is not None:
            dropped = Dropped(consumer.service, raw.subject, cause, reason, body, deliveries)
            try:
                await consumer.on_dropped(dropped)
            except Exception as exc:
                # The hook is how an incident learns that its work was dropped (WorkFailed, escalation): it must not
                # be skipped. The message comes back and is dropped again, hook included, until the hook works.
                log.exception("%s: the on_dropped hook failed for %s; retrying", consumer.service, raw.subject)
                raise NackMessage(delay=2.0) from exc


async def key_value(js: JetStreamContext, config: js_api.KeyValueConfig) -> KeyValue:
    """The key-value bucket ``config.bucket``, created with ``config`` when it is missing (when another process creates
    it at the same moment, the one it made is opened)."""
    bucket = str(config.bucket)
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_key_value(config=config)
        except BadRequestError:
            return await js.key_value(bucket)


def kv_key(scope: str) -> str:
    """A scope name as a key-value key (letters, digits, '-' and '_'; others become '_'; at most 200 characters)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in scope[:200]) or "_"


async def _keep_in_progress(raw: Any, ack_wait_s: float) -> None:
    """Tell the server the message is still being worked on, so it is not redelivered to another replica."""
    while True:
        await asyncio.sleep(max(ack_wait_s / 3, 0.5))
        with contextlib.suppress(Exception):
            await raw.in_progress()


def _delivery_of(raw: Any) -> tuple[int, int | None]:
    """(deliveries so far including this one, stream sequence); (1, None) for a message that is not from JetStream
    (an in-memory test broker)."""
    try:
        meta = raw.metadata
    except Exception:
        return 1, None
    return int(meta.num_delivered or 1), int(meta.sequence.stream)


async def _decoded(msg: StreamMessage[Any]) -> dict[str, Any] | None:
    """The body as a JSON object, or None. FastStream caches the decoded body: the handler's validation reuses it."""
    try:
        value = await msg.decode()
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def _exhausted(deliveries: int, what: str) -> str:
    return f"failed on each of {deliveries} deliveries ({what}); given up instead of retried forever"


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more
