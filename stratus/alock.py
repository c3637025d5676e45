"""The A-Lock: a readers-writer lock per scope in Redis, with leases and fencing tokens (TNR assumption A1).

Why it is shaped this way:

- **Leases, not locks.** A writer (mitigator, undoer) may be SIGKILLed, paused by the GC or cut off by a partition.
  Every grant therefore carries an expiry computed from Redis's own clock (``TIME`` inside the script, ``PEXPIREAT``),
  so a holder that vanished loses the lock when its lease runs out and no client clock is ever trusted. A live holder
  keeps its lease with ``renew`` (see ``LeaseKeeper``, which renews at ttl/3 and raises a flag when renewal fails).
  Every script applies one validity rule, ``expiry > Redis now`` in milliseconds, to writers, readers, the index and
  the queue alike, instead of relying on when Redis lazily deletes a key (it keeps one through its last millisecond).
- **Fencing tokens.** Expiry alone is not safe: a writer paused past its expiry wakes up believing it still holds the
  lock. Each write grant INCRs a per-scope counter *in the same script* that grants the lease; the counter has no TTL,
  so a token is never reused, even after every lease expired. The cluster gateway calls ``ensure_fence`` immediately
  before every write: only the scope's current, unexpired writer token passes, so a stale writer can never write again.
  (Kubernetes cannot check a token itself, so the residual window is the time between that check and the write; pass
  ``min_remaining_s`` to refuse a write that would not finish well inside the lease.)
  A per-scope counter in Redis is forgotten when Redis restarts empty or fails over to a lagging replica; the
  services therefore pass a ``TokenSource`` (``stratus.fence``: JetStream sequence numbers) and the script keeps the
  counter only as a high-water mark, refusing a token that is not above it.
- **One Lua script per state change.** Check-and-grant, renew, release and fence checks are each one atomic script
  (``register_script``: EVALSHA with a transparent reload), so no interleaving of clients can produce two writers.
- **Scopes and the cluster scope.** A scope is a namespace or ``"cluster"`` (cluster-scoped objects: nodes, PVs, ...).
  Same scope: writers exclude readers and each other; readers share. Disjoint namespaces never block each other. A
  *cluster writer* acts on objects every namespace depends on (cordoning a node reschedules everyone's pods), so it
  conflicts with every namespace holder, writer or reader, and they with it; the scripts find namespace holders through
  one index sorted set (member per holder, score = its expiry). Namespace writers do not touch cluster-scoped objects,
  so they do not conflict with *cluster readers*. A namespace literally named ``cluster`` is treated as the cluster
  scope, which only ever excludes more, never less.
- **Writers queue, readers yield.** A writer that has to wait joins the scope's queue (arrival order, by Redis time;
  its place is refreshed on every retry and dropped ``QUEUE_MS`` after its waiter dies or gives up). Only the head of
  the queue may be granted, so waiting writers are served first come, first served; new readers of that scope (and,
  for a waiting cluster writer, new namespace holders) are refused while anyone is queued, so a stream of overlapping
  readers cannot starve the mitigator. A dead waiter delays the others by at most ``QUEUE_MS``.
- **Waiting.** Releases PUBLISH the scope and the waiter ids at the head of the queues on one channel per prefix;
  each ``ALock`` keeps one subscriber that wakes exactly those local waiters (and the readers). Notifications are
  only a hint: waiters also poll with jittered exponential back-off (capped, and never longer than the blocking
  lease's remaining time), so lost messages and expiries cost latency, never safety.
- **What it does not promise.** Leases are not reentrant: a holder asking again for a scope it holds waits like
  anyone else (and a reader that asks to write on the same scope waits for its own read lease to end). Readers are
  not queued, so an unbroken stream of writers delays readers indefinitely (the choice TNR wants). A grant whose reply
  is lost with the connection stays held, unused, until its lease expires.
- **Keys.** All keys of one prefix share a Redis Cluster hash tag (``{prefix}``) because the cluster-writer script
  touches several scopes' keys at once; lock traffic is tiny, so one slot is no bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import redis.asyncio as aioredis
import redis.connection
from prometheus_client import REGISTRY, Counter, Histogram
from pydantic import Field

from stratus.contracts import Lease, Model
from stratus.errors import PermanentError, TemporaryError

if TYPE_CHECKING:
    from stratus.fence import TokenSource

log = logging.getLogger(__name__)

CLUSTER_SCOPE = "cluster"
"""The scope of cluster-scoped objects; its writer conflicts with every namespace holder."""

QUEUE_MS = 3000
"""How long a waiting writer keeps its place in the queue (and new readers out) after its last retry."""

POLL_FIRST_S = 0.002
POLL_CAP_S = 0.25

Mode = Literal["read", "write"]
_L = TypeVar("_L", Lease, "ReadLease")


# --- errors -----------------------------------------------------------------------------------------------------


class LockTimeout(TemporaryError):
    """The lock was not granted within the wait; the message says who holds it."""


class FencingError(PermanentError):
    """A token or lease is no longer the scope's current one: the holder lost it and must not write."""


# --- models -----------------------------------------------------------------------------------------------------


class ReadLease(Model):
    """Shared (reader) permission on a scope. Readers have no fencing token: they never write."""

    scope: str
    holder: str = Field(description="Who holds the lease (service, incident).")
    lease_id: str = Field(description="Unique id of this grant; renew and release name it.")
    expires_at: datetime = Field(description="Expiry by the Redis server's clock (UTC).")


AnyLease = Lease | ReadLease


# --- metrics ----------------------------------------------------------------------------------------------------


