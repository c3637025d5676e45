"""The write-ahead transaction journal (A2 of the safety contract).

Shape and why:

- One JetStream subject per transaction (``stratus.journal.<tx_id>``) in the ``STRATUS_JOURNAL`` stream, so a
  transaction's records are read back in order with a subject filter, by any process, after any crash.
- ``intent`` records are published and *acknowledged by JetStream* before the write they describe runs; the gateway
  treats a failed append as a refusal, so no write ever happens without its undo on disk. ``outcome`` records follow.
- Appends use ``expected_last_subject_sequence`` (optimistic concurrency on the subject): two writers that somehow
  share a transaction id cannot interleave records, the second append fails instead.
- The undoer replays records back to front. An ``intent`` without an ``outcome`` is undone too: the writer may have
  died after the API accepted the write and before it recorded the outcome. Undo restores pre-images, so undoing a
  write that never happened is a no-op.
- The transaction's checkpoint (R1: mu, the state digest and the snapshot the undo must restore) is the subject's
  first entry, appended by the coordinator before it asks for any write (``append_checkpoint``). The undoer reads
  the checkpoint and the undo records from this one store (``read_entries``, ``checkpoint_of``), and both outlive
  Redis.
- **One message may carry two records.** The outcome of a write the API accepted changes nothing the undoer does (an
  intent without an outcome is undone too), so the gateway hands it over with the next write's intent and both go out
  as one ``JournalBatch`` message, one acknowledgement (``append_batch``); the transaction's last one is appended alone
  when the transaction flushes. Readers see the records, in order, never the batch, and a batch holds at most
  ``JOURNAL_BATCH_MAX`` records (a reader never has to hold an unbounded message).
- **A write's action is scrubbed once.** Its outcome carries the very action its intent carried (the same frozen
  object), so the journal keeps the audit view of the last action it scrubbed and reuses it for that outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.errors import TimeoutError as NatsTimeout
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError

from stratus.actions import Action
from stratus.bus import Bus
from stratus.contracts import (
    JOURNAL_BATCH_MAX,
    JOURNAL_MESSAGE_ADAPTER,
    JournalBatch,
    JournalEntry,
    JournalRecord,
    TransactionCheckpoint,
)
from stratus.crashpoints import crash_point
from stratus.errors import PermanentError, TemporaryError
from stratus.scrub import scrub_model, scrub_obj, scrub_text
from stratus.walwire import WalWire, WireError, WireRefused

log = logging.getLogger(__name__)

STREAM_NOT_FOUND = 10059
"""JetStream's error code for a missing stream (a missing message on a subject is 10037)."""


class JournalError(PermanentError):
    """The journal refused an append; the write it protects must not run."""


