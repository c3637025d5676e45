"""One-shot commands fail fast: one line naming the URL tried and what to do, a non-zero exit status, no traceback.

Every command runs as the installed ``stratus`` in a subprocess, as a user types it; nothing listens on the ports
these tests name (no server is started here).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stratus.errors import PermanentError
from stratus.kubeapi import kube_api
from stratus.localinfra import free_port
from stratus.localstate import DataDirLock, StartedServer, UpState, clear_state, read_state, resolve, write_state
from stratus.runtime import ServiceRuntime
from stratus.settings import CommonSettings
from stratus.supervisor import Supervisor

STRATUS = str(Path(sys.executable).parent / "stratus")


def run(*args: str, data_dir: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    started = time.monotonic()
    proc = subprocess.run(
        [STRATUS, *args],
        env={**clean, "STRATUS_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, time.monotonic() - started


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command", [["status"], ["status", "--wait", "30"], ["incidents", "list"], ["incidents", "show", "x"]]
)
def test_a_command_with_no_nats_names_the_url_and_exits_2(command: list[str], tmp_path: Path) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    proc, took = run(*command, data_dir=tmp_path, STRATUS_NATS_URL=dead)
    assert proc.returncode == 2
    line = one_line(proc)
    assert f"cannot reach NATS at {dead} (from STRATUS_NATS_URL)" in line and "stratus up" in line
    assert took < 15, f"{command} took {took:.1f}s"


def test_the_option_is_named_when_it_gave_the_url(tmp_path: Path) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    proc, _ = run("incidents", "list", "--nats-url", dead, data_dir=tmp_path)
    assert proc.returncode == 2 and f"cannot reach NATS at {dead} (from --nats-url)" in one_line(proc)


def test_commands_use_the_server_a_running_up_started_in_place_of_the_configured_one(tmp_path: Path) -> None:
    configured = f"nats://127.0.0.1:{free_port()}"
    started = f"nats://127.0.0.1:{free_port()}"
    write_state(tmp_path, UpState(os.getpid(), str(tmp_path), False, [StartedServer("nats", configured, started)]))
    proc, _ = run("status", data_dir=tmp_path, STRATUS_NATS_URL=configured)
    line = one_line(proc)
    assert proc.returncode == 2 and f"cannot reach NATS at {started} (started by `stratus up` (pid " in line
    assert f"in place of {configured}" in line
    proc, _ = run("status", "--nats-url", configured, data_dir=tmp_path)  # the command line wins
    assert f"at {configured} (from --nats-url)" in one_line(proc)


def test_the_state_of_an_up_that_no_longer_runs_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = UpState(int(gone.stdout), str(tmp_path), True, [StartedServer("nats", "nats://a:1", "nats://b:2")])
    write_state(tmp_path, state)
    assert read_state(tmp_path) is None
    endpoint = resolve("nats", option=None, configured="nats://a:1", from_env=False, data_dir=tmp_path)
    assert endpoint.url == "nats://a:1" and "the default; STRATUS_NATS_URL is not set" in endpoint.source
    clear_state(tmp_path, state.pid)
    assert not (tmp_path / "up.json").exists()


def test_one_up_per_data_directory(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(PermanentError, match=f"using the data directory {tmp_path}"):
        DataDirLock(tmp_path).__enter__()
    with DataDirLock(tmp_path):  # released on exit
        pass


def test_up_refuses_a_data_directory_another_up_uses(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        proc, _ = run("up", data_dir=tmp_path, STRATUS_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    assert proc.returncode == 2
    assert f"another `stratus up` is using the data directory {tmp_path}" in one_line(proc)


def test_an_invalid_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc, _ = run("status", data_dir=tmp_path, STRATUS_PARTITIONS="0")
    assert proc.returncode == 2 and "invalid setting: STRATUS_PARTITIONS:" in one_line(proc)


def test_up_checks_every_service_s_settings_before_starting_anything(tmp_path: Path) -> None:
    proc, _ = run("up", data_dir=tmp_path, STRATUS_MAX_ACTIONS="0")
    assert proc.returncode == 2 and "invalid setting: STRATUS_MAX_ACTIONS:" in one_line(proc)
    assert not (tmp_path / "nats").exists()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_up_refuses_a_kubeconfig_path_that_names_no_file(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "no-such-kubeconfig" if kind == "missing" else tmp_path
    proc, took = run(
        "up",
        data_dir=tmp_path / "data",
        STRATUS_KUBECONFIG=str(path),
        STRATUS_NATS_URL=f"nats://127.0.0.1:{free_port()}",
    )
    assert proc.returncode == 2 and took < 15
    line = one_line(proc)
    assert f"STRATUS_KUBECONFIG names {path}, which" in line
    assert ("does not exist" if kind == "missing" else "is a directory") in line
    assert not (tmp_path / "data" / "nats").exists()  # nothing was started


def test_a_kubeconfig_that_does_not_load_is_a_permanent_error_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("this: is\nnot: a kubeconfig\n")
    with pytest.raises(PermanentError, match=f"cannot load the kubeconfig {bad}"):
        kube_api(CommonSettings(kubeconfig=str(bad)))
    with pytest.raises(PermanentError, match=f"STRATUS_KUBECONFIG names {tmp_path / 'nope'}, which does not exist"):
        kube_api(CommonSettings(kubeconfig=str(tmp_path / "nope")))


async def test_a_service_whose_metrics_port_is_taken_says_so_and_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = ServiceRuntime("bridge", CommonSettings(metrics_port=port, nats_url=f"nats://127.0.0.1:{port}"))
        with pytest.raises(SystemExit) as exit_:
            await runtime._start_metrics_or_exit()
    assert exit_.value.code == 2
    assert f"cannot serve metrics on port {port}" in caplog.text and "STRATUS_METRICS_PORT" in caplog.text


def test_each_process_gets_its_own_metrics_port_under_up() -> None:
    sup = Supervisor("nats://x:1", "redis://x:2", services=("bridge", "undoer"), replicas={"undoer": 2})
    sup.env["STRATUS_METRICS_PORT"] = "19100"
    assert sup.metrics_ports() == {("bridge", 0): 19100, ("undoer", 0): 19101, ("undoer", 1): 19102}
    assert sup.child_env("undoer", 1)["STRATUS_METRICS_PORT"] == "19102"
    sup.env["STRATUS_METRICS_PORT"] = "0"
    assert sup.metrics_ports() == {} and sup.child_env("bridge", 0)["STRATUS_METRICS_PORT"] == "0"
