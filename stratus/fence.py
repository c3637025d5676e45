"""Fencing tokens that outlive Redis: each write grant's token is a JetStream sequence number.

Why it is shaped this way:

- A fencing token must never be issued twice for a scope, or a writer that lost its lease could pass the fence of
  its successor. A counter in Redis (``INCR``) forgets itself when Redis restarts empty or fails over to a replica
  that had not yet received the last increments, and then token 1 is issued again.
- A JetStream stream's sequence numbers only ever grow, and the stream is on disk (and replicated, in a NATS
  cluster), apart from Redis. Publishing one small record per grant (``<prefix>.fence.<scope>``: who got which token)
  and using the acknowledged sequence as the token makes tokens unique and increasing across every scope, whatever
  happens to Redis. The stream keeps only the last record per scope, so it stays tiny.
- Redis still decides *who* holds a scope (the A-Lock scripts) and keeps a per-scope high-water mark: a token that
  is not above it (one fetched before a racing grant and used after it) is refused, and the A-Lock fetches a fresh
  one. Tokens therefore increase per scope while Redis keeps its state, and jump above every earlier one when Redis
  lost it.
- One publish per *grant*, not per attempt: a writer waiting in the queue reuses the token it holds until a grant
  consumes it. A grant costs one JetStream round trip more than before, a fraction of a millisecond on a local server.

What it does not cover: deleting the fence stream itself restarts the sequence; the stream is created with the
others and is never purged by Stratus.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api as js_api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from stratus.bus import Bus
from stratus.contracts import token
from stratus.errors import TemporaryError

log = logging.getLogger(__name__)


class TokenSource(Protocol):
    """Where the A-Lock takes fencing tokens from (``None`` in ``ALock``: a Redis counter, as before)."""

    async def issue(self, scope: str, holder: str) -> int: ...


class JetStreamTokens:
    """Fencing tokens from the sequence of the ``<stream_prefix>_FENCE`` stream (see the module docstring)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = f"{bus.topology.stream_prefix}_FENCE"
        self._ready = False

    def subject(self, scope: str) -> str:
        return f"{self.bus.topology.prefix}.fence.{token(scope)}"

    async def ensure_stream(self) -> None:
        config = js_api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.bus.topology.prefix}.fence.>"],
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            max_msgs_per_subject=1,
            discard=js_api.DiscardPolicy.OLD,
        )
        try:
            await self.bus.js.stream_info(self.stream)
        except NotFoundError:
            try:
                await self.bus.js.add_stream(config)
            except BadRequestError:  # created concurrently by another replica
                await self.bus.js.stream_info(self.stream)
        self._ready = True

    async def issue(self, scope: str, holder: str) -> int:
        """A token no one was ever given: the sequence of an acknowledged record of this grant."""
        if not self._ready:
            await self.ensure_stream()
        body = json.dumps({"scope": scope, "holder": holder}).encode()
        try:
            ack = await self.bus.js.publish(self.subject(scope), body, stream=self.stream, timeout=5.0)
        except (NatsTimeout, NoRespondersError, OSError) as exc:
            raise TemporaryError(f"no fencing token for {scope!r}: JetStream did not acknowledge: {exc!r}") from exc
        except APIError as exc:
            self._ready = False  # the stream may be gone: declare it again next time
            raise TemporaryError(f"no fencing token for {scope!r}: JetStream refused: {exc.description}") from exc
        return int(ack.seq)