class Journal:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._last_seq: dict[str, int] = {}
        self._scrubbed: tuple[Action, Action] | None = None  # the last action scrubbed, and its audit view
        self._wire: WalWire | None = None  # the worker threads' blocking publisher (``begin_wired``)
        self._wire_tried = False

    def _audit_view(self, record: JournalRecord) -> JournalRecord:
        """``audit_view``, scrubbing a write's action once for its intent and its outcome (see the docstring)."""
        last = self._scrubbed
        if last is None or last[0] is not record.action:
            last = self._scrubbed = (record.action, scrub_model(record.action))
        return audit_view(record, scrubbed_action=last[1])

    async def append(self, record: JournalRecord) -> int:
        """Append ``record`` and return its stream sequence once JetStream has acknowledged it."""
        record = self._audit_view(record)
        what = f"#{record.seq} ({record.phase})"
        seq = await self._publish(record.tx_id, record, f"{record.tx_id}:{record.seq}:{record.phase}", what)
        if record.phase == "intent":
            crash_point("journal.after_intent")  # the write it announces has not run yet
        return seq

    async def append_batch(self, records: list[JournalRecord]) -> int:
        """Append ``records`` (one transaction's, in order) as one message; return its stream sequence once JetStream
        has acknowledged it. All of them are durable, or none is."""
        if not records or len({r.tx_id for r in records}) != 1 or len(records) > JOURNAL_BATCH_MAX:
            raise JournalError(
                f"a journal batch holds one transaction's records, at least one and at most {JOURNAL_BATCH_MAX} "
                f"(got {len(records)}); append more as several batches"
            )
        if len(records) == 1:
            return await self.append(records[0])
        clean = [self._audit_view(r) for r in records]
        last = clean[-1]
        batch = JournalBatch(tx_id=last.tx_id, records=clean)
        what = "+".join(f"#{r.seq} ({r.phase})" for r in clean)
        seq = await self._publish(last.tx_id, batch, f"{last.tx_id}:{last.seq}:{last.phase}", what)
        if any(r.phase == "intent" for r in clean):
            crash_point("journal.after_intent")  # the write it announces has not run yet
        return seq

    def close(self) -> None:
        """Close the wire, if ``begin_wired`` opened one (the async client is the bus's)."""
        if self._wire is not None:
            self._wire.close()

    def wire_ready(self, tx_id: str) -> bool:
        """Whether ``begin_wired`` can append to ``tx_id`` now (call it on the event loop): the connection is one the
        wire speaks (``WalWire.of``), and the subject's last sequence is known (a transaction's first append goes
        through ``append``/``append_batch``, which read it)."""
        if tx_id not in self._last_seq:
            return False
        if not self._wire_tried:
            self._wire_tried = True
            try:
                self._wire = WalWire.of(self.bus.nc)
            except Exception as exc:  # no connection state to read: the async client only
                log.debug("journal: no wire (%r)", exc)
        return self._wire is not None and self._wire.available

    def begin_wired(self, records: list[JournalRecord]) -> WiredAppend:
        """Send ``records`` (one transaction's, in order) as one message over the journal's wire, from a worker
        thread, after ``wire_ready`` said yes; ``WiredAppend.wait`` returns its sequence once JetStream acknowledged it.
        The same message, headers and checks as ``append_batch``; raises ``JournalError`` when nothing was sent."""
        if not records or len({r.tx_id for r in records}) != 1 or len(records) > JOURNAL_BATCH_MAX:
            raise JournalError(
                f"a journal batch holds one transaction's records, at least one and at most {JOURNAL_BATCH_MAX} "
                f"(got {len(records)}); append more as several batches"
            )
        clean = [self._audit_view(r) for r in records]
        last = clean[-1]
        entry: JournalRecord | JournalBatch = (
            clean[0] if len(clean) == 1 else JournalBatch(tx_id=last.tx_id, records=clean)
        )
        what = "+".join(f"#{r.seq} ({r.phase})" for r in clean)
        wire, expected = self._wire, self._last_seq.get(last.tx_id)
        if wire is None or expected is None:
            raise JournalError(f"journal append for {last.tx_id} {what}: no wire, or the last sequence is unknown")
        headers = {
            "Nats-Msg-Id": f"{last.tx_id}:{last.seq}:{last.phase}",
            "Nats-Expected-Last-Subject-Sequence": str(expected),
        }
        try:
            wire.send(self.bus.topology.journal(last.tx_id), entry.model_dump_json().encode(), headers)
        except WireError as exc:
            raise JournalError(f"journal append for {last.tx_id} {what} not sent: {exc}") from exc
        return WiredAppend(self, wire, last.tx_id, what, any(r.phase == "intent" for r in clean))

    async def append_checkpoint(self, checkpoint: TransactionCheckpoint) -> int:
        """Append the transaction's checkpoint (one per lease grant: a retry under the same lease is a no-op)."""
        msg_id = f"{checkpoint.tx_id}:checkpoint:{checkpoint.lease_token}"
        # The coordinator is not the transaction's writer: it asks the server for the subject's last sequence rather
        # than trusting what it appended itself (a mitigator may have appended since).
        self._last_seq.pop(checkpoint.tx_id, None)
        return await self._publish(checkpoint.tx_id, checkpoint, msg_id, "checkpoint")

    async def _publish(
        self, tx_id: str, entry: JournalRecord | TransactionCheckpoint | JournalBatch, msg_id: str, what: str
    ) -> int:
        subject = self.bus.topology.journal(tx_id)
        headers = {"Nats-Msg-Id": msg_id}
        last = self._last_seq.get(tx_id)
        if last is None:
            try:
                last = await self._last_subject_seq(tx_id)
            except NotFoundError as exc:
                raise JournalError(f"journal append for {tx_id}: no stream ({exc.description})") from exc
        headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        try:
            ack = await self.bus.js.publish(subject, entry.model_dump_json().encode(), headers=headers, timeout=5.0)
        except APIError as exc:
            raise JournalError(f"journal append for {tx_id} {what} refused by JetStream: {exc.description}") from exc
        except (NatsTimeout, OSError) as exc:
            raise JournalError(f"journal append for {tx_id} {what} not acknowledged: {exc!r}") from exc
        if ack.duplicate:
            log.info("journal: %s %s already recorded", tx_id, what)
        self._last_seq[tx_id] = ack.seq
        return ack.seq

    async def _last_subject_seq(self, tx_id: str) -> int:
        """The stream sequence of the subject's last record; 0 when it has none. ``NotFoundError`` without a stream."""
        try:
            msg = await self.bus.js.get_last_msg(self.bus.topology.journal_stream, self.bus.topology.journal(tx_id))
        except NotFoundError as exc:
            if exc.err_code == STREAM_NOT_FOUND:
                raise
            return 0
        return int(msg.seq or 0)

    async def read(self, tx_id: str, *, timeout: float = 10.0) -> list[JournalRecord]:
        """Every write record of a transaction, in append order (``read_entries`` without the checkpoint)."""
        return [e for e in await self.read_entries(tx_id, timeout=timeout) if isinstance(e, JournalRecord)]

    async def read_entries(self, tx_id: str, *, timeout: float = 10.0) -> list[JournalEntry]:
        """Every entry of a transaction, in append order, up to the subject's last sequence when the read began.

        The last sequence is asked of the server first and the read goes on until it has that record: a slow server
        makes the read slower, never shorter. When it cannot finish within ``timeout`` it raises ``TemporaryError``
        (retry later), so an undo plan is never built from part of a journal.
        """
        stream, subject = self.bus.topology.journal_stream, self.bus.topology.journal(tx_id)
        try:
            last = await self._last_subject_seq(tx_id)
        except NotFoundError as exc:
            raise TemporaryError(f"stream {stream} does not exist yet") from exc
        except (NatsTimeout, OSError, APIError) as exc:
            raise TemporaryError(
                f"journal of {tx_id}: the last sequence is unknown ({exc!r}); retry", delay=1.0
            ) from exc
        if last == 0:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        records: list[JournalEntry] = []
        seen = 0
        try:
            sub = await self.bus.js.subscribe(
                subject, stream=stream, ordered_consumer=True, deliver_policy=js_api.DeliverPolicy.ALL
            )
        except (NatsTimeout, OSError, APIError) as exc:
            raise TemporaryError(f"journal of {tx_id}: cannot read ({exc!r}); retry", delay=1.0) from exc
        try:
            while seen < last:
                left = deadline - loop.time()
                if left <= 0:
                    raise TemporaryError(
                        f"journal of {tx_id}: read {len(records)} record(s) up to sequence {seen} of {last} within "
                        f"{timeout:.0f}s; the undo plan would be partial, so retry",
                        delay=1.0,
                    )
                try:
                    msg = await sub.next_msg(timeout=min(left, 1.0))
                except NatsTimeout:
                    continue
                seq = msg.metadata.sequence.stream if msg.metadata and msg.metadata.sequence else seen + 1
                if seq > last:
                    break
                seen = seq
                message = JOURNAL_MESSAGE_ADAPTER.validate_json(msg.data)
                if isinstance(message, JournalBatch):
                    records.extend(message.records)
                else:
                    records.append(message)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return records