def _metric(factory: Callable[[], Any], name: str) -> Any:
    """Create a metric once per process; a second import of this module (tests, reloads) reuses the first."""
    try:
        return factory()
    except ValueError:  # already registered under this name
        return REGISTRY._names_to_collectors[name]


LOCK_WAIT: Histogram = _metric(
    lambda: Histogram(
        "stratus_lock_wait_seconds",
        "Time from asking for an A-Lock lease to its grant or give-up.",
        ["mode"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    ),
    "stratus_lock_wait_seconds",
)
LOCK_ACQUIRE: Counter = _metric(
    lambda: Counter("stratus_lock_acquisitions", "A-Lock acquisition outcomes.", ["mode", "outcome"]),
    "stratus_lock_acquisitions",
)


# --- scripts ----------------------------------------------------------------------------------------------------

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function touch(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top > 0 then redis.call('PEXPIREAT', key, top[2]) end
end
local function prune(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
end
local function first(key)
  local m = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #m > 0 then return m end
  return nil
end
-- A write lease is valid while its 'exp' (Redis ms) is ahead of ``now``: the same rule as the readers' and index
-- scores, and independent of when Redis lazily deletes the key (it keeps a key through its last millisecond).
local function writer(key)
  local w = redis.call('HMGET', key, 'holder', 'token', 'exp')
  if w[1] and tonumber(w[3]) > now then return w end
  return nil
end
-- The writers' queue: one zset ordered by arrival (ms; a later arrival in the same ms scores just above the last)
-- and one by liveness deadline (ms).
local function prune_queue(queue, live)
  local dead = redis.call('ZRANGEBYSCORE', live, '-inf', now)
  for _, m in ipairs(dead) do redis.call('ZREM', queue, m) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', live, '-inf', now) end
end
local function touch_queue(queue, live)
  local top = redis.call('ZRANGE', live, -1, -1, 'WITHSCORES')
  if #top > 0 then
    redis.call('PEXPIREAT', queue, top[2])
    redis.call('PEXPIREAT', live, top[2])
  end
end
local function head_id(queue, live)
  prune_queue(queue, live)
  local h = first(queue)
  if h then return string.match(h[1], '^[^|]*') end
  return ''
end
local function queue_left(live, member)
  local deadline = redis.call('ZSCORE', live, member)
  if deadline then return tonumber(deadline) - now end
  return 0
end
"""

# KEYS: 1 writer hash, 2 readers zset, 3 fence counter, 4 queue zset, 5 queue liveness zset, 6 namespace-holder
#       index, 7 cluster writer hash, 8 cluster queue zset, 9 cluster queue liveness zset
# ARGV: 1 holder, 2 ttl_ms, 3 is_cluster, 4 queue_ms (0: do not join or refresh), 5 index member,
#       6 queue member ('<waiter id>|<holder>'), 7 fencing token to grant ('': INCR the scope's counter)
# -> {1, token, expires_ms} | {0, blocker kind, blocker, remaining_ms, blocker token or ''}
_ACQUIRE_WRITE = (
    _PRELUDE
    + """
local holder, ttl, is_cluster, queue_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local me = ARGV[6]
prune(KEYS[2]); prune_queue(KEYS[4], KEYS[5])
local function refuse(kind, who, left, token)
  if queue_ms > 0 then
    -- Arrival order, strictly: a writer that joins in the same millisecond as the last one queues after it.
    if not redis.call('ZSCORE', KEYS[4], me) then
      local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
      local at = now
      if #last > 0 and tonumber(last[2]) >= now then at = tonumber(last[2]) + 0.001 end
      redis.call('ZADD', KEYS[4], at, me)
    end
    redis.call('ZADD', KEYS[5], now + queue_ms, me)
    touch_queue(KEYS[4], KEYS[5])
  end
  return {0, kind, who, left, token or ''}
end
local w = writer(KEYS[1])
if w then return refuse('writer', w[1], tonumber(w[3]) - now, w[2]) end
local r = first(KEYS[2])
if r then return refuse('reader', r[1], tonumber(r[2]) - now) end
local head = first(KEYS[4])
if head and head[1] ~= me then return refuse('waiting writer', head[1], queue_left(KEYS[5], head[1])) end
if is_cluster then
  prune(KEYS[6])
  local h = first(KEYS[6])
  if h then return refuse('namespace holder', h[1], tonumber(h[2]) - now) end
else
  local cw = writer(KEYS[7])
  if cw then return refuse('cluster writer', cw[1], tonumber(cw[3]) - now, cw[2]) end
  prune_queue(KEYS[8], KEYS[9])
  local cq = first(KEYS[8])
  if cq then return refuse('waiting cluster writer', cq[1], queue_left(KEYS[9], cq[1])) end
end
local token
if ARGV[7] ~= '' then
  -- A token from outside Redis (stratus.fence): it must be above every token this scope granted.
  local high = redis.call('GET', KEYS[3])
  if high and tonumber(high) >= tonumber(ARGV[7]) then return {0, 'stale token', '', 0, high} end
  redis.call('SET', KEYS[3], ARGV[7])
  token = ARGV[7]
else
  token = redis.call('INCR', KEYS[3])
end
local exp = now + ttl
redis.call('HSET', KEYS[1], 'holder', holder, 'token', token, 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
redis.call('ZREM', KEYS[4], me)
redis.call('ZREM', KEYS[5], me)
touch_queue(KEYS[4], KEYS[5])
if not is_cluster then
  redis.call('ZADD', KEYS[6], exp, ARGV[5])
  touch(KEYS[6])
end
return {1, token, exp}
"""
)

# KEYS: 1 readers zset, 2 writer hash, 3 queue zset, 4 queue liveness zset, 5 namespace-holder index,
#       6 cluster writer hash, 7 cluster queue zset, 8 cluster queue liveness zset
# ARGV: 1 member ('<lease id>|<holder>'), 2 ttl_ms, 3 is_cluster, 4 index member
_ACQUIRE_READ = (
    _PRELUDE
    + """
local member, ttl, is_cluster = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
prune(KEYS[1]); prune_queue(KEYS[3], KEYS[4])
local w = writer(KEYS[2])
if w then return {0, 'writer', w[1], tonumber(w[3]) - now, w[2]} end
local q = first(KEYS[3])
if q then return {0, 'waiting writer', q[1], queue_left(KEYS[4], q[1]), ''} end
if not is_cluster then
  local cw = writer(KEYS[6])
  if cw then return {0, 'cluster writer', cw[1], tonumber(cw[3]) - now, cw[2]} end
  prune_queue(KEYS[7], KEYS[8])
  local cq = first(KEYS[7])
  if cq then return {0, 'waiting cluster writer', cq[1], queue_left(KEYS[8], cq[1]), ''} end
end
local exp = now + ttl
redis.call('ZADD', KEYS[1], exp, member)
touch(KEYS[1])
if not is_cluster then
  redis.call('ZADD', KEYS[5], exp, ARGV[4])
  touch(KEYS[5])
end
return {1, 0, exp}
"""
)

# KEYS: 1 writer hash, 2 namespace-holder index.  ARGV: 1 holder, 2 token, 3 ttl_ms, 4 is_cluster, 5 index member
# -> {1, expires_ms} | {0, current holder or '', current token or ''}
_RENEW_WRITE = (
    _PRELUDE
    + """
local w = writer(KEYS[1])
if not w then return {0, '', ''} end
if w[1] ~= ARGV[1] or w[2] ~= ARGV[2] then return {0, w[1], w[2]} end
local exp = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
if ARGV[4] ~= '1' then
  redis.call('ZADD', KEYS[2], exp, ARGV[5])
  touch(KEYS[2])
end
return {1, exp}
"""
)

# KEYS: 1 writer hash, 2 namespace-holder index, 3-4 queue and liveness, 5-6 cluster queue and liveness
# ARGV: 1 holder, 2 token, 3 index member, 4 channel, 5 scope
# Publishes '<scope>\n<head waiter id>\n<cluster head waiter id>' so each process wakes exactly the next writer.
_RELEASE_WRITE = (
    _PRELUDE
    + """
local w = writer(KEYS[1])
if not w or w[1] ~= ARGV[1] or w[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\\n' .. head_id(KEYS[3], KEYS[4]) .. '\\n' .. head_id(KEYS[5], KEYS[6]))
return 1
"""
)

# KEYS: 1 readers zset, 2 namespace-holder index.  ARGV: 1 member, 2 ttl_ms, 3 is_cluster, 4 index member
_RENEW_READ = (
    _PRELUDE
    + """
prune(KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
local exp = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], exp, ARGV[1])
touch(KEYS[1])
if ARGV[3] ~= '1' then
  redis.call('ZADD', KEYS[2], exp, ARGV[4])
  touch(KEYS[2])
end
return {1, exp}
"""
)

# KEYS: 1 readers zset, 2 namespace-holder index, 3-4 queue and liveness, 5-6 cluster queue and liveness
# ARGV: 1 member, 2 index member, 3 channel, 4 scope.  Publishes like _RELEASE_WRITE.
_RELEASE_READ = (
    _PRELUDE
    + """
prune(KEYS[1])
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if held == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\\n' .. head_id(KEYS[3], KEYS[4]) .. '\\n' .. head_id(KEYS[5], KEYS[6]))
end
return held
"""
)

# KEYS: 1 writer hash.  ARGV: 1 token, 2 min remaining ms
# -> 1 when the token is the current writer's; otherwise {0, current holder or '', current token or '', remaining ms}
_CHECK_FENCE = (
    _PRELUDE
    + """
local w = writer(KEYS[1])
if not w then return {0, '', '', 0} end
local left = tonumber(w[3]) - now
if w[2] == ARGV[1] and left > tonumber(ARGV[2]) then return 1 end
return {0, w[1], w[2], left}
"""
)

# KEYS: 1 queue zset, 2 queue liveness zset.  ARGV: 1 queue member
_LEAVE_QUEUE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class _FenceLine:
    """A Redis connection of its own for the fence check that precedes every write (``ALock.ensure_fence``).

    The check is one EVALSHA whose arguments stay the same for every write under a lease. Through the client it also
    takes a connection from the pool, wraps the call in the retry policy and packs the command again each time, which
    costs more than the round trip itself; on the write path it is paid once per write. So the line packs the command
    once per (scope, token, margin), sends it on a connection no other command uses, and reads the reply directly.

    It only ever answers "this token passes" (the script's bare 1). Anything else -- the line busy with a concurrent
    check, a refusal (whose details the caller reads through the script), a connection error, NOSCRIPT after Redis
    restarted, a cancellation between the command and its reply -- answers False, and the caller asks through the
    client, which reconnects, retries and loads the script. A line that failed is closed and opened afresh on the next
    check, so a reply is never read by a check it does not belong to.
    """

    PACKED_MAX = 64
    """Commands kept packed (one per scope, token and margin in use); the cache is emptied when it grows past it."""

    def __init__(self, pool: aioredis.ConnectionPool, sha: str) -> None:
        self.pool = pool
        self.sha = sha
        self._conn: Any = None
        self._busy = False
        self._packed: dict[tuple[str, int, int], Any] = {}

    @classmethod
    def of(cls, redis: aioredis.Redis, sha: str) -> _FenceLine | None:
        """A line beside ``redis``'s pool; None for a client without one (a cluster client): the script path only."""
        pool = getattr(redis, "connection_pool", None)
        return cls(pool, sha) if isinstance(pool, aioredis.ConnectionPool) else None

    async def passes(self, key: str, token: int, margin_ms: int) -> bool:
        if self._busy:
            return False
        self._busy = True
        try:
            if self._conn is None:
                self._conn = self.pool.make_connection()  # type: ignore[no-untyped-call]
            conn = self._conn
            packed = self._packed.get((key, token, margin_ms))
            if packed is None:
                if len(self._packed) >= self.PACKED_MAX:
                    self._packed.clear()
                packed = self._packed[(key, token, margin_ms)] = conn.pack_command(
                    "EVALSHA", self.sha, 1, key, token, margin_ms
                )
            await conn.send_packed_command(packed, check_health=False)
            reply = await conn.read_response(disable_decoding=True)
        except Exception as exc:  # every failure falls back to the client's path, which reports it
            log.debug("fence line: %r; checking through the client", exc)
            await self.aclose()
            return False
        except BaseException:  # cancelled between the command and its reply: that reply must not reach another check
            self._drop()
            raise
        finally:
            self._busy = False
        return bool(reply == 1)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            writer.close()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)


class BlockingFence:
    """The fence check from a worker thread, around a write's dry run: ``send`` before it, ``passes`` after it.

    The gateway's worker thread sends a write's dry run and the write itself; checking the fence there too (on a
    blocking connection of its own, the command packed once per scope and token, as ``_FenceLine`` does on the event
    loop) keeps the event loop idle while the worker runs, instead of both competing for the interpreter. ``passes``
    answers True only for the script's bare 1; anything else -- a refusal, NOSCRIPT after a Redis restart, a
    connection error, a timeout -- is False, and the caller asks ``ALock.ensure_fence`` for the verdict and its
    reason. A failure closes the connection (a reply is never read by another check); the next ``send`` reconnects.
    """

    TIMEOUT_S = 5.0

    def __init__(self, settings: dict[str, Any], sha: str, base: str) -> None:
        self.settings = settings
        self.sha = sha
        self.base = base
        self._lock = threading.Lock()
        self._conn: Any = None  # a redis.connection.Connection (untyped)
        self._packed: tuple[tuple[str, int], Any] | None = None
        self._sent = False

    def send(self, scope: str, token: int) -> bool:
        """Send the check of ``token`` on ``scope``; True when it went out (``passes`` must follow, in this thread)."""
        ALock._check_scope(scope)
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._conn is None:
                self._conn = redis.connection.Connection(  # type: ignore[no-untyped-call]
                    **self.settings, socket_timeout=self.TIMEOUT_S, socket_connect_timeout=self.TIMEOUT_S
                )
            if self._packed is None or self._packed[0] != (scope, token):
                command = self._conn.pack_command("EVALSHA", self.sha, 1, f"{self.base}:w:{scope}", token, 0)
                self._packed = ((scope, token), command)
            self._conn.send_packed_command(self._packed[1], check_health=False)
        except Exception as exc:  # every failure leaves the verdict to ``ensure_fence``
            log.debug("blocking fence: %r", exc)
            self._drop()
            self._lock.release()
            return False
        self._sent = True
        return True

    def passes(self) -> bool:
        """Read the reply of the check ``send`` sent: True only when the token is the scope's current writer's."""
        if not self._sent:
            return False
        self._sent = False
        try:
            reply = self._conn.read_response(disable_decoding=True) if self._conn is not None else None
        except Exception as exc:
            log.debug("blocking fence: %r", exc)
            self._drop()
            return False
        finally:
            self._lock.release()
        return bool(reply == 1)

    def close(self) -> None:
        """Close the connection (a check in flight keeps it until it is read or abandoned)."""
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def abandon(self) -> None:
        """Forget a check ``send`` sent whose reply will not be read (its connection closes)."""
        if self._sent:
            self._sent = False
            self._drop()
            self._lock.release()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class ALock:
    """Readers-writer leases per scope, keyed under ``{prefix}:alock:``.

    Use one instance per process. While some task waits for a lease it keeps one pub/sub subscriber for release
    notifications, and drops it when nobody waits; ``aclose()`` (or ``async with``) stops it and waits until it is
    gone. Every method is safe to call concurrently from many tasks.
    """

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "stratus", tokens: TokenSource | None = None) -> None:
        if not prefix or any(c in prefix for c in "{}"):
            raise PermanentError(f"A-Lock prefix {prefix!r} must be non-empty and contain no braces")
        self.redis = redis
        self.prefix = prefix
        self.tokens = tokens
        """Where fencing tokens come from; ``None``: the scope's Redis counter (forgotten with Redis's state)."""
        self._base = f"{{{prefix}}}:alock"
        self.channel = f"{self._base}:released"
        self._acquire_write = redis.register_script(_ACQUIRE_WRITE)
        self._acquire_read = redis.register_script(_ACQUIRE_READ)
        self._renew_write = redis.register_script(_RENEW_WRITE)
        self._release_write = redis.register_script(_RELEASE_WRITE)
        self._renew_read = redis.register_script(_RENEW_READ)
        self._release_read = redis.register_script(_RELEASE_READ)
        self._check_fence = redis.register_script(_CHECK_FENCE)
        self._fence_line = _FenceLine.of(redis, self._check_fence.sha)
        self._blocking: BlockingFence | None = None  # one per A-Lock, made on first use (``blocking_fence``)
        self._leave_queue = redis.register_script(_LEAVE_QUEUE)
        self._waiters: dict[str, dict[asyncio.Event, tuple[Mode, str]]] = {}  # scope -> (mode, waiter id), oldest first
        self._listener: asyncio.Task[None] | None = None
        self._listener_ready: asyncio.Event | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    # --- keys ---

    def _key(self, kind: str, scope: str) -> str:
        return f"{self._base}:{kind}:{scope}"

    @staticmethod
    def _check_scope(scope: str) -> str:
        if not scope or any(c in scope for c in "|{}\n\0"):
            raise PermanentError(f"A-Lock scope {scope!r} is not a namespace name or {CLUSTER_SCOPE!r}")
        return scope

    def _index(self) -> str:
        return f"{self._base}:nsholders"

    def _queues(self, scope: str) -> list[str]:
        return [
            self._key("q", scope),
            self._key("qlive", scope),
            self._key("q", CLUSTER_SCOPE),
            self._key("qlive", CLUSTER_SCOPE),
        ]

    # --- writers ---

    async def try_acquire_write(self, scope: str, holder: str, ttl_s: float) -> Lease | None:
        """One attempt at the write lease of ``scope``; ``None`` when someone conflicting holds or waits for it."""
        granted, _ = await self._try_write(
            scope, holder, ttl_s, queue_ms=0, member=f"{uuid.uuid4().hex}|{holder}", tokens=[]
        )
        return granted

    async def acquire_write(self, scope: str, holder: str, ttl_s: float, wait_s: float = 0.0) -> Lease:
        """The write lease of ``scope``, waiting up to ``wait_s`` in FIFO order with the other waiting writers.

        Raises ``LockTimeout`` naming the blocker when the wait runs out.
        """
        waiter_id = uuid.uuid4().hex
        member = f"{waiter_id}|{holder}"
        reserved: list[int] = []  # an external token not yet consumed by a grant: reused across attempts

        async def attempt(last: bool) -> tuple[Lease | None, tuple[str, int]]:
            return await self._try_write(
                scope, holder, ttl_s, queue_ms=0 if last else QUEUE_MS, member=member, tokens=reserved
            )

        try:
            return await self._wait_for(scope, "write", holder, wait_s, attempt, waiter_id)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._leave_queue(keys=[self._key("q", scope), self._key("qlive", scope)], args=[member])
            raise

    async def _try_write(
        self, scope: str, holder: str, ttl_s: float, *, queue_ms: int, member: str, tokens: list[int] | None = None
    ) -> tuple[Lease | None, tuple[str, int]]:
        self._check_scope(scope)
        tokens = [] if tokens is None else tokens
        for _ in range(8):  # a fresh token loses to a racing grant only when that grant's token is newer still
            if self.tokens is not None and not tokens:
                tokens.append(await self.tokens.issue(scope, holder))
            reply = await self._grant_write(scope, holder, ttl_s, queue_ms, member, tokens[0] if tokens else None)
            if int(reply[0]) == 1:
                tokens.clear()
                lease = Lease(scope=scope, holder=holder, token=int(reply[1]), expires_at=_at(int(reply[2])))
                return lease, ("", 0)
            if _s(reply[1]) != "stale token":
                return None, (_blocker(_s(reply[1]), _s(reply[2]), _s(reply[4])), int(reply[3]))
            log.info("A-Lock %s: token %s is not above the scope's last (%s); a new one", scope, tokens, _s(reply[4]))
            tokens.clear()
        raise TemporaryError(f"A-Lock {scope!r}: no fencing token above the scope's last one after 8 tries", delay=0.1)

    async def _grant_write(
        self, scope: str, holder: str, ttl_s: float, queue_ms: int, member: str, token: int | None
    ) -> list[Any]:
        is_cluster = scope == CLUSTER_SCOPE
        reply: list[Any] = await self._acquire_write(
            keys=[
                self._key("w", scope),
                self._key("r", scope),
                self._key("fence", scope),
                self._key("q", scope),
                self._key("qlive", scope),
                self._index(),
                self._key("w", CLUSTER_SCOPE),
                self._key("q", CLUSTER_SCOPE),
                self._key("qlive", CLUSTER_SCOPE),
            ],
            args=[
                holder,
                _ttl_ms(ttl_s),
                int(is_cluster),
                queue_ms,
                f"w|{scope}|{holder}",
                member,
                "" if token is None else str(token),
            ],
        )
        return reply

    # --- readers ---

    async def try_acquire_read(self, scope: str, holder: str, ttl_s: float) -> ReadLease | None:
        """One attempt at a read lease of ``scope``; ``None`` when a writer holds or waits for it."""
        granted, _ = await self._try_read(scope, holder, ttl_s)
        return granted

    async def acquire_read(self, scope: str, holder: str, ttl_s: float, wait_s: float = 0.0) -> ReadLease:
        """A shared lease of ``scope``, waiting up to ``wait_s``; raises ``LockTimeout`` naming the blocker."""

        async def attempt(last: bool) -> tuple[ReadLease | None, tuple[str, int]]:
            return await self._try_read(scope, holder, ttl_s)

        return await self._wait_for(scope, "read", holder, wait_s, attempt)

    async def _try_read(self, scope: str, holder: str, ttl_s: float) -> tuple[ReadLease | None, tuple[str, int]]:
        self._check_scope(scope)
        is_cluster = scope == CLUSTER_SCOPE
        lease_id = uuid.uuid4().hex
        reply = await self._acquire_read(
            keys=[
                self._key("r", scope),
                self._key("w", scope),
                self._key("q", scope),
                self._key("qlive", scope),
                self._index(),
                self._key("w", CLUSTER_SCOPE),
                self._key("q", CLUSTER_SCOPE),
                self._key("qlive", CLUSTER_SCOPE),
            ],
            args=[f"{lease_id}|{holder}", _ttl_ms(ttl_s), int(is_cluster), f"r|{scope}|{lease_id}|{holder}"],
        )
        if int(reply[0]) == 1:
            lease = ReadLease(scope=scope, holder=holder, lease_id=lease_id, expires_at=_at(int(reply[2])))
            return lease, ("", 0)
        return None, (_blocker(_s(reply[1]), _s(reply[2]), _s(reply[4])), int(reply[3]))

    # --- renew, release, fence ---

    async def renew(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend a write lease to ``ttl_s`` from now; raises ``FencingError`` when it is no longer held."""
        reply = await self._renew_write(
            keys=[self._key("w", lease.scope), self._index()],
            args=[
                lease.holder,
                lease.token,
                _ttl_ms(ttl_s),
                int(lease.scope == CLUSTER_SCOPE),
                f"w|{lease.scope}|{lease.holder}",
            ],
        )
        if int(reply[0]) == 1:
            return lease.model_copy(update={"expires_at": _at(int(reply[1]))})
        raise FencingError(
            f"write lease on scope {lease.scope!r} (holder {lease.holder!r}, token {lease.token}) was lost"
            f"{_current(_s(reply[1]), _s(reply[2]))}; stop writing and let the coordinator decide (undo or retry)"
        )

    async def renew_read(self, lease: ReadLease, ttl_s: float) -> ReadLease:
        """Extend a read lease to ``ttl_s`` from now; raises ``FencingError`` when it expired or was released."""
        reply = await self._renew_read(
            keys=[self._key("r", lease.scope), self._index()],
            args=[
                f"{lease.lease_id}|{lease.holder}",
                _ttl_ms(ttl_s),
                int(lease.scope == CLUSTER_SCOPE),
                f"r|{lease.scope}|{lease.lease_id}|{lease.holder}",
            ],
        )
        if int(reply[0]) == 1:
            return lease.model_copy(update={"expires_at": _at(int(reply[1]))})
        raise FencingError(
            f"read lease {lease.lease_id} on scope {lease.scope!r} (holder {lease.holder!r}) expired or was released; "
            "what was read under it may be stale: acquire a new lease and read again"
        )

    async def release(self, lease: AnyLease) -> bool:
        """Give a lease back (compare-and-delete). ``False`` when it was no longer held (expired or taken over)."""
        if isinstance(lease, ReadLease):
            reply = await self._release_read(
                keys=[self._key("r", lease.scope), self._index(), *self._queues(lease.scope)],
                args=[
                    f"{lease.lease_id}|{lease.holder}",
                    f"r|{lease.scope}|{lease.lease_id}|{lease.holder}",
                    self.channel,
                    lease.scope,
                ],
            )
        else:
            reply = await self._release_write(
                keys=[self._key("w", lease.scope), self._index(), *self._queues(lease.scope)],
                args=[lease.holder, lease.token, f"w|{lease.scope}|{lease.holder}", self.channel, lease.scope],
            )
        return int(reply) == 1

    async def check_fence(self, scope: str, token: int, *, min_remaining_s: float = 0.0) -> bool:
        """True when ``token`` is the current, unexpired write lease of ``scope`` (with ``min_remaining_s`` left)."""
        ok, _, _, _ = await self._fence(scope, token, min_remaining_s)
        return ok

    async def ensure_fence(self, scope: str, token: int, *, min_remaining_s: float = 0.0) -> None:
        """Raise ``FencingError`` unless ``token`` is the current write lease of ``scope``; call before every write."""
        ok, holder, current, left_ms = await self._fence(scope, token, min_remaining_s)
        if ok:
            return
        if current == str(token):
            why = (
                f"the lease has only {max(left_ms, 0) / 1000:.3f}s left, less than the {min_remaining_s:.3f}s "
                "the write needs; renew the lease first"
            )
        else:
            why = f"the lease expired or was released{_current(holder, current)}; the write was not sent"
        raise FencingError(
            f"fencing token {token} is not the current writer of scope {scope!r}: {why}. A writer that lost its lease "
            "must stop; the coordinator rolls its transaction back from the journal"
        )

    async def _fence(self, scope: str, token: int, min_remaining_s: float) -> tuple[bool, str, str, int]:
        self._check_scope(scope)
        key, margin_ms = self._key("w", scope), max(0, round(min_remaining_s * 1000))
        if self._fence_line is not None and await self._fence_line.passes(key, token, margin_ms):
            return True, "", "", 0
        reply = await self._check_fence(keys=[key], args=[token, margin_ms])
        if not isinstance(reply, list):  # the current writer: a bare 1 (the check before every write, kept short)
            return int(reply) == 1, "", "", 0
        return False, _s(reply[1]), _s(reply[2]), int(reply[3])

    async def holders(self, scope: str) -> dict[str, Any]:
        """Who holds ``scope`` now (for humans and the CLI): writer, readers, queued writers, last token issued."""
        self._check_scope(scope)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self._key("w", scope))
        pipe.zrange(self._key("r", scope), 0, -1, withscores=True)
        pipe.get(self._key("fence", scope))
        pipe.zrange(self._key("q", scope), 0, -1)
        pipe.zrange(self._key("qlive", scope), 0, -1, withscores=True)
        pipe.time()
        w, readers, fence, queue, live, (sec, usec) = await pipe.execute()
        now = sec * 1000 + usec // 1000
        writer: dict[str, Any] | None = None
        fields = {_s(k): _s(v) for k, v in w.items()}
        if fields and int(fields["exp"]) > now:
            remaining = (int(fields["exp"]) - now) / 1000
            writer = {"holder": fields["holder"], "token": int(fields["token"]), "remaining_s": remaining}
        current = []
        for member, score in readers:
            if score > now:
                lease_id, _, name = _s(member).partition("|")
                current.append({"holder": name, "lease_id": lease_id, "remaining_s": (score - now) / 1000})
        alive = {_s(member) for member, deadline in live if deadline > now}
        waiting = [_s(member).partition("|")[2] for member in queue if _s(member) in alive]
        return {
            "writer": writer,
            "readers": current,
            "waiting_writers": waiting,
            "last_token": int(fence) if fence is not None else 0,
        }

    # --- waiting ---

    async def _wait_for(
        self,
        scope: str,
        mode: Mode,
        holder: str,
        wait_s: float,
        attempt: Callable[[bool], Awaitable[tuple[_L | None, tuple[str, int]]]],
        waiter_id: str = "",
    ) -> _L:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + max(wait_s, 0.0)
        delay = POLL_FIRST_S
        event = asyncio.Event()
        watching = False
        try:
            while True:
                event.clear()
                now = loop.time()
                granted, (blocker, left_ms) = await attempt(now >= deadline)
                if granted is not None:
                    LOCK_WAIT.labels(mode).observe(loop.time() - start)
                    LOCK_ACQUIRE.labels(mode, "granted").inc()
                    return granted
                now = loop.time()
                if now >= deadline:
                    LOCK_WAIT.labels(mode).observe(now - start)
                    LOCK_ACQUIRE.labels(mode, "timeout").inc()
                    raise LockTimeout(
                        f"{mode} lease on scope {scope!r} for {holder!r} not granted within {wait_s:.3f}s: blocked by "
                        f"{blocker} for another {max(left_ms, 0) / 1000:.3f}s; retry later",
                        delay=max(left_ms / 1000, 0.1),
                    )
                if not watching:  # subscribe only once a wait is needed: uncontended grants cost one round trip
                    await self._watch(scope, event, mode, waiter_id)
                    watching = True
                    continue  # a release may have come between the refusal and the subscription: look again now
                pause = min(delay * random.uniform(0.5, 1.0), deadline - now)
                if left_ms > 0:
                    pause = min(pause, left_ms / 1000 + 0.001)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), pause)
                delay = min(delay * 2, POLL_CAP_S)
        finally:
            if watching:
                self._unwatch(scope, event)

    async def _watch(self, scope: str, event: asyncio.Event, mode: Mode, waiter_id: str) -> None:
        self._waiters.setdefault(scope, {})[event] = (mode, waiter_id)
        if self._listener is None or self._listener.done():
            self._listener_ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(self._listener_ready), name=f"alock-{self.prefix}")
        assert self._listener_ready is not None
        if not self._listener_ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener_ready.wait(), 1.0)

    def _unwatch(self, scope: str, event: asyncio.Event) -> None:
        events = self._waiters.get(scope)
        if events is not None:
            events.pop(event, None)
            if not events:
                del self._waiters[scope]
        if not self._waiters:  # idle: drop the subscriber, so an unused ALock holds no task or connection
            task, self._listener = self._listener, None
            if task is not None:
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def _wake(self, message: str) -> None:
        """Wake the waiters a release may unblock: the readers, and the writers at the head of the queues.

        A release on a namespace can unblock that namespace and a cluster writer; a release of the cluster scope can
        unblock anyone. Only the head of a writers' queue can be granted, and the release names the heads, so exactly
        those writers retry (no retry storm). After a cluster release the namespaces' heads are not named: each
        namespace's oldest local writer retries, which is the head when this process holds it. A wake-up that was
        not needed, or one that was missed, costs latency, never liveness: every waiter also polls.
        """
        scope, _, rest = message.partition("\n")
        heads = {head for head in rest.split("\n") if head}
        for waiting, events in self._waiters.items():
            if not (waiting == scope or CLUSTER_SCOPE in (scope, waiting)):
                continue
            guess = not heads or (scope == CLUSTER_SCOPE and waiting != CLUSTER_SCOPE)
            for event, (mode, waiter_id) in events.items():
                if mode == "read" or waiter_id in heads:
                    event.set()
                elif guess:
                    event.set()
                    guess = False

    async def _listen(self, ready: asyncio.Event) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                ready.set()
                backoff = 0.1
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if msg is not None and msg.get("type") == "message":
                        self._wake(_s(msg["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # waiters keep polling meanwhile
                log.warning(
                    "A-Lock release subscriber on %s failed (%s); retrying in %.1fs", self.channel, exc, backoff
                )
                ready.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def blocking_fence(self) -> BlockingFence | None:
        """A fence check a worker thread can make (``BlockingFence``); None when the client's connections are not
        plain TCP (TLS, a Unix socket, a cluster client): the async ``ensure_fence`` only then."""
        pool = getattr(self.redis, "connection_pool", None)
        if not isinstance(pool, aioredis.ConnectionPool) or pool.connection_class is not aioredis.Connection:
            return None
        if self._blocking is None:
            settings = {k: pool.connection_kwargs.get(k) for k in ("host", "port", "db", "username", "password")}
            known = {k: v for k, v in settings.items() if v is not None}
            self._blocking = BlockingFence(known, self._check_fence.sha, self._base)
        return self._blocking

    async def aclose(self) -> None:
        """Stop the release subscriber, if a wait left one running, and close the fence line (the Redis client stays
        the caller's)."""
        if self._fence_line is not None:
            await self._fence_line.aclose()
        if self._blocking is not None:
            self._blocking.close()
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            self._stopping.add(task)
        for stopping in list(self._stopping):
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
        self._stopping.clear()

    async def __aenter__(self) -> ALock:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def keep(self, lease: Lease, ttl_s: float, *, release_on_exit: bool = True) -> LeaseKeeper:
        """A ``LeaseKeeper`` renewing ``lease`` every ``ttl_s / 3`` while the ``async with`` body runs."""
        return LeaseKeeper(self, lease, ttl_s, release_on_exit=release_on_exit)


def _ttl_ms(ttl_s: float) -> int:
    if ttl_s <= 0:
        raise PermanentError(f"lease ttl must be positive, got {ttl_s}")
    return max(1, round(ttl_s * 1000))


def _blocker(kind: str, who: str, token: str) -> str:
    """What blocks a grant, as a human reads it (reader and index members carry the holder after their ids)."""
    if token:
        return f"{kind} {who!r} (token {token})"
    if kind == "reader":
        lease_id, _, holder = who.partition("|")
        return f"reader {holder!r} (read lease {lease_id})"
    if kind.startswith("waiting"):  # queue member: waiter id | holder
        return f"{kind} {who.partition('|')[2]!r}"
    if kind == "namespace holder":
        mode, _, rest = who.partition("|")
        scope, _, holder = rest.partition("|")
        if mode == "r":
            holder = holder.partition("|")[2]
        return f"{'writer' if mode == 'w' else 'reader'} {holder!r} of namespace {scope!r}"
    return f"{kind} {who!r}"


def _current(holder: str, token: str) -> str:
    return f"; the scope's writer is now {holder!r} with token {token}" if holder else "; the scope has no writer now"


class LeaseKeeper:
    """Keeps a write lease alive: renews it every ttl/3 and sets ``lost`` when it can no longer be renewed.

    Renewal that fails with ``FencingError`` means someone else may already hold the scope: ``lost`` is set at once.
    Renewal that fails because Redis is unreachable is retried until the lease's last known expiry (measured on the
    local monotonic clock from the last successful renewal, which is conservative), then ``lost`` is set. The holder
    must stop writing when ``lost`` is set; the gateway's fence check refuses its writes anyway.

        async with alock.keep(lease, ttl_s=30) as keeper:
            ...  # work; check keeper.lost.is_set() or await keeper.lost.wait() in a race
    """

    def __init__(self, alock: ALock, lease: Lease, ttl_s: float, *, release_on_exit: bool = True) -> None:
        self.alock = alock
        self.lease = lease
        self.ttl_s = ttl_s
        self.release_on_exit = release_on_exit
        self.lost = asyncio.Event()
        self.error: BaseException | None = None
        self.renewals = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._run(), name=f"lease-keeper-{self.lease.scope}-{self.lease.token}")
        return self

    async def __aexit__(self, *_: object) -> None:
        self._closing = True
        task = self._task
        # On Python 3.11, ``asyncio.wait_for`` loses a cancellation that arrives as its inner call completes
        # (CPython gh-86296): the renewal loop then went on renewing forever and this exit never returned, leaving a
        # transaction open under a lease nobody would ever release. The loop also checks ``_closing``, and the cancel
        # is repeated until the task is done.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if task is not None and not task.cancelled():
            with contextlib.suppress(BaseException):
                task.result()
        if self.release_on_exit and not self.lost.is_set():
            try:
                await self.alock.release(self.lease)
            except Exception as exc:  # the lease then simply expires
                log.warning("could not release %s/%s: %s", self.lease.scope, self.lease.token, exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.ttl_s / 3
        # The lease may have been granted well before the keeper started (a coordinator hands it to a mitigator after
        # checkpointing): what is left of it is at most its TTL and at most what its expiry says. So the first renewal
        # is at once, and a lease already gone is reported at once rather than at the first interval.
        left = (self.lease.expires_at - datetime.now(UTC)).total_seconds()
        valid_until = loop.time() + max(0.0, min(self.ttl_s, left))
        pause = 0.0
        while not self._closing:
            await asyncio.sleep(pause)
            if self._closing:
                return
            asked = loop.time()
            try:
                # Past ``valid_until`` the lease may be someone else's, whatever a late reply says.
                self.lease = await asyncio.wait_for(
                    self.alock.renew(self.lease, self.ttl_s), timeout=max(valid_until - asked, 0.001)
                )
            except FencingError as exc:
                self._lose(exc)
                return
            except Exception as exc:
                if loop.time() >= valid_until:
                    self._lose(exc)
                    return
                log.warning("renewing lease %s/%s failed (%r); retrying", self.lease.scope, self.lease.token, exc)
                pause = min(interval, max(valid_until - loop.time(), 0.0) / 2, 1.0)
                continue
            self.renewals += 1
            valid_until = asked + self.ttl_s
            pause = interval

    def _lose(self, exc: BaseException) -> None:
        self.error = exc
        self.lost.set()
        log.warning("lease on %s (token %s) lost: %s", self.lease.scope, self.lease.token, exc)


def lease_keeper(alock: ALock, lease: Lease, ttl_s: float, *, release_on_exit: bool = True) -> LeaseKeeper:
    """``async with lease_keeper(alock, lease, ttl_s) as keeper:`` keeps ``lease`` alive; see ``LeaseKeeper``."""
    return LeaseKeeper(alock, lease, ttl_s, release_on_exit=release_on_exit)
