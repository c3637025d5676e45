"""`stratus up` runs six real service processes against real NATS and Redis; they answer health, refuse work they
cannot do yet with a readable event, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus import contracts as c
from stratus.bus import Bus
from stratus.localinfra import LocalServer, free_port
from stratus.supervisor import gather_health, wait_healthy

pytestmark = pytest.mark.integration

STRATUS = str(Path(sys.executable).parent / "stratus")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    """`stratus up` as a user runs it, with its output read as it comes: an unread pipe fills up and blocks the
    supervisor's own writes, which would stall it (and its Ctrl-C) on a chatty or busy day."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([STRATUS, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._chunks.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self, *, to_the_end: bool = False) -> str:
        if to_the_end:  # the process has exited: the pipe ends once drained
            self._reader.join(timeout=10)
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def system(nats_server: LocalServer, redis_server: LocalServer, shop_arena: tuple[object, Path]) -> Iterator[Up]:
    env = dict(
        os.environ,
        STRATUS_NATS_URL=nats_server.url,
        STRATUS_REDIS_URL=redis_server.url,
        STRATUS_KUBECONFIG=str(shop_arena[1]),
        STRATUS_SCOPES='["no-such-namespace"]',
        STRATUS_PORT=str(free_port()),
    )
    up = Up(env)
    yield up
    up.close()


async def test_all_six_services_become_healthy(system: Up, nats_server: LocalServer) -> None:
    # Behaviour, not speed: start-up time is a benchmark figure (printed), never a bound that flakes on a busy machine.
    start = time.monotonic()
    replies = await wait_healthy(nats_server.url, timeout=90)
    assert {s for s, rs in replies.items() if any(r.ok for r in rs)} == set(c.SERVICES)
    print(f"all six services healthy after {time.monotonic() - start:.1f}s")
    status = subprocess.run([STRATUS, "status", "--nats-url", nats_server.url], capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    for s in c.SERVICES:
        assert s in status.stdout


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("mitigate", "no longer current"), ("undo", "no longer current")],
)
async def test_work_that_cannot_be_done_is_refused_with_a_readable_event(
    system: Up, nats_server: LocalServer, bus: Bus, uid: str, kind: str, reason: str
) -> None:
    await wait_healthy(nats_server.url, timeout=60)  # behaviour, not start-up speed
    from datetime import UTC, datetime

    lease = c.Lease(scope="ns", holder="t", token=1, expires_at=datetime.now(UTC))
    incident = f"inc-{uid}"
    request: c.Message = {
        "diagnose": c.DiagnoseRequest(incident_id=incident, scope="ns"),
        "mitigate": c.MitigateRequest(incident_id=incident, scope="ns", tx_id="tx", attempt=1, lease=lease),
        "undo": c.UndoRequest(
            incident_id=incident, scope="ns", tx_id="tx", attempt=1, lease=lease, checkpoint_digest=""
        ),
    }[kind]
    service = c.WORK_KIND_SERVICE[kind]
    sub = await bus.js.subscribe(c.events_subject(incident, "work_failed"), ordered_consumer=True)
    await bus.publish(c.work_subject(service), request)
    msg = await sub.next_msg(timeout=10)
    event = c.EVENT_ADAPTER.validate_json(msg.data)
    assert isinstance(event, c.WorkFailed)
    assert event.service == service and reason in event.reason and event.request_id == request.id
    await sub.unsubscribe()


async def test_the_diagnoser_answers_with_a_diagnosis(system: Up, nats_server: LocalServer, bus: Bus, uid: str) -> None:
    await wait_healthy(nats_server.url, timeout=60)  # behaviour, not start-up speed
    incident = f"inc-{uid}"
    sub = await bus.js.subscribe(c.events_subject(incident, "diagnosis"), ordered_consumer=True)
    await bus.publish(c.work_subject("diagnoser"), c.DiagnoseRequest(incident_id=incident, scope="no-such-namespace"))
    event = c.EVENT_ADAPTER.validate_json((await sub.next_msg(timeout=20)).data)
    assert isinstance(event, c.DiagnosisReady) and event.incident_id == incident
    await sub.unsubscribe()


async def test_health_shows_each_dependency_of_each_service(system: Up, nats_server: LocalServer) -> None:
    await wait_healthy(nats_server.url, timeout=60)
    deadline = time.monotonic() + 20
    while True:
        replies = await gather_health(nats_server.url, window=0.5)
        deps = {s: r.dependencies for s, rs in replies.items() for r in rs}
        if all(v == "ok" for d in deps.values() for v in d.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    cluster = {"nats", "redis", "kubernetes"}
    expected = {
        "bridge": {"nats"},
        "coordinator": cluster,
        "detector": cluster,
        "diagnoser": {"nats", "kubernetes"},  # no LLM configured: the rulebook needs none
        "mitigator": cluster,
        "undoer": cluster,
    }
    assert {s: set(d) for s, d in deps.items()} == expected
    assert all(v == "ok" for d in deps.values() for v in d.values()), deps
    status = subprocess.run([STRATUS, "status", "--nats-url", nats_server.url], capture_output=True, text=True)
    assert "kubernetes ok" in status.stdout and "redis ok" in status.stdout


async def test_sigint_stops_everything_and_leaves_no_process(system: Up, nats_server: LocalServer) -> None:
    await wait_healthy(nats_server.url, timeout=60)  # behaviour, not start-up speed
    kids = children_of(system.pid)
    assert len(kids) >= 6
    system.proc.send_signal(signal.SIGINT)
    try:
        system.proc.wait(timeout=60)  # the supervisor allows each service 20 s to stop, then drains their output
    except subprocess.TimeoutExpired:
        system.proc.kill()
        raise AssertionError("stratus up did not stop in 60 s:\n" + system.log()[-6000:]) from None
    assert system.proc.returncode == 0
    deadline = time.monotonic() + 5
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not [k for k in kids if alive(k)]
    replies = await gather_health(nats_server.url, window=0.3)
    assert not any(replies.values())
    log = system.log(to_the_end=True)
    for s in c.SERVICES:
        assert f"{s}: stopped" in log, log[-3000:]
