"""Incident records in a JetStream key-value bucket, each saved only over the revision it was loaded at.

Why here and not in Redis: Redis holds leases, which are meant to be forgotten (a lease that outlives its holder is
a bug). An incident and its open transaction are not: if Redis restarts empty or fails over to a lagging replica,
the coordinator must still know that a transaction was running, so that its writes are rolled back. The bucket is a
JetStream stream on disk (replicated in a NATS cluster), beside the journal and the events it already relies on.

- One key per record, ``<prefix>.rec.<incident>``; its KV revision is the record's version. A save is ``create``
  (new incident) or ``update`` with the loaded revision: a replica that lost its partition while paused cannot
  overwrite what its successor wrote (``StaleRecord``), exactly as with the former Redis compare-and-set.
- One marker per open incident, ``<prefix>.open.<incident>``, whose value is the incident id: the watchdog's list
  of open incidents. It is written *before* the record is created and deleted *after* the record is saved final, so
  a crash between the two leaves at worst a marker for a closed incident (the watchdog skips it), never an open
  incident without a marker.
"""

from __future__ import annotations

import contextlib
import logging

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.coordinator.machine import FINAL_STATES, IncidentRecord
from stratus.bus import Bus
from stratus.contracts import token
from stratus.errors import TemporaryError
from stratus.registry import incidents_bucket

log = logging.getLogger(__name__)


class StaleRecord(TemporaryError):
    """Another coordinator replica saved this incident since it was loaded here: this handler's view is stale. The
    event is redelivered and handled again against the current record (a no-op when it was already applied)."""


class KvIncidentStore:
    """Incident records in the ``<stream_prefix>_INCIDENTS`` bucket, keys under ``prefix`` (see the module doc)."""

    def __init__(self, bus: Bus, prefix: str) -> None:
        self.bus = bus
        self.prefix = token(prefix)
        self.bucket = f"{bus.topology.stream_prefix}_INCIDENTS"
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await incidents_bucket(self.bus)
        return self._kv

    def _record_key(self, incident_id: str) -> str:
        return f"{self.prefix}.rec.{token(incident_id)}"

    def _open_key(self, incident_id: str) -> str:
        return f"{self.prefix}.open.{token(incident_id)}"

    async def load(self, incident_id: str) -> IncidentRecord | None:
        kv = await self.kv()
        try:
            entry = await kv.get(self._record_key(incident_id))
        except KeyNotFoundError:  # also a deleted key
            return None
        except (NatsTimeout, OSError) as exc:
            raise TemporaryError(f"{incident_id}: the incident store did not answer: {exc!r}", delay=0.5) from exc
        if not entry.value:
            return None
        record = IncidentRecord.model_validate_json(entry.value)
        record.version = int(entry.revision or 0)
        return record

    async def save(self, record: IncidentRecord) -> None:
        kv = await self.kv()
        final = record.state in FINAL_STATES
        body = record.model_dump_json().encode()
        key = self._record_key(record.incident_id)
        try:
            if record.version == 0:
                if not final:
                    await kv.put(self._open_key(record.incident_id), record.incident_id.encode())
                revision = await kv.create(key, body)
            else:
                revision = await kv.update(key, body, last=record.version)
        except KeyWrongLastSequenceError as exc:
            raise StaleRecord(f"{record.incident_id}: saved by another replica since it was loaded", delay=0.2) from exc
        except (NatsTimeout, OSError) as exc:
            raise TemporaryError(f"{record.incident_id}: the incident store did not save: {exc!r}", delay=0.5) from exc
        record.version = int(revision)
        if final:
            with contextlib.suppress(KeyNotFoundError):
                await kv.delete(self._open_key(record.incident_id))

    async def open_ids(self) -> list[str]:
        """The ids of the open incidents: the current values of the open markers (one ordered consumer, filtered
        on the server to this prefix's markers)."""
        kv = await self.kv()
        watcher = await kv.watch(f"{self.prefix}.open.>", ignore_deletes=True)
        ids = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of the current values
                    break
                if entry.value:
                    ids.append(entry.value.decode())
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(ids)
