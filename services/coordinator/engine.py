"""The coordinator's engine: applies incident events to durable records and owns the transaction protocol.

Every handler loads the incident's record, checks that the event is the one the current state waits for (anything
else is a duplicate, a redelivery or a straggler and changes nothing), changes the record, and saves it together
with its outbox before publishing (see ``machine``). One incident's events are handled strictly in order (the
dispatcher keys on the incident id); different incidents run concurrently.

The engine also owns the A-Lock for transactions: it takes the scope's write lease before the checkpoint, hands it
to the mitigator (which renews it while it works), keeps it while the system settles and mu is measured, and hands
the same lease to the undoer on abort. A watchdog notices a writer whose lease lapsed (crashed, paused, partitioned):
it takes a fresh lease, whose higher fencing token shuts the old writer out, and has the transaction rolled back
from its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from services.coordinator.machine import (
    FINAL_STATES,
    Attempt,
    IncidentRecord,
    Outgoing,
    State,
    decide,
    escalation_report,
    healthy,
    reflection,
)
from stratus.alock import ALock, FencingError, lease_keeper
from stratus.bus import Bus
from stratus.contracts import (
    COORDINATOR_EVENT_KINDS,
    EVENTS_STREAM,
    ActionExecuted,
    Checkpointed,
    DiagnoseRequest,
    DiagnosisReady,
    Event,
    IncidentClosed,
    IncidentEvent,
    IncidentOpened,
    Lease,
    MitigateRequest,
    Severity,
    StateChanged,
    TransactionDecided,
    TransactionEnded,
    TransactionStarted,
    UndoCompleted,
    UndoRequest,
    WorkFailed,
    events_subject,
    utcnow,
    work_subject,
)
from stratus.metrics import record_transition
from stratus.registry import Registry
from stratus.settings import CoordinatorSettings

log = logging.getLogger(__name__)


class Observer(Protocol):
    """What the coordinator reads of the cluster: mu, and the normalised state digest with its snapshot."""

    async def measure(self, scope: str) -> Severity: ...

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]: ...


class IncidentStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}"

    async def load(self, incident_id: str) -> IncidentRecord | None:
        raw = await self.redis.get(self._key(incident_id))
        return IncidentRecord.model_validate_json(raw) if raw else None

    async def save(self, record: IncidentRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(record.incident_id), record.model_dump_json())
            if record.state in FINAL_STATES:
                pipe.srem(f"{self.prefix}:incidents:open", record.incident_id)
            else:
                pipe.sadd(f"{self.prefix}:incidents:open", record.incident_id)
            await pipe.execute()

    async def open_ids(self) -> list[str]:
        members = await self.redis.smembers(f"{self.prefix}:incidents:open")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


class Engine:
    def __init__(
        self,
        bus: Bus,
        redis: aioredis.Redis,
        alock: ALock,
        observer: Observer,
        settings: CoordinatorSettings,
        *,
        prefix: str = "stratus",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.alock = alock
        self.observer = observer
        self.settings = settings
        self.store = IncidentStore(redis, prefix)
        self.registry = Registry(redis, prefix=prefix)
        self.sleep = sleep
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # --- dispatch ----------------------------------------------------------------------------------------------

    async def handle(self, event: Event, _msg: object = None) -> None:
        if event.kind in COORDINATOR_EVENT_KINDS:
            return
        async with self._locks[event.incident_id]:
            if isinstance(event, IncidentOpened):
                await self._on_opened(event)
                return
            record = await self.store.load(event.incident_id)
            if record is None:
                log.warning("event %s for unknown incident %s ignored", event.kind, event.incident_id)
                return
            await self._flush(record)
            handler = {
                "diagnosis": self._on_diagnosis,
                "transaction_started": self._on_started,
                "action_executed": self._on_action,
                "transaction_ended": self._on_transaction_ended,
                "undo_completed": self._on_undo_completed,
                "work_failed": self._on_work_failed,
            }.get(event.kind)
            if handler is not None:
                await handler(record, event)

    # --- handlers ----------------------------------------------------------------------------------------------

    async def _on_opened(self, event: IncidentOpened) -> None:
        record = await self.store.load(event.incident_id)
        if record is not None:
            await self._flush(record)
            return
        record = IncidentRecord(
            incident_id=event.incident_id, scope=event.scope, baseline=event.baseline, visible_mu=[event.baseline]
        )
        self._move(record, "diagnosing", "incident opened")
        request = DiagnoseRequest(
            id=f"{record.incident_id}:diagnose",
            incident_id=record.incident_id,
            scope=record.scope,
            evidence=event.evidence,
        )
        self._emit_work(record, "diagnoser", request)
        await self._commit(record)

    async def _on_diagnosis(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, DiagnosisReady)
        if record.state != "diagnosing":
            return
        record.diagnosis = event
        await self._start_attempt(record)

    async def _on_started(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, TransactionStarted)
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "mitigating" or attempt.started:
            return
        attempt.started = True
        await self.store.save(record)

    async def _on_action(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, ActionExecuted)
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "mitigating":
            return
        if event.seq > len(attempt.actions):
            attempt.actions.append(event.action)
            if event.mu_after is not None:
                attempt.hidden_mu.append(event.mu_after)
            await self.store.save(record)

    async def _on_transaction_ended(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, TransactionEnded)
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state not in ("mitigating", "validating"):
            return
        if record.state == "mitigating":
            if event.hidden_mu:
                attempt.hidden_mu = list(event.hidden_mu)
            if event.needs_scope and event.needs_scope != (record.write_scope or record.scope):
                record.write_scope = event.needs_scope
                record.reflections.append(
                    f"Attempt {attempt.n} needed writes on scope '{event.needs_scope}' that its lease did not cover; "
                    f"the next attempt holds a '{event.needs_scope}' lease."
                )
            note = f"transaction {event.outcome}: {event.actions} write(s)" + (
                f"; {event.reason}" if event.reason else ""
            )
            self._move(record, "validating", note)
            await self._commit(record)
        await self._validate(record, attempt)

    async def _on_undo_completed(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, UndoCompleted)
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "undoing":
            return
        attempt.undo_divergences = len(event.divergences)
        # With no executed write undone the transaction changed nothing: nothing to converge and no state of
        # Stratus's making to show (whatever mu does now is the fault's own doing).
        if event.undone or event.divergences:
            record.visible_mu.append((await self._settle_after_undo(record)).mu)
        await self._release_lease(record)
        if event.divergences:
            record.report = f"undo of {attempt.tx_id} left {len(event.divergences)} divergence(s)"
        await self._start_attempt(record)

    async def _on_work_failed(self, record: IncidentRecord, event: IncidentEvent) -> None:
        assert isinstance(event, WorkFailed)
        attempt = record.attempt
        if event.service == "diagnoser" and record.state == "diagnosing":
            record.reflections.append(f"Diagnosis failed: {event.reason}")
            await self._start_attempt(record)
        elif event.service == "mitigator" and record.state == "mitigating" and attempt and attempt.tx_id == event.tx_id:
            ended = TransactionEnded(
                incident_id=record.incident_id,
                tx_id=attempt.tx_id,
                attempt=attempt.n,
                actions=len(attempt.actions),
                outcome="failed",
                reason=event.reason,
                hidden_mu=attempt.hidden_mu,
            )
            await self._on_transaction_ended(record, ended)
        elif event.service == "undoer" and record.state == "undoing" and attempt and attempt.tx_id == event.tx_id:
            record.report = f"undo of {attempt.tx_id} failed: {event.reason}"
            await self._escalate(record, record.report)

    # --- the transaction protocol ------------------------------------------------------------------------------

    async def _start_attempt(self, record: IncidentRecord) -> None:
        n = len(record.attempts) + 1
        if n > 1 + self.settings.max_retries:
            await self._escalate(record, f"no attempt left after {n - 1}")
            return
        tx_id = f"{record.incident_id}-tx{n}"
        lease_scope = record.write_scope or record.scope
        await self._steady(record.scope)
        lease = await self.alock.acquire_write(
            lease_scope,
            f"{record.incident_id}/{tx_id}",
            self.settings.lease_ttl_s,
            wait_s=self.settings.lease_ttl_s + 5,
        )
        try:
            pre = await self.observer.measure(record.scope)
            if healthy(pre):
                await self.alock.release(lease)
                record.visible_mu.append(pre.mu)
                self._move(record, "resolved", "the oracles pass")
                self._close(record, "resolved", "the oracles pass")
                await self._commit(record)
                await self.registry.release_scope(record.scope, record.incident_id)
                return
            digest, snapshot = await self.observer.snapshot(record.scope, lease_scope)
            await self.registry.put_checkpoint(tx_id, snapshot)
            if n == 1:
                # b is the state Stratus found when it first acted: detection may have caught the fault unfolding.
                record.baseline = pre.mu
                record.visible_mu = [pre.mu]
        except BaseException:
            with contextlib.suppress(Exception):
                await self.alock.release(lease)
            raise
        record.lease = lease
        record.attempts.append(Attempt(n=n, tx_id=tx_id, mu_pre=pre.mu, digest_pre=digest, lease_scope=lease_scope))
        self._move(record, "mitigating", f"attempt {n}", attempt=n)
        self._emit(
            record,
            Checkpointed(
                id=f"{tx_id}:checkpoint",
                incident_id=record.incident_id,
                tx_id=tx_id,
                attempt=n,
                severity=pre,
                digest=digest,
            ),
        )
        request = MitigateRequest(
            id=f"{tx_id}:mitigate",
            incident_id=record.incident_id,
            scope=record.scope,
            tx_id=tx_id,
            attempt=n,
            lease=lease,
            diagnosis=record.diagnosis,
            reflections=record.reflections[-3:],
            max_actions=self.settings.max_actions,
        )
        self._emit_work(record, "mitigator", request)
        await self._commit(record)

    async def _validate(self, record: IncidentRecord, attempt: Attempt) -> None:
        """R3: let the system settle, measure mu_post, commit or abort."""
        assert record.lease is not None
        if not await self.alock.check_fence(record.lease.scope, record.lease.token):
            # The lease lapsed while nobody held it for the validation (e.g. this coordinator restarted after the
            # mitigator had finished). The writes are done and journaled; take a fresh lease to validate them.
            await self._release_lease(record)
            record.lease = await self.alock.acquire_write(
                attempt.lease_scope or record.scope,
                f"{record.incident_id}/{attempt.tx_id}/validate",
                self.settings.lease_ttl_s,
                wait_s=self.settings.lease_ttl_s + 5,
            )
            await self.store.save(record)
        lost = False
        try:
            async with lease_keeper(
                self.alock, record.lease, self.settings.lease_ttl_s, release_on_exit=False
            ) as keeper:
                await self.sleep(self.settings.settle_s)
                post = await self.observer.measure(record.scope)
                lost = keeper.lost.is_set()
                record.lease = keeper.lease
        except FencingError:
            lost = True
            post = await self.observer.measure(record.scope)
        decision, reason = decide(attempt.mu_pre, post, record.baseline)
        if lost and decision == "commit":
            decision, reason = "abort", "the transaction's lease was lost before it could commit"
        attempt.mu_post, attempt.decision, attempt.reason = post.mu, decision, reason
        self._emit(
            record,
            TransactionDecided(
                id=f"{attempt.tx_id}:decided",
                incident_id=record.incident_id,
                tx_id=attempt.tx_id,
                attempt=attempt.n,
                decision=decision,
                mu_pre=attempt.mu_pre,
                mu_post=post.mu,
                reason=reason,
            ),
        )
        if decision == "commit":
            record.visible_mu.append(post.mu)
            self._move(record, "committed", reason)
            await self._release_lease(record)
            if healthy(post):
                self._move(record, "resolved", "the oracles pass")
                self._close(record, "resolved", reason)
                await self._commit(record)
                await self.registry.release_scope(record.scope, record.incident_id)
            else:
                await self._commit(record)
                await self._start_attempt(record)
            return
        record.reflections.append(reflection(attempt, post))
        self._move(record, "aborted", reason)
        if not self.settings.undo_on_abort:
            # Benchmark ablation "retry without undo" (STRATUS_UNDO_ON_ABORT=false): the aborted state stays and
            # becomes visible; the next attempt starts from it. This gives up TNR on purpose, to measure what undo buys.
            record.visible_mu.append(post.mu)
            await self._release_lease(record)
            await self._commit(record)
            await self._start_attempt(record)
            return
        await self._begin_undo(record, attempt, lost)

    async def _steady(self, scope: str) -> None:
        """Wait until mu has held the same value for ``steady_s`` (at most ``steady_max_s``; 0: no wait).

        A fault takes a while to unfold (pods crash one after another as their dependencies fail): a checkpoint taken
        in the middle of that would charge the fault's own progress to the next transaction, which then aborts a fix
        that helped, or shows a visible mu its writes did not cause.
        """
        if self.settings.steady_s <= 0:
            return
        reading = await self.observer.measure(scope)
        if healthy(reading):
            return
        step = min(1.0, self.settings.steady_s / 2)
        needed, left = math.ceil(self.settings.steady_s / step), math.ceil(self.settings.steady_max_s / step)
        same = 0
        while same < needed and left > 0:
            await self.sleep(step)
            left -= 1
            now = await self.observer.measure(scope)
            same = same + 1 if now.mu == reading.mu else 0
            reading = now
        if same < needed:
            log.info("%s: mu did not hold steady within %gs; checkpointing anyway", scope, self.settings.steady_max_s)

    async def _settle_after_undo(self, record: IncidentRecord) -> Severity:
        """The restored spec needs the controllers to converge (pods recreated, Ready) before the state is visible
        again: keep the lease, and measure until mu is back at or under b, or the settling time runs out."""
        assert record.lease is not None
        deadline = asyncio.get_running_loop().time() + max(self.settings.settle_s, self.settings.undo_settle_s)
        restored: Severity | None = None
        with contextlib.suppress(FencingError):
            async with lease_keeper(
                self.alock, record.lease, self.settings.lease_ttl_s, release_on_exit=False
            ) as keeper:
                await self.sleep(self.settings.settle_s)
                restored = await self.observer.measure(record.scope)
                while restored.mu > record.baseline and asyncio.get_running_loop().time() < deadline:
                    await self.sleep(1.0)
                    restored = await self.observer.measure(record.scope)
                record.lease = keeper.lease
        return restored if restored is not None else await self.observer.measure(record.scope)

    async def _begin_undo(self, record: IncidentRecord, attempt: Attempt, need_new_lease: bool) -> None:
        if need_new_lease or record.lease is None:
            await self._release_lease(record)
            record.lease = await self.alock.acquire_write(
                attempt.lease_scope or record.scope,
                f"{record.incident_id}/{attempt.tx_id}/undo",
                self.settings.lease_ttl_s,
                wait_s=self.settings.lease_ttl_s + 5,
            )
        lease = record.lease
        if record.state != "undoing":
            self._move(record, "undoing", f"rolling back {attempt.tx_id} from its journal")
        request = UndoRequest(
            id=f"{attempt.tx_id}:undo:{lease.token}",
            incident_id=record.incident_id,
            scope=record.scope,
            tx_id=attempt.tx_id,
            attempt=attempt.n,
            lease=lease,
            checkpoint_digest=attempt.digest_pre,
        )
        self._emit_work(record, "undoer", request)
        await self._commit(record)

    async def _escalate(self, record: IncidentRecord, why: str) -> None:
        await self._release_lease(record)
        self._move(record, "escalated", why)
        record.report = escalation_report(record) + (f"\n{record.report}" if record.report else "")
        self._close(record, "escalated", record.report)
        await self._commit(record)
        await self.registry.cool_down(record.scope, self.settings.escalation_cooldown_s)
        await self.registry.release_scope(record.scope, record.incident_id)

    # --- the watchdog ------------------------------------------------------------------------------------------

    async def watchdog(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Roll back transactions whose writer vanished; re-issue undos whose undoer vanished; flush outboxes."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("watchdog sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def sweep(self) -> None:
        for incident_id in await self.store.open_ids():
            lock = self._locks[incident_id]
            if lock.locked():
                continue
            async with lock:
                record = await self.store.load(incident_id)
                if record is None:
                    continue
                await self._flush(record)
                attempt = record.attempt
                if record.state not in ("mitigating", "undoing") or record.lease is None or attempt is None:
                    continue
                if await self.alock.check_fence(record.lease.scope, record.lease.token):
                    if record.state == "mitigating" and not attempt.started:
                        await self._keep_for_pickup(record, attempt)
                    continue
                if record.state == "mitigating" and await self._writer_finished(record.incident_id, attempt.tx_id):
                    continue  # it ended; its TransactionEnded is on its way to the event handler
                who = "mitigator" if record.state == "mitigating" else "undoer"
                log.warning("%s: the %s of %s lost its lease; taking over", incident_id, who, attempt.tx_id)
                if record.state == "mitigating":
                    attempt.decision = "abort"
                    attempt.reason = "the mitigator lost its lease (crashed or cut off); rolled back from the journal"
                    record.reflections.append(reflection(attempt, None))
                    self._emit(
                        record,
                        TransactionDecided(
                            id=f"{attempt.tx_id}:decided",
                            incident_id=record.incident_id,
                            tx_id=attempt.tx_id,
                            attempt=attempt.n,
                            decision="abort",
                            mu_pre=attempt.mu_pre,
                            mu_post=attempt.hidden_mu[-1] if attempt.hidden_mu else attempt.mu_pre,
                            reason=attempt.reason,
                        ),
                    )
                    self._move(record, "aborted", attempt.reason)
                record.lease = None
                await self._begin_undo(record, attempt, need_new_lease=True)

    async def _keep_for_pickup(self, record: IncidentRecord, attempt: Attempt) -> None:
        """Renew the lease of a request no mitigator has taken yet (all replicas busy), up to ``pickup_timeout_s``."""
        assert record.lease is not None
        now = utcnow()
        if (now - attempt.requested_at).total_seconds() > self.settings.pickup_timeout_s:
            return  # nobody took it in time: the lease lapses and the watchdog rolls the attempt back
        if (record.lease.expires_at - now).total_seconds() > self.settings.lease_ttl_s / 2:
            return
        try:
            record.lease = await self.alock.renew(record.lease, self.settings.lease_ttl_s)
        except FencingError:
            return  # lapsed meanwhile: the next sweep takes over
        await self.store.save(record)

    async def _writer_finished(self, incident_id: str, tx_id: str) -> bool:
        """Whether the mitigator already reported the end (or failure) of ``tx_id`` on the event stream."""
        for kind in ("transaction_ended", "work_failed"):
            try:
                msg = await self.bus.js.get_last_msg(EVENTS_STREAM, events_subject(incident_id, kind))
            except NotFoundError:
                continue
            if msg.data and json.loads(msg.data).get("tx_id") == tx_id:
                return True
        return False

    # --- plumbing ----------------------------------------------------------------------------------------------

    def _move(self, record: IncidentRecord, state: State, reason: str, attempt: int | None = None) -> None:
        previous = record.move(state)
        log.info("%s: %s -> %s%s", record.incident_id, previous, state, f" ({reason})" if reason else "")
        record_transition(state)
        n = attempt if attempt is not None else (record.attempt.n if record.attempt else 0)
        event = StateChanged(
            id=f"{record.incident_id}:state:{len(record.attempts)}:{previous}:{state}",
            incident_id=record.incident_id,
            state=state,
            previous=previous,
            reason=reason,
            attempt=n,
        )
        self._emit(record, event)

    def _close(self, record: IncidentRecord, outcome: str, report: str) -> None:
        self._emit(
            record,
            IncidentClosed(
                id=f"{record.incident_id}:closed",
                incident_id=record.incident_id,
                outcome="resolved" if outcome == "resolved" else "escalated",
                report=report,
                attempts=len(record.attempts),
                baseline=record.baseline,
                visible_mu=record.visible_mu,
            ),
        )

    def _emit(self, record: IncidentRecord, event: IncidentEvent) -> None:
        subject = events_subject(record.incident_id, getattr(event, "kind", "event"))
        record.outbox.append(Outgoing(subject=subject, payload=event.model_dump_json(), msg_id=event.id))

    def _emit_work(self, record: IncidentRecord, service: str, request: BaseModel) -> None:
        msg_id = str(getattr(request, "id", ""))
        record.outbox.append(Outgoing(subject=work_subject(service), payload=request.model_dump_json(), msg_id=msg_id))

    async def _commit(self, record: IncidentRecord) -> None:
        await self.store.save(record)
        await self._flush(record)

    async def _flush(self, record: IncidentRecord) -> None:
        if not record.outbox:
            return
        for out in record.outbox:
            await self.bus.js.publish(
                out.subject, out.payload.encode(), headers={"Nats-Msg-Id": out.msg_id}, timeout=5.0
            )
        record.outbox.clear()
        await self.store.save(record)

    async def _release_lease(self, record: IncidentRecord) -> None:
        if record.lease is not None:
            lease: Lease = record.lease
            record.lease = None
            with contextlib.suppress(Exception):
                await self.alock.release(lease)
