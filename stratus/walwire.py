"""The journal's blocking JetStream publisher: a write's intent, sent from the gateway's worker thread.

Why it exists:

- A gateway write is CPU-bound in one Python process: the worker thread sends the dry run and the write while the
  event loop appends the intent through the asyncio NATS client. Both need the interpreter at the same time, and the
  asyncio client spends several loop iterations and tasks per acknowledged publish (flusher, reader, subscription,
  timer). Measured on the arena (issue 12's notes), a write whose intent and fence go out from the worker thread, on
  connections of their own, around its dry run, costs about a quarter less CPU (1.5 against 2.0 ms per write) and
  fewer than half the context switches (8 against 19).
- So the worker writes the intent's HPUB before it sends the dry run, and reads the acknowledgement after the dry
  run's answer: the journal's round trip runs under the dry run's, and the event loop is idle meanwhile.

What it speaks: the subset of the NATS client protocol a JetStream publish needs. INFO and CONNECT (with the user and
password or the token the async client uses), PING/PONG, one SUB for its reply inbox, HPUB with headers, and the
replies: MSG (the JSON acknowledgement or JetStream's error) and HMSG (a status: 503, no stream listens). Every line
and payload it reads is bounded.

What it does not: TLS, credentials files, nkeys, clusters beyond the server the async client is connected to.
``WalWire.of`` returns None for such a connection, and the journal publishes through the async client as before. Any
failure closes the connection (a reply is never read by a publish it does not belong to); the next publish opens a
new one. A publish whose acknowledgement is lost is an intent of unknown fate, as with the async client: the write it
announces is not sent, and its undo restores a pre-image that never changed.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

MAX_LINE = 65_536
"""The longest protocol line read (an INFO with a cluster's URLs is the longest a server sends)."""

MAX_ACK_BYTES = 65_536
"""The largest reply read: a JetStream acknowledgement or error is a few hundred bytes."""

DISABLE_S = 30.0
"""After a failed handshake (authentication, TLS the wire cannot speak), how long publishes go the async way."""


class WireError(Exception):
    """The publish was not sent, or its acknowledgement did not arrive: its fate is unknown."""


_UNREADABLE = (WireError, OSError, ValueError, TypeError, RecursionError)
"""What a connection or a server's answer can raise while it is read: each fails the publish as a ``WireError``."""


class WireRefused(WireError):
    """JetStream answered the publish with an error (nothing was stored)."""

    def __init__(self, description: str, code: int | None, err_code: int | None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code
        self.err_code = err_code


class WalWire:
    """One blocking connection to a NATS server for JetStream publishes, one at a time (``send`` then ``ack``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.token = token
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._inbox = b""
        self._max_payload = 1_048_576
        self._next = 0
        self._waiting: bytes | None = None
        self._disabled_until = 0.0

    @classmethod
    def of(cls, nc: Any, *, timeout_s: float = 5.0) -> WalWire | None:
        """A wire to the server the async client ``nc`` is connected to, with its credentials; None when the
        connection uses what the wire does not speak (TLS, credentials files, nkeys, a custom signature)."""
        options = getattr(nc, "options", None) or {}
        if any(options.get(k) for k in ("tls", "user_credentials", "nkeys_seed", "signature_cb", "user_jwt_cb")):
            return None
        url = getattr(nc, "connected_url", None)
        if url is None or url.scheme not in ("nats", "") or not url.hostname:
            return None
        user, password, token = options.get("user"), options.get("password"), options.get("token")
        if url.username and url.password:
            user, password = url.username, url.password
        elif url.username:
            token = url.username
        return cls(url.hostname, url.port or 4222, user=user, password=password, token=token, timeout_s=timeout_s)

    @property
    def available(self) -> bool:
        """False for ``DISABLE_S`` after a failed handshake: publish through the async client meanwhile."""
        return time.monotonic() >= self._disabled_until

    def send(self, subject: str, payload: bytes, headers: Mapping[str, str]) -> None:
        """Publish ``payload`` to ``subject`` with ``headers``; ``ack`` must follow (it releases the wire). Raises
        ``WireError`` when nothing could be sent (the wire is released then)."""
        if not self._lock.acquire(timeout=self.timeout_s):
            raise WireError(f"the journal's wire stayed busy for {self.timeout_s:.0f}s")
        try:
            head = b"".join(_header(k, v) for k, v in headers.items())
            block = b"NATS/1.0\r\n" + head + b"\r\n"
            if " " in subject or "\r" in subject or "\n" in subject or not subject:
                raise WireError(f"not a subject: {subject!r}")
            if len(block) + len(payload) > self._max_payload:
                raise WireError(f"{len(block) + len(payload)} bytes is more than the server's max_payload")
            if self._sock is None:
                self._connect()
            self._next += 1
            reply = self._inbox + b".%d" % self._next
            frame = b"HPUB %s %s %d %d\r\n" % (subject.encode(), reply, len(block), len(block) + len(payload))
            assert self._sock is not None
            self._sock.sendall(frame + block + payload + b"\r\n")
            self._waiting = reply
        except BaseException as exc:
            self._close()
            self._lock.release()
            if isinstance(exc, WireError):
                raise
            if isinstance(exc, _UNREADABLE):
                raise WireError(f"the journal's wire failed: {exc!r}") from exc
            raise

    def ack(self) -> int:
        """The stream sequence JetStream gave the publish ``send`` sent; raises ``WireRefused`` for JetStream's error
        and ``WireError`` when it did not answer within the timeout. Releases the wire."""
        reply, self._waiting = self._waiting, None
        if reply is None:
            raise WireError("no publish is waiting for its acknowledgement")
        try:
            answer = self._reply_to(reply)
        except BaseException as exc:
            self._close()
            if isinstance(exc, _UNREADABLE) and not isinstance(exc, WireError):
                raise WireError(f"the journal's wire failed: {exc!r}") from exc
            raise
        finally:
            self._lock.release()
        error = answer.get("error")
        if isinstance(error, dict):
            raise WireRefused(
                str(error.get("description", error)), _int(error.get("code")), _int(error.get("err_code"))
            )
        seq = answer.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
            with self._lock:
                self._close()  # not JetStream's answer: nothing more is read from this connection
            raise WireError(f"JetStream's acknowledgement has no sequence: {str(answer)[:200]}")
        return seq

    def abandon(self) -> None:
        """Forget the publish ``send`` sent, whose acknowledgement will not be read: the connection closes (a later
        publish never reads that answer) and the wire is released."""
        if self._waiting is not None:
            self._waiting = None
            self._close()
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._close()

    # --- the protocol -------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise WireError(f"cannot reach NATS at {self.host}:{self.port}: {exc!r}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._file = sock, sock.makefile("rb")
        try:
            line = self._line()
            if not line.startswith(b"INFO "):
                raise WireError(f"NATS did not introduce itself: {line[:80]!r}")
            info = json.loads(line[5:])
            if not isinstance(info, dict):
                raise WireError("NATS's INFO is not an object")
            if info.get("tls_required") or not info.get("headers", True):
                raise WireError("the server wants TLS, or has no headers: the journal's wire does not speak it")
            self._max_payload = int(info.get("max_payload") or self._max_payload)
            hello: dict[str, Any] = {
                "verbose": False,
                "pedantic": False,
                "headers": True,
                "no_responders": True,
                "protocol": 1,
                "lang": "python",
                "version": "stratus-walwire",
                "name": "stratus-journal-wire",
            }
            if self.user is not None:
                hello["user"], hello["pass"] = self.user, self.password or ""
            if self.token is not None:
                hello["auth_token"] = self.token
            sock.sendall(b"CONNECT " + json.dumps(hello).encode() + b"\r\nPING\r\n")
            while (line := self._line()) != b"PONG\r\n":
                if line.startswith(b"-ERR"):
                    raise WireError(f"NATS refused the journal's wire: {line.decode(errors='replace').strip()}")
            self._inbox = b"_INBOX.wal" + secrets.token_hex(8).encode()
            sock.sendall(b"SUB " + self._inbox + b".* 1\r\n")
        except _UNREADABLE as exc:
            self._disabled_until = time.monotonic() + DISABLE_S
            self._close()
            raise WireError(str(exc)) from exc

    def _reply_to(self, reply: bytes) -> dict[str, Any]:
        assert self._sock is not None
        deadline = time.monotonic() + self.timeout_s  # each read has the timeout too; this bounds them all
        while True:
            if time.monotonic() > deadline:
                raise WireError(f"no acknowledgement within {self.timeout_s:.0f}s")
            line = self._line()
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line.split()
                headed = parts[0] == b"HMSG"
                if len(parts) not in ((5, 6) if headed else (4, 5)):
                    raise WireError(f"a malformed reply line: {line[:80]!r}")
                total = int(parts[-1])
                head = int(parts[-2]) if headed else 0
                if not 0 <= head <= total <= MAX_ACK_BYTES:
                    raise WireError(f"a reply of {total} bytes, more than {MAX_ACK_BYTES}")
                body = self._file.read(total + 2)
                if len(body) != total + 2 or body[-2:] != b"\r\n":
                    raise WireError("the connection closed inside a reply")
                if parts[1] != reply:
                    continue  # an answer to a publish abandoned before (its connection would have closed): never ours
                if headed:
                    status = body[:head].split(b"\r\n", 1)[0]
                    raise WireError(f"JetStream did not store the publish: {status.decode(errors='replace')}")
                answer = json.loads(body[:-2])
                if not isinstance(answer, dict):
                    raise WireError("JetStream's acknowledgement is not an object")
                return answer
            if line == b"PING\r\n":
                self._sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise WireError(f"NATS: {line.decode(errors='replace').strip()}")
            elif not (line.startswith(b"INFO ") or line in (b"PONG\r\n", b"+OK\r\n")):
                raise WireError(f"an unexpected line from NATS: {line[:80]!r}")

    def _line(self) -> bytes:
        line: bytes = self._file.readline(MAX_LINE + 1)
        if not line.endswith(b"\r\n"):
            raise WireError("the connection closed" if len(line) <= MAX_LINE else "a protocol line is too long")
        return line

    def _close(self) -> None:
        sock, reader, self._sock, self._file, self._waiting = self._sock, self._file, None, None, None
        for closing in (reader, sock):  # the reader holds the socket open until it is closed too
            if closing is not None:
                try:
                    closing.close()
                except OSError:
                    pass


def _header(key: str, value: str) -> bytes:
    if any(c in key for c in ":\r\n ") or "\r" in value or "\n" in value:
        raise WireError(f"not a header: {key!r}: {value!r}")
    return f"{key}: {value}\r\n".encode()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
