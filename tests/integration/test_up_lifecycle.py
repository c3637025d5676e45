"""`stratus up` when nothing answers at the configured URLs: it starts NATS and Redis, records them in up.json for the
other commands, keeps their data across a restart, gives each process its own metrics port, and exits non-zero when
a service dies at start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stratus import contracts as c
from stratus.bus import Bus
from stratus.localinfra import free_port, reachable
from stratus.localstate import read_state

pytestmark = pytest.mark.integration

STRATUS = str(Path(sys.executable).parent / "stratus")


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """Nothing answers at the configured NATS and Redis URLs, so `up` starts its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return {
        **clean,
        "STRATUS_DATA_DIR": str(data_dir),
        "STRATUS_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "STRATUS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "STRATUS_PORT": str(free_port()),
        "STRATUS_LOG_FORMAT": "text",
        **extra,
    }


@contextmanager
def up(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [STRATUS, "up", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def wait_for_state(proc: subprocess.Popen[str], data_dir: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(data_dir)
        if state is not None and state.pid == proc.pid:
            return next(s.url for s in state.servers if s.name == "nats")
        assert proc.poll() is None, "stratus up exited"
        time.sleep(0.1)
    raise AssertionError("no up.json")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    return out


def consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no run of free ports")


def incidents(env: dict[str, str]) -> list[dict[str, object]]:
    out = subprocess.run([STRATUS, "incidents", "list", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


async def record_incident(nats_url: str, incident_id: str) -> None:
    bus = await Bus.connect(nats_url, name="pytest")
    try:
        await bus.ensure_streams()
        event = c.IncidentOpened(incident_id=incident_id, scope="shop", s0=c.Severity(mu=2.0), baseline=2.0)
        await bus.publish(c.events_subject(incident_id, event.kind), event)
    finally:
        await bus.close()


def test_the_audit_trail_survives_a_restart_and_commands_find_the_started_servers(tmp_path: Path, uid: str) -> None:
    data = tmp_path / "data"
    metrics = consecutive_free_ports(2)
    env = environment(data, STRATUS_METRICS_PORT=str(metrics))
    with up(env, "-s", "bridge", "-s", "undoer") as first:
        nats_url = wait_for_state(first, data)
        assert nats_url != env["STRATUS_NATS_URL"]
        asyncio.run(record_incident(nats_url, f"inc-{uid}"))
        assert [i["incident_id"] for i in incidents(env)] == [f"inc-{uid}"]  # found through up.json
        status = subprocess.run([STRATUS, "status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 1 and "bridge" in status.stdout  # not all six services run: no
        show = subprocess.run([STRATUS, "incidents", "show", "nope"], env=env, capture_output=True, text=True)
        assert show.returncode == 1 and "no events for incident 'nope'" in show.stdout + show.stderr
        for port in (metrics, metrics + 1):  # each process its own port
            deadline = time.monotonic() + 30
            while not reachable(f"http://127.0.0.1:{port}") and time.monotonic() < deadline:
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert b"stratus_service_info" in r.read()
        log = stop(first)
    assert "address already in use" not in log.lower()
    assert not (data / "up.json").exists() and (data / "nats").is_dir()
    down = subprocess.run([STRATUS, "incidents", "list"], env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 2 and f"cannot reach NATS at {env['STRATUS_NATS_URL']}" in down.stderr

    with up(env, "-s", "bridge") as second:  # new ports, the same data directory
        nats_url = wait_for_state(second, data)
        assert [i["incident_id"] for i in incidents(env)] == [f"inc-{uid}"]
        second.kill()  # even killed, `up` leaves no server behind to keep the data directory busy
        second.wait()
    deadline = time.monotonic() + 10
    while reachable(nats_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not reachable(nats_url) and read_state(data) is None


def test_up_exits_non_zero_when_a_service_dies_at_start(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not: a kubeconfig\n")
    env = environment(tmp_path / "data", STRATUS_KUBECONFIG=str(kubeconfig))
    started = time.monotonic()
    with up(env, "--ephemeral", "-s", "undoer") as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out[-3000:]
    assert time.monotonic() - started < 45
    assert f"cannot load the kubeconfig {kubeconfig}" in out
    assert "undoer (exit code 2) exited while starting" in out
    assert "Traceback" not in out
    assert not (tmp_path / "data" / "up.json").exists() and not (tmp_path / "data" / "nats").exists()
