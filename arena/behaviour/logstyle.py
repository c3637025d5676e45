"""Log lines in the style of the real applications: zerolog console lines for the Go HotelReservation services,
Boost.Log lines for the C++ SocialNetwork services, mongod 4.4 structured JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from arena.apps.catalogue import StartupStep
from arena.behaviour.world import Process


def _now() -> datetime:
    return datetime.now(UTC)


def go(proc: Process, level: str, line: int, message: str, source: str | None = None) -> str:
    src = source or proc.program.source or f"cmd/{proc.binary}/main.go"
    return f"{_now().strftime('%Y-%m-%dT%H:%M:%SZ')} {level} {src}:{line} > {message}"


def cpp(proc: Process, level: str, message: str, line: int = 80) -> str:
    stamp = _now().strftime("%Y-%b-%d %H:%M:%S.%f")
    return f"[{stamp}] <{level}>: ({proc.binary}.cpp:{line}:main) {message}"


def banner(proc: Process) -> list[str]:
    if proc.program.style == "go":
        lines = [go(proc, "INF", 24, "Reading config...")]
        return lines
    if proc.program.style == "nginx":
        return []
    return []


def before_step(proc: Process, step: StartupStep, address: str) -> list[str]:
    if proc.program.style != "go":
        return []
    if step.kind == "mongodb":
        return [
            go(proc, "INF", 37, f"Read database URL: {address}"),
            go(proc, "INF", 38, "Initializing DB connection..."),
        ]
    return [
        go(proc, "INF", 52, f"Read consul address: {address}"),
        go(proc, "INF", 53, f"Read jaeger address: {proc.config.get('jaegerAddress', 'jaeger:6831')}"),
        go(
            proc,
            "INF",
            55,
            f"Initializing jaeger agent [service name: {proc.program.tracer} | host: "
            f"{proc.config.get('jaegerAddress', 'jaeger:6831')}]...",
        ),
        go(proc, "INF", 60, "Jaeger agent initialized"),
        go(proc, "INF", 62, f"Initializing consul agent [host: {address}]..."),
        go(proc, "INF", 67, "Consul agent initialized"),
    ]


def after_step(proc: Process, step: StartupStep, address: str) -> list[str]:
    if proc.program.style != "go":
        return []
    if step.kind == "mongodb":
        return [
            go(proc, "INF", 27, "New session successfull...", proc.program.db_source),
            go(proc, "INF", 40, "Successful"),
            go(proc, "INF", 44, f"Read target port: {proc.ports()[0] if proc.ports() else ''}"),
        ]
    return []


def failure(proc: Process, step: StartupStep, message: str) -> list[str]:
    if proc.program.style in ("plain", "grpc"):
        return [f"Unhandled exception: {message}"]
    if proc.program.style != "go":
        return [cpp(proc, "error", message)]
    if step.on_fail == "panic":
        src = proc.program.db_source or proc.program.source
        return [
            go(proc, "PNC", 26, message, src),
            f"panic: {message}",
            "",
            "goroutine 1 [running]:",
            "github.com/rs/zerolog.(*Logger).Panic.func1({0xc0001a4000, 0x0})",
            "\t/go/src/github.com/harlow/go-micro-services/vendor/github.com/rs/zerolog/log.go:405 +0x2d",
            f"main.initializeDatabase({{0xc000028{len(message):03x}, 0x12}})",
            f"\t/go/src/github.com/harlow/go-micro-services/{src}:26 +0x167",
            "main.main()",
            f"\t/go/src/github.com/harlow/go-micro-services/{proc.program.source}:39 +0x877",
        ]
    return [go(proc, "FTL", 78, message)]


def serving(proc: Process) -> list[str]:
    if proc.program.style == "go":
        return [go(proc, "INF", 80, "Starting server...")]
    if proc.program.style == "cpp" and not any(s.on_fail == "retry" for s in proc.program.startup):
        return [cpp(proc, "info", f"Starting the {proc.program.tracer} server ...", 120)]
    if proc.program.style == "nginx":
        return []
    return []


def _mongo_line(severity: str, component: str, ident: int, ctx: str, msg: str, attr: dict[str, object]) -> str:
    stamp = _now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"
    doc = {"t": {"$date": stamp}, "s": severity, "c": component, "id": ident, "ctx": ctx, "msg": msg}
    if attr:
        doc["attr"] = attr
    return json.dumps(doc, separators=(",", ":"))


def mongod_boot() -> list[str]:
    return [
        _mongo_line(
            "I",
            "CONTROL",
            23285,
            "main",
            "Automatically disabling TLS 1.0, to force-enable TLS 1.0 specify --sslDisabledProtocols 'none'",
            {},
        ),
        _mongo_line(
            "I",
            "CONTROL",
            4615611,
            "initandlisten",
            "MongoDB starting",
            {"pid": 1, "port": 27017, "dbPath": "/data/db", "architecture": "64-bit"},
        ),
    ]


def mongod_listening(port: int, tls: str) -> str:
    return _mongo_line("I", "NETWORK", 23016, "listener", "Waiting for connections", {"port": port, "ssl": tls})


def mongod_fatal(error: str) -> str:
    return _mongo_line("F", "CONTROL", 20574, "main", "Error during global initialization", {"error": error})


def mongod_tls_reject(remote: str) -> str:
    return _mongo_line(
        "I",
        "NETWORK",
        22988,
        "conn",
        "Error receiving request from client. Ending connection from remote",
        {
            "error": {
                "code": 141,
                "codeName": "SSLHandshakeFailed",
                "errmsg": "The server is configured to only allow SSL connections",
            },
            "remote": remote,
        },
    )


def bind_failure(proc: Process, port: int) -> str:
    """The line a process writes when its listening port is already taken in the pod's network namespace."""
    if proc.program.style == "go":
        return go(proc, "FTL", 80, f"listen tcp :{port}: bind: address already in use")
    if proc.program.style == "grpc":
        return f"failed to listen: listen tcp :{port}: bind: address already in use"
    if proc.program.style == "plain":
        return "nc: bind: Address in use"
    return cpp(proc, "error", f"Could not bind to port {port}: Address already in use")
