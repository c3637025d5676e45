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
"""

from __future__ import annotations

import contextlib
import logging

from nats.errors import TimeoutError as NatsTimeout
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError

from stratus.bus import Bus
from stratus.contracts import JOURNAL_STREAM, JournalRecord, journal_subject
from stratus.errors import PermanentError, TemporaryError

log = logging.getLogger(__name__)


class JournalError(PermanentError):
    """The journal refused an append; the write it protects must not run."""


class Journal:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._last_seq: dict[str, int] = {}

    async def append(self, record: JournalRecord) -> int:
        """Append ``record`` and return its stream sequence once JetStream has acknowledged it."""
        subject = journal_subject(record.tx_id)
        headers = {"Nats-Msg-Id": f"{record.tx_id}:{record.seq}:{record.phase}"}
        last = self._last_seq.get(record.tx_id)
        if last is None:
            last = await self._last_subject_seq(record.tx_id)
        headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        try:
            ack = await self.bus.js.publish(subject, record.model_dump_json().encode(), headers=headers, timeout=5.0)
        except APIError as exc:
            raise JournalError(
                f"journal append for {record.tx_id} #{record.seq} ({record.phase}) refused by JetStream: "
                f"{exc.description}"
            ) from exc
        except (NatsTimeout, OSError) as exc:
            raise JournalError(f"journal append for {record.tx_id} #{record.seq} not acknowledged: {exc!r}") from exc
        if ack.duplicate:
            log.info("journal: %s #%s %s already recorded", record.tx_id, record.seq, record.phase)
        self._last_seq[record.tx_id] = ack.seq
        return ack.seq

    async def _last_subject_seq(self, tx_id: str) -> int:
        try:
            msg = await self.bus.js.get_last_msg(JOURNAL_STREAM, journal_subject(tx_id))
        except NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def read(self, tx_id: str) -> list[JournalRecord]:
        """Every record of a transaction, in append order."""
        try:
            info = await self.bus.js.stream_info(JOURNAL_STREAM)
        except NotFoundError as exc:
            raise TemporaryError(f"stream {JOURNAL_STREAM} does not exist yet") from exc
        if info.state.messages == 0:
            return []
        sub = await self.bus.js.subscribe(
            journal_subject(tx_id),
            stream=JOURNAL_STREAM,
            ordered_consumer=True,
            deliver_policy=js_api.DeliverPolicy.ALL,
        )
        records: list[JournalRecord] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except NatsTimeout:
                    break
                records.append(JournalRecord.model_validate_json(msg.data))
                pending = msg.metadata.num_pending if msg.metadata else 0
                if pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return records


def undo_plan(records: list[JournalRecord]) -> list[JournalRecord]:
    """The intents to undo, newest first: every intent whose write may have happened (see the module docstring).

    An intent whose outcome says the API rejected the write (``ok is False``) changed nothing and is skipped.
    """
    outcomes = {r.seq: r for r in records if r.phase == "outcome"}
    intents = [r for r in records if r.phase == "intent"]
    plan = [r for r in intents if not (r.seq in outcomes and outcomes[r.seq].ok is False)]
    return sorted(plan, key=lambda r: r.seq, reverse=True)
