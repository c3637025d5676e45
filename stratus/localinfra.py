"""Start real ``nats-server -js`` and ``redis-server`` processes on free loopback ports.

Used by ``stratus up`` (when nothing answers at the configured URLs), by ``make demo`` and by the test fixtures.
By default each server gets a temporary data directory, removed by ``stop()``. Given a ``data_dir`` (``stratus up``
without ``--ephemeral``), the server keeps its data there and ``stop()`` leaves it: JetStream streams (the audit trail)
and Redis keys (an append-only file) are there again on the next start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from stratus.errors import PermanentError, TemporaryError


def find_binary(name: str) -> str:
    """The venv's copy first (installed from wheels by ``make install``), then the PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise PermanentError(f"{name} not found in {here.parent} or on PATH; run `make install` first")
    return found


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """PR_SET_PDEATHSIG: the child gets SIGTERM when the process that started it dies, even by SIGKILL (a server
    left running would keep the data directory busy for the next ``stratus up``)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)


def _preexec(wanted: bool) -> Any:
    return die_with_parent if wanted and sys.platform.startswith("linux") else None


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOW_PORT = 20000
"""Ports for local servers are drawn from ``LOW_PORT`` up to the start of the kernel's ephemeral range."""


def free_port() -> int:
    """A port nothing listens on now, for a server started next.

    The kernel's own choice (bind to port 0) comes from the ephemeral range, which every outgoing connection on the
    machine draws from too: between this check and the server's bind, a busy test run (two sessions starting arenas,
    NATS and services at once) took such a port and a server died with "address already in use". So the port is drawn
    at random below that range (Linux's ``ip_local_port_range``, 32768 when unreadable), where only listeners take
    ports, and the kernel's choice is the fallback.
    """
    try:
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    rng = random.SystemRandom()
    if ephemeral_low - LOW_PORT >= 1000:
        for _ in range(64):
            port = rng.randrange(LOW_PORT, ephemeral_low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    parsed = urlparse(url)
    default = {"nats": 4222, "redis": 6379, "https": 443}.get(parsed.scheme, 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalServer:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    extra: dict[str, str] = field(default_factory=dict)
    keep: bool = False

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _wait(predicate: object, what: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PermanentError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    proc.kill()
    raise TemporaryError(f"{what} did not become ready within {timeout:.0f}s (log: {log})")


def _workdir(name: str, data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"stratus-{name}-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def start_nats(*, timeout: float = 15.0, data_dir: Path | None = None, die_with_parent: bool = False) -> LocalServer:
    """``nats-server -js`` on a free client port; the URL is read from the server's own ports file. With
    ``data_dir`` the JetStream store lives (and stays) there."""
    workdir = _workdir("nats", data_dir)
    log = workdir / "nats.log"
    cmd = [
        find_binary("nats-server"),
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        "-1",
        "-m",
        "-1",
        "-sd",
        str(workdir / "data"),
        "--ports_file_dir",
        str(workdir),
        "-l",
        str(log),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_preexec(die_with_parent),
    )
    ports_file = workdir / f"nats-server_{proc.pid}.ports"

    def ready() -> bool:
        if not ports_file.exists():
            return False
        with contextlib.suppress(ValueError):
            ports = json.loads(ports_file.read_text())
            return bool(ports.get("nats")) and reachable(ports["nats"][0])
        return False

    _wait(ready, "nats-server", proc, timeout, log)
    ports = json.loads(ports_file.read_text())
    if data_dir is not None:
        ports_file.unlink(missing_ok=True)  # read once; a kept directory would collect one per start
    monitor = ports.get("monitoring", [""])[0]
    return LocalServer("nats", ports["nats"][0], proc, workdir, {"monitor": monitor}, keep=data_dir is not None)


def start_redis(*, timeout: float = 10.0, data_dir: Path | None = None, die_with_parent: bool = False) -> LocalServer:
    """``redis-server`` on a free port. With ``data_dir`` it keeps an append-only file there (and leaves it)."""
    workdir = _workdir("redis", data_dir)
    log = workdir / "redis.log"
    port = free_port()
    cmd = [
        find_binary("redis-server"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no" if data_dir is None else "yes",
        "--dir",
        str(workdir),
        "--logfile",
        str(log),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_preexec(die_with_parent),
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait(lambda: reachable(url), "redis-server", proc, timeout, log)
    return LocalServer("redis", url, proc, workdir, keep=data_dir is not None)
