"""The coordinator's engine: applies incident events to durable records and owns the transaction protocol.

Every handler loads the incident's record, checks that the event is the one the current state waits for (anything
else is a duplicate, a redelivery or a straggler and changes nothing), changes the record, and saves it together
with its outbox before publishing (see ``machine``). Records live in a JetStream key-value bucket, not in Redis
(``store``): an open incident and its transaction survive the loss of Redis's state. One incident's events are
handled strictly in order: they all travel on one partition of the events stream, a serial consumer owned by one
coordinator replica at a time (``partitions``); different partitions, and so different incidents, run concurrently.
Saves are conditional on the record's version, so a replica that lost its partition while paused mid-handle cannot
overwrite what its successor wrote (its save fails, and the redelivered event finds the newer state).

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
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
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
    plan_text,
    reflection,
)
from services.coordinator.memory import MemoryKeeper
from services.coordinator.store import KvIncidentStore, StaleRecord
from stratus.alock import ALock, FencingError, LockTimeout, lease_keeper
from stratus.bus import Bus
from stratus.contracts import (
    ActionExecuted,
    AlertAttached,
    ApprovalDecided,
    ApprovalRequested,
    Checkpointed,
    DiagnoseRequest,
    DiagnosisReady,
    Event,
    IncidentClosed,
    IncidentEvent,
    IncidentOpened,
    Lease,
    MitigateRequest,
    PlanProposed,
    Severity,
    StateChanged,
    TransactionCheckpoint,
    TransactionDecided,
    TransactionEnded,
    TransactionStarted,
    UndoCompleted,
    UndoRequest,
    WorkFailed,
    utcnow,
)
from stratus.crashpoints import crash_point
from stratus.journal import Journal
from stratus.metrics import record_transition
from stratus.modes import Mode, mode_for
from stratus.registry import Registry
from stratus.settings import CoordinatorSettings

log = logging.getLogger(__name__)

UNDO_REISSUES = 5
"""How many times an undo the undoer refused for a lapsed lease is re-issued under a fresh one before escalating."""


class Observer(Protocol):
    """What the coordinator reads of the cluster: mu, and the normalised state digest with its snapshot."""

    async def measure(self, scope: str) -> Severity: ...

    async def snapshot(self, scope: str, lease_scope: str) -> tuple[str, dict[str, Any]]: ...


__all__ = ["Engine", "Observer", "StaleRecord"]


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
        self.store = KvIncidentStore(bus, prefix)
        self.registry = Registry(redis, prefix=prefix, bus=bus)
        self.journal = Journal(bus)
        self.sleep = sleep
        self.owns: Callable[[str], bool] = lambda _incident_id: True
        """Whether this replica owns the incident's partition (the watchdog sweeps only those)."""
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._retrying: dict[str, asyncio.Task[None]] = {}
        self._released = asyncio.Event()
        self.memory: MemoryKeeper | None = None
        """Incident memory (on when set): every closed incident is kept, off the incident's path."""
        self._remembering: set[asyncio.Task[None]] = set()

    # --- dispatch ----------------------------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Apply one incident event (they arrive in order per incident; see the module docstring)."""
        match event:
            case StateChanged() | Checkpointed() | TransactionDecided() | IncidentClosed() | ApprovalRequested():
                return  # the coordinator's own timeline: nothing to react to
            case IncidentOpened():
                async with self._incident(event.incident_id):
                    await self._on_opened(event)
                return
        async with self._incident(event.incident_id):
            record = await self.store.load(event.incident_id)
            if record is None:
                log.warning("event %s for unknown incident %s ignored", event.kind, event.incident_id)
                return
            await self._flush(record)
            match event:
                case DiagnosisReady():
                    await self._on_diagnosis(record, event)
                case TransactionStarted():
                    await self._on_started(record, event)
                case ActionExecuted():
                    await self._on_action(record, event)
                case TransactionEnded():
                    await self._on_transaction_ended(record, event)
                case UndoCompleted():
                    await self._on_undo_completed(record, event)
                case PlanProposed():
                    await self._on_plan_proposed(record, event)
                case ApprovalDecided():
                    await self._on_approval_decided(record, event)
                case WorkFailed():
                    await self._on_work_failed(record, event)
                case AlertAttached():
                    pass  # kept in the audit trail; mu already counts the alert

    @contextlib.asynccontextmanager
    async def _incident(self, incident_id: str) -> AsyncIterator[None]:
        """Serialise the event handler and the watchdog on one incident. The lock exists only while someone holds
        or waits for it: per-incident state never outlives the work on it."""
        lock, users = self._locks.get(incident_id) or (asyncio.Lock(), 0)
        self._locks[incident_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[incident_id]
            if users <= 1:
                del self._locks[incident_id]
            else:
                self._locks[incident_id] = (lock, users - 1)

    async def escalate_dropped(self, incident_id: str, reason: str) -> None:
        """An event of this incident could not be handled (retries exhausted, or refused): escalate the incident
        with the reason rather than let its later events run past the one that was lost."""
        async with self._incident(incident_id):
            record = await self.store.load(incident_id)
            if record is None or record.state in FINAL_STATES:
                return
            await self._flush(record)
            record.give_up = f"an event of this incident could not be handled: {reason}"
            attempt = record.attempt
            if record.state in ("mitigating", "validating") and attempt is not None:
                # Writes may have happened: roll them back first; the next attempt escalates (give_up).
                self._abort_unmeasured(record, attempt, record.give_up)
                await self._begin_undo(record, attempt, need_new_lease=True)
            elif record.state == "undoing":
                await self.store.save(record)  # the undo finishes first; then the incident escalates
            else:
                record.report = record.give_up
                await self._escalate(record, record.give_up)

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

    async def _on_diagnosis(self, record: IncidentRecord, event: DiagnosisReady) -> None:
        if record.state != "diagnosing":
            return
        record.diagnosis = event
        await self._start_attempt(record)

    async def _on_started(self, record: IncidentRecord, event: TransactionStarted) -> None:
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "mitigating" or attempt.started:
            return
        attempt.started = True
        await self.store.save(record)

    async def _on_action(self, record: IncidentRecord, event: ActionExecuted) -> None:
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "mitigating":
            return
        if event.seq > len(attempt.actions):
            attempt.actions.append(event.action)
            if event.mu_after is not None:
                attempt.hidden_mu.append(event.mu_after)
            await self.store.save(record)

    async def _on_transaction_ended(self, record: IncidentRecord, event: TransactionEnded) -> None:
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state not in ("mitigating", "validating"):
            return
        if record.state == "mitigating":
            if event.hidden_mu:
                attempt.hidden_mu = list(event.hidden_mu)
            if event.outcome == "failed":
                attempt.failure = event.reason
            attempt.recalled_from = event.recalled_from
            attempt.writes = event.actions
            if event.needs_scope and event.needs_scope != (record.write_scope or record.scope):
                if event.needs_scope in self.settings.lease_widening_scopes:
                    record.write_scope = event.needs_scope
                    record.reflections.append(
                        f"Attempt {attempt.n} needed writes on scope '{event.needs_scope}' that its lease did not "
                        f"cover; the next attempt holds a '{event.needs_scope}' lease."
                    )
                else:
                    record.reflections.append(
                        f"Attempt {attempt.n} tried to write in scope '{event.needs_scope}', which the operator does "
                        f"not allow Stratus to write from this incident; those writes were refused. Fix the incident "
                        f"within scope '{record.write_scope or record.scope}' or report what is needed there."
                    )
            note = f"transaction {event.outcome}: {event.actions} write(s)" + (
                f"; {event.reason}" if event.reason else ""
            )
            self._move(record, "validating", note)
            await self._commit(record)
        await self._validate(record, attempt)

    async def _on_undo_completed(self, record: IncidentRecord, event: UndoCompleted) -> None:
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

    async def _on_work_failed(self, record: IncidentRecord, event: WorkFailed) -> None:
        attempt = record.attempt
        if event.service == "diagnoser" and record.state == "diagnosing":
            record.reflections.append(f"Diagnosis failed: {event.reason}")
            await self._start_attempt(record)
        elif event.service == "mitigator" and record.state == "mitigating" and attempt and attempt.tx_id == event.tx_id:
            if attempt.planning:
                failed = PlanProposed(incident_id=record.incident_id, tx_id=attempt.tx_id, attempt=attempt.n)
                await self._on_plan_proposed(record, failed.model_copy(update={"failed": event.reason or "failed"}))
                return
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
            # An undoer that refused because the lease lapsed before it picked the request up (a busy machine, a
            # slow redelivery) did nothing: the aborted writes are still there. Escalating would leave them visible,
            # so the undo is re-issued under a fresh lease, a bounded number of times.
            if record.lease is not None and event.request_id not in ("", f"{attempt.tx_id}:undo:{record.lease.token}"):
                return  # a refusal of an undo request already re-issued (the watchdog's or ours): stale
            lapsed = record.lease is None or not await self.alock.check_fence(record.lease.scope, record.lease.token)
            if lapsed and attempt.undo_reissues < UNDO_REISSUES:
                attempt.undo_reissues += 1
                log.warning(
                    "%s: the undo of %s was refused (%s); re-issuing it",
                    record.incident_id,
                    attempt.tx_id,
                    event.reason,
                )
                record.lease = None
                await self._begin_undo(record, attempt, need_new_lease=True)
                return
            record.report = f"undo of {attempt.tx_id} failed: {event.reason}"
            await self._escalate(record, record.report)

    # --- operator modes (stratus.modes) -------------------------------------------------------------------------

    def _mode(self, record: IncidentRecord) -> Mode:
        return mode_for(record.scope, record.write_scope, self.settings.mode, self.settings.modes)

    async def _on_plan_proposed(self, record: IncidentRecord, event: PlanProposed) -> None:
        """A plan came back (approve, shadow): nothing was written, so the attempt is not a transaction; the lease
        goes back and the plan either waits for a human or is recorded as what Stratus would have done."""
        attempt = record.attempt
        if attempt is None or attempt.tx_id != event.tx_id or record.state != "mitigating" or not attempt.planning:
            return
        await self._release_lease(record)
        record.attempts.pop()  # the approved plan runs as this same attempt, from a fresh checkpoint
        mode = self._mode(record)
        if event.failed or not event.actions:
            why = f"planning {event.tx_id} failed: {event.failed}" if event.failed else "the plan holds no write"
            record.report = why + (f"\n{plan_text(event)}" if event.actions else "")
            await self._escalate(record, f"{mode} mode: {why}")
            return
        if mode == "auto":  # the mode changed while the plan was made: act as auto does
            await self._start_attempt(record)
            return
        if mode != "approve":
            record.report = f"{mode} mode: what Stratus would have done (recorded, not executed).\n{plan_text(event)}"
            await self._escalate(record, f"{mode} mode: the plan of {event.tx_id} was recorded, not executed")
            return
        record.proposal = event
        record.approved_tx = ""
        deadline = utcnow() + timedelta(seconds=self.settings.approval_timeout_s)
        record.approval_deadline = deadline
        self._move(
            record,
            "awaiting_approval",
            f"the plan of {event.tx_id} ({len(event.actions)} write(s)) waits for a human",
            attempt=event.attempt,
        )
        effect = (
            (f"{event.expected_effect}; " if event.expected_effect else "")
            + f"mu is {attempt.mu_pre:g}: the plan commits only if the oracles pass or mu goes down, never above "
            + (f"b = {record.baseline:g}; otherwise it is undone")
        )
        self._emit(
            record,
            ApprovalRequested(
                id=f"{event.tx_id}:approval-requested",
                incident_id=record.incident_id,
                scope=record.scope,
                tx_id=event.tx_id,
                attempt=event.attempt,
                actions=event.actions,
                expected_effect=effect,
                mu=attempt.mu_pre,
                deadline=deadline,
            ),
        )
        await self._commit(record)

    async def _on_approval_decided(self, record: IncidentRecord, event: ApprovalDecided) -> None:
        proposal = record.proposal
        if record.state != "awaiting_approval" or proposal is None or proposal.tx_id != event.tx_id:
            return
        if record.approved_tx:
            return  # approved already; the attempt waits for its lease
        who = f" by {event.by}" if event.by else ""
        if not event.approved:
            record.report = f"the plan of {event.tx_id} was denied{who}" + (f": {event.reason}" if event.reason else "")
            await self._escalate(record, record.report)
            return
        record.approved_tx = event.tx_id
        record.approval_deadline = None
        log.info("%s: the plan of %s was approved%s", record.incident_id, event.tx_id, who)
        await self._start_attempt(record)

    async def _check_approval_deadline(self, record: IncidentRecord) -> None:
        if record.approved_tx or record.approval_deadline is None or utcnow() < record.approval_deadline:
            return
        tx = record.proposal.tx_id if record.proposal else "?"
        record.report = f"the plan of {tx} waited {self.settings.approval_timeout_s:g}s for approval; nobody decided"
        await self._escalate(record, "the approval request timed out")

    # --- the transaction protocol ------------------------------------------------------------------------------

    async def _start_attempt(self, record: IncidentRecord) -> None:
        mode = self._mode(record)
        if mode == "observe":
            record.report = "observe mode: Stratus detects and diagnoses on this scope and never acts."
            await self._escalate(record, "observe mode: no mitigation on this scope")
            return
        if record.give_up:
            record.report = record.give_up
            await self._escalate(record, record.give_up)
            return
        n = len(record.attempts) + 1
        if n > 1 + self.settings.max_retries:
            await self._escalate(record, f"no attempt left after {n - 1}")
            return
        tx_id = f"{record.incident_id}-tx{n}"
        lease_scope = record.write_scope or record.scope
        await self._steady(record.scope)
        try:
            lease = await self.alock.acquire_write(
                lease_scope,
                f"{record.incident_id}/{tx_id}",
                self.settings.lease_ttl_s,
                wait_s=self.settings.lease_wait_s,
            )
        except LockTimeout as exc:
            # Another incident writes on the scope. Waiting here would hold up this incident's whole partition,
            # possibly the very events that would end the other transaction: park it, let the partition move on,
            # and let the watchdog try again.
            if not record.attempt_pending:
                log.info("%s: attempt %d waits for the write lease: %s", record.incident_id, n, exc)
            record.attempt_pending = True
            await self._commit(record)
            return
        record.attempt_pending = False
        try:
            # The lease is kept alive from its grant until the request carries it to a mitigator: measuring, the quiet
            # wait and the checkpoint's snapshot (a whole namespace, and the cluster under a cluster lease) can take
            # longer than its TTL on a busy machine, and a mitigator that got a lease about to lapse lost it at its
            # first renewal.
            async with lease_keeper(self.alock, lease, self.settings.lease_ttl_s, release_on_exit=False) as keeper:
                pre = await self.observer.measure(record.scope)
                if healthy(pre) and self.settings.resolve_reads() > 0:
                    pre = await self._quiet(record.scope, pre)
                if not healthy(pre):
                    digest, snapshot = await self.observer.snapshot(record.scope, lease_scope)
            lease = keeper.lease
            if keeper.lost.is_set():  # renewing failed meanwhile: the watchdog starts the attempt again
                log.info("%s: attempt %d lost its write lease before it started", record.incident_id, n)
                record.attempt_pending = True
                await self._commit(record)
                return
            if healthy(pre):
                await self.alock.release(lease)
                record.visible_mu.append(pre.mu)
                self._move(record, "resolved", "the oracles pass")
                self._close(record, "resolved", "the oracles pass")
                await self._commit(record)
                await self.registry.release_scope(record.scope, record.incident_id)
                return
            # R1 is kept in the transaction's journal, before any write: the undoer reads one store.
            checkpoint = TransactionCheckpoint(
                id=f"{tx_id}:checkpoint:{lease.token}",
                incident_id=record.incident_id,
                tx_id=tx_id,
                attempt=n,
                lease_token=lease.token,
                scope=record.scope,
                lease_scope=lease_scope,
                mu=pre.mu,
                digest=digest,
                snapshot_z=TransactionCheckpoint.pack(snapshot),
            )
            await self.journal.append_checkpoint(checkpoint)
            if n == 1:
                # b is the state Stratus found when it first acted: detection may have caught the fault unfolding.
                record.baseline = pre.mu
                record.visible_mu = [pre.mu]
        except BaseException:
            with contextlib.suppress(Exception):
                await self.alock.release(lease)
            self._released.set()
            raise
        record.lease = lease
        approved = mode == "approve" and record.approved_tx == tx_id and record.proposal is not None
        planning = mode in ("approve", "shadow") and not approved
        record.attempts.append(
            Attempt(n=n, tx_id=tx_id, mu_pre=pre.mu, digest_pre=digest, lease_scope=lease_scope, planning=planning)
        )
        why = f"attempt {n}" + (f": making the plan ({mode} mode), nothing is written" if planning else "")
        self._move(record, "mitigating", why + (": running the approved plan" if approved else ""), attempt=n)
        if not planning:
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
        plan = [p.action for p in record.proposal.actions] if approved and record.proposal else None
        request = MitigateRequest(
            id=f"{tx_id}:mitigate" + (":plan" if planning else ""),
            incident_id=record.incident_id,
            scope=record.scope,
            tx_id=tx_id,
            attempt=n,
            lease=lease,
            diagnosis=record.diagnosis,
            reflections=record.reflections[-3:],
            max_actions=self.settings.max_actions,
            plan_only=planning,
            plan=plan,
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
            if healthy(post) and attempt.writes == 0 and self.settings.resolve_reads() > 0:
                # A transaction that wrote nothing is not what made the oracles pass: its one clean read is no more
                # evidence of a recovery than a read without a transaction, so it needs the same run of clean reads.
                post = await self._quiet(record.scope, post)
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

    async def _quiet(self, scope: str, reading: Severity) -> Severity:
        """While the oracles pass, keep reading every second (``resolve_reads``: at least ``resolve_quiet_s``); the
        first violation seen is the state the attempt starts from, else the last clean reading closes the incident.
        One clean read would take an intermittent failure (a share of requests failing) for a recovery: this is the
        hysteresis a detector applies before opening, applied before closing, and its length is a test: a fault that
        still fails ``resolve_min_failure_rate`` of reads shows within that many reads with ``resolve_confidence``
        (one request in ten passes 15 reads in a row one time in five, 44 one time in a hundred)."""
        reads = self.settings.resolve_reads()
        while healthy(reading) and reads > 0:
            await self.sleep(1.0)
            reads -= 1
            reading = await self.observer.measure(scope)
        return reading

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
        crash_point("coordinator.before_undo_saved")  # the abort is decided, nothing of it is stored yet
        await self.store.save(record)
        crash_point("coordinator.before_undo_request")  # stored with its outbox, the undo request not yet sent
        await self._flush(record)

    async def _escalate(self, record: IncidentRecord, why: str) -> None:
        await self._release_lease(record)
        record.proposal, record.approval_deadline = None, None
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
            # A lease this replica released may be what a parked attempt waits for: sweep again at once.
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._released.wait())]
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            self._released.clear()

    async def sweep(self) -> None:
        for incident_id in await self.store.open_ids():
            if not self.owns(incident_id) or incident_id in self._locks:
                continue  # another replica's partition, or an event is being handled right now
            async with self._incident(incident_id):
                record = await self.store.load(incident_id)
                if record is None:
                    continue
                await self._flush(record)
                if record.attempt_pending and incident_id not in self._retrying:
                    # Its own task: a retry can wait (steady mu, the lease) without holding up the sweep.
                    self._retrying[incident_id] = asyncio.create_task(self._retry_attempt(incident_id))
                    continue
                if record.state == "awaiting_approval":
                    await self._check_approval_deadline(record)
                    continue
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
                    reason = "the mitigator lost its lease (crashed or cut off); rolled back from the journal"
                    self._abort_unmeasured(record, attempt, reason)
                    record.reflections.append(reflection(attempt, None))
                record.lease = None
                await self._begin_undo(record, attempt, need_new_lease=True)

    def _abort_unmeasured(self, record: IncidentRecord, attempt: Attempt, reason: str) -> None:
        """Abort a transaction whose writer is gone without measuring (its last hidden mu stands for mu_post)."""
        attempt.decision, attempt.reason = "abort", reason
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
                reason=reason,
            ),
        )
        self._move(record, "aborted", reason)

    async def _retry_attempt(self, incident_id: str) -> None:
        """Try a parked attempt again (it waits for a write lease another incident holds)."""
        try:
            async with self._incident(incident_id):
                record = await self.store.load(incident_id)
                if record is not None and record.attempt_pending and record.state not in FINAL_STATES:
                    await self._start_attempt(record)
        except Exception:
            log.exception("%s: retrying the parked attempt failed", incident_id)
        finally:
            self._retrying.pop(incident_id, None)

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
                topology = self.bus.topology
                msg = await self.bus.js.get_last_msg(topology.events_stream, topology.events(incident_id, kind))
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

    async def flush_memory(self, timeout: float = 5.0) -> None:
        """Let the memory writes of incidents that just closed finish (at shutdown), within ``timeout``."""
        pending = list(self._remembering)
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def _close(self, record: IncidentRecord, outcome: str, report: str) -> None:
        if self.memory is not None:
            task = asyncio.create_task(self.memory.closed(record.model_copy(deep=True)))
            self._remembering.add(task)
            task.add_done_callback(self._remembering.discard)
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
        subject = self.bus.topology.events(record.incident_id, getattr(event, "kind", "event"))
        record.outbox.append(Outgoing(subject=subject, payload=event.model_dump_json(), msg_id=event.id))

    def _emit_work(self, record: IncidentRecord, service: str, request: BaseModel) -> None:
        msg_id = str(getattr(request, "id", ""))
        record.outbox.append(
            Outgoing(subject=self.bus.topology.work(service), payload=request.model_dump_json(), msg_id=msg_id)
        )

    async def _commit(self, record: IncidentRecord) -> None:
        await self.store.save(record)
        await self._flush(record)

    async def _flush(self, record: IncidentRecord) -> None:
        if not record.outbox:
            return
        for out in record.outbox:
            await self.bus.publish_json(out.subject, out.payload, out.msg_id)
        record.outbox.clear()
        await self.store.save(record)

    async def _release_lease(self, record: IncidentRecord) -> None:
        if record.lease is not None:
            lease: Lease = record.lease
            record.lease = None
            with contextlib.suppress(Exception):
                await self.alock.release(lease)
            self._released.set()
