"""The journal's blocking JetStream publisher against a scripted server: every line it reads is bounded, a reply that
is not its own is never taken for its acknowledgement, and anything unexpected fails the publish (fate unknown, the
write not sent) and closes the connection."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stratus.walwire import MAX_ACK_BYTES, MAX_LINE, WalWire, WireError, WireRefused

INFO = b'INFO {"server_id":"x","version":"2.15.1","headers":true,"max_payload":1048576}\r\n'
Script = Callable[[socket.socket, bytes], None]
"""Answers one publish: gets the connection and the reply subject the client asked on."""


class Server:
    """A NATS server that speaks the handshake, then answers each HPUB with ``script``."""

    def __init__(self, script: Script, info: bytes = INFO) -> None:
        self.script, self.info = script, info
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            conn.sendall(self.info)
            while line := reader.readline():
                self.received.append(line)
                if line.startswith(b"PING"):
                    conn.sendall(b"PONG\r\n")
                elif line.startswith(b"HPUB "):
                    parts = line.split()
                    reader.read(int(parts[-1]) + 2)
                    self.script(conn, parts[2])
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Server, WalWire]]]:
    servers: list[Server] = []
    wires: list[WalWire] = []

    def start(script: Script, info: bytes = INFO) -> tuple[Server, WalWire]:
        server = Server(script, info)
        servers.append(server)
        wires.append(WalWire("127.0.0.1", server.port, timeout_s=2.0))
        return server, wires[-1]

    yield start
    for wire in wires:
        wire.close()
    for server in servers:
        server.close()


def ack(seq: int) -> Script:
    def answer(conn: socket.socket, reply: bytes) -> None:
        body = json.dumps({"stream": "S", "seq": seq}).encode()
        conn.sendall(b"MSG %s 1 %d\r\n%s\r\n" % (reply, len(body), body))

    return answer


def publish(wire: WalWire) -> int:
    wire.send("s.journal.tx", b"{}", {"Nats-Msg-Id": "tx:1:intent", "Nats-Expected-Last-Subject-Sequence": "0"})
    return wire.ack()


def test_a_publish_is_acknowledged_with_its_sequence(serve: Callable[..., tuple[Server, WalWire]]) -> None:
    server, wire = serve(ack(42))
    assert publish(wire) == 42
    assert publish(wire) == 42  # the connection is kept
    assert server.connections == 1
    hello = next(line for line in server.received if line.startswith(b"CONNECT "))
    assert json.loads(hello[8:])["headers"] is True


def test_pings_and_other_replies_before_the_acknowledgement_are_handled(
    serve: Callable[..., tuple[Server, WalWire]],
) -> None:
    def noisy(conn: socket.socket, reply: bytes) -> None:
        stale = json.dumps({"stream": "S", "seq": 1}).encode()
        conn.sendall(b"PING\r\n+OK\r\n" + INFO)
        conn.sendall(b"MSG _INBOX.other.1 1 %d\r\n%s\r\n" % (len(stale), stale))  # not this publish's answer
        ack(7)(conn, reply)

    server, wire = serve(noisy)
    assert publish(wire) == 7
    deadline = time.monotonic() + 2
    while b"PONG\r\n" not in server.received and time.monotonic() < deadline:  # the server reads it after answering
        time.sleep(0.01)
    assert b"PONG\r\n" in server.received


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"-ERR 'Permissions Violation for Publish'\r\n", "Permissions Violation"),
        (b"HMSG {reply} 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", "did not store"),
        (b"MSG {reply} 1 %d\r\n" % (MAX_ACK_BYTES + 1), "more than"),
        (b"X" * (MAX_LINE + 10) + b"\r\n", "too long"),
        (b'MSG {reply} 1 40\r\n{"stream"', "closed inside a reply"),
        (b"MSG {reply} 1 2\r\n[]\r\n", "not an object"),
        (b'MSG {reply} 1 14\r\n{"stream":"S"}\r\n', "no sequence"),
        (b"MSG {reply} 1 nope\r\n", "invalid literal"),
        (b"MSG {reply} 1 40000\r\n" + b"[" * 20000 + b"]" * 20000 + b"\r\n", "RecursionError"),
        (b"WHAT\r\n", "unexpected line"),
    ],
)
def test_an_answer_it_cannot_trust_fails_the_publish_and_closes_the_connection(
    serve: Callable[..., tuple[Server, WalWire]], answer: bytes, error: str
) -> None:
    def hostile(conn: socket.socket, reply: bytes) -> None:
        conn.sendall(answer.replace(b"{reply}", reply))
        if error == "closed inside a reply":
            conn.shutdown(socket.SHUT_RDWR)

    server, wire = serve(hostile)
    with pytest.raises(WireError, match=error):
        publish(wire)
    assert wire._sock is None  # closed: a late answer is never read by the next publish
    with pytest.raises(WireError):
        publish(wire)  # a new connection
    assert server.connections == 2


def test_jetstreams_refusal_is_reported_with_its_code(serve: Callable[..., tuple[Server, WalWire]]) -> None:
    def refuse(conn: socket.socket, reply: bytes) -> None:
        body = json.dumps({"error": {"code": 400, "err_code": 10071, "description": "wrong last sequence: 3"}})
        conn.sendall(b"MSG %s 1 %d\r\n%s\r\n" % (reply, len(body), body.encode()))

    _, wire = serve(refuse)
    with pytest.raises(WireRefused, match="wrong last sequence") as info:
        publish(wire)
    assert info.value.err_code == 10071 and info.value.code == 400


def test_a_silent_server_times_out(serve: Callable[..., tuple[Server, WalWire]]) -> None:
    _, wire = serve(lambda conn, reply: None)
    with pytest.raises(WireError, match="failed"):
        publish(wire)


def test_a_server_that_keeps_talking_without_answering_times_out(
    serve: Callable[..., tuple[Server, WalWire]],
) -> None:
    def chatter(conn: socket.socket, reply: bytes) -> None:
        try:
            for _ in range(40):  # a PING every 0.1 s: each read succeeds, the acknowledgement never comes
                conn.sendall(b"PING\r\n")
                time.sleep(0.1)
        except OSError:
            pass

    _, wire = serve(chatter)
    wire.timeout_s = 1.0
    started = time.monotonic()
    with pytest.raises(WireError, match="no acknowledgement within"):
        publish(wire)
    assert time.monotonic() - started < 2.0


def test_a_server_that_wants_tls_disables_the_wire_for_a_while(serve: Callable[..., tuple[Server, WalWire]]) -> None:
    _, wire = serve(ack(1), info=b'INFO {"server_id":"x","tls_required":true,"headers":true}\r\n')
    with pytest.raises(WireError, match="TLS"):
        publish(wire)
    assert not wire.available


def test_headers_and_subjects_that_would_break_the_frame_are_refused_before_sending(
    serve: Callable[..., tuple[Server, WalWire]],
) -> None:
    server, wire = serve(ack(1))
    for subject, headers in [
        ("s.journal tx", {"Nats-Msg-Id": "a"}),
        ("s.journal.tx", {"Nats-Msg-Id": "a\r\nNats-Rollup: all"}),
        ("s.journal.tx", {"Bad: Key": "a"}),
    ]:
        with pytest.raises(WireError):
            wire.send(subject, b"{}", headers)
    assert not any(line.startswith(b"HPUB") for line in server.received)
    assert publish(wire) == 1  # the wire was released each time


def test_a_publish_abandoned_before_its_acknowledgement_closes_the_connection(
    serve: Callable[..., tuple[Server, WalWire]],
) -> None:
    server, wire = serve(ack(5))
    wire.send("s.journal.tx", b"{}", {"Nats-Msg-Id": "tx:1:intent"})
    wire.abandon()
    assert wire._sock is None
    assert publish(wire) == 5 and server.connections == 2


def test_of_reads_the_async_clients_server_and_credentials() -> None:
    from urllib.parse import urlparse

    class Client:
        def __init__(self, url: str, **options: object) -> None:
            self.connected_url = urlparse(url)
            self.options = options

    wire = WalWire.of(Client("nats://alice:secret@10.0.0.5:4223"))
    assert wire is not None and (wire.host, wire.port, wire.user, wire.password) == (
        "10.0.0.5",
        4223,
        "alice",
        "secret",
    )
    token = WalWire.of(Client("nats://s3cr3t@nats"))
    assert token is not None and token.token == "s3cr3t" and token.port == 4222
    assert WalWire.of(Client("tls://nats:4222")) is None
    assert WalWire.of(Client("nats://nats:4222", user_credentials="/creds")) is None
    assert WalWire.of(Client("nats://nats:4222", tls=object())) is None