class WiredAppend:
    """A message ``Journal.begin_wired`` sent; ``wait`` (once, in the same thread) reads its acknowledgement."""

    def __init__(self, journal: Journal, wire: WalWire, tx_id: str, what: str, intent: bool) -> None:
        self.journal, self.wire, self.tx_id, self.what, self.intent = journal, wire, tx_id, what, intent

    def abandon(self) -> None:
        """The acknowledgement will not be read (the worker stopped before ``wait``): release the wire."""
        self.wire.abandon()

    def wait(self) -> int:
        """The message's stream sequence; raises ``JournalError`` when JetStream refused it or did not answer."""
        try:
            seq = self.wire.ack()
        except WireRefused as exc:
            raise JournalError(
                f"journal append for {self.tx_id} {self.what} refused by JetStream: {exc.description}"
            ) from exc
        except WireError as exc:
            raise JournalError(f"journal append for {self.tx_id} {self.what} not acknowledged: {exc}") from exc
        self.journal._last_seq[self.tx_id] = seq
        if self.intent:
            crash_point("journal.after_intent")  # the write it announces has not run yet
        return seq


def audit_view(record: JournalRecord, *, scrubbed_action: Action | None = None) -> JournalRecord:
    """The record as the journal keeps it: the audit fields (action, message, dry-run summary) scrubbed of
    credentials; the pre-image and the undo stay exact, because the undoer executes them. A Secret pre-image is never
    kept (the write policy refuses Secret writes; this is the store's own check). ``scrubbed_action`` is
    ``scrub_model(record.action)`` when the caller has it already."""
    if (record.pre_image or {}).get("kind") == "Secret":
        raise JournalError(
            f"journal append for {record.tx_id} #{record.seq} refused: it holds a Secret's pre-image, and the journal "
            "never stores Secret values"
        )
    action = scrub_model(record.action) if scrubbed_action is None else scrubbed_action
    message = scrub_text(record.message)
    dry_run = scrub_obj(record.dry_run) if record.dry_run is not None else None
    if action is record.action and message == record.message and dry_run == record.dry_run:
        return record  # nothing to mask: the record is its own audit view
    return record.model_copy(update={"action": action, "message": message, "dry_run": dry_run})


def checkpoint_of(entries: list[JournalEntry]) -> TransactionCheckpoint | None:
    """The checkpoint the transaction's writes started from: the last one appended before its first intent (a
    checkpoint taken again after a write would describe a state the writes had already changed)."""
    found: TransactionCheckpoint | None = None
    for entry in entries:
        if isinstance(entry, TransactionCheckpoint):
            found = entry
        elif entry.phase == "intent":
            break
    return found


def undo_plan(records: list[JournalRecord]) -> list[JournalRecord]:
    """The intents to undo, newest first: every intent whose write may have happened (see the module docstring).

    An intent whose outcome says the API rejected the write (``ok is False``) changed nothing and is skipped.
    """
    outcomes = {r.seq: r for r in records if r.phase == "outcome"}
    intents = [r for r in records if r.phase == "intent"]
    plan = [r for r in intents if not (r.seq in outcomes and outcomes[r.seq].ok is False)]
    return sorted(plan, key=lambda r: r.seq, reverse=True)
