"""``stratus arena serve`` serves a cluster that kubectl can use, until Ctrl-C; ``bench-api`` prints figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_arena import KUBECTL, wait_for

pytestmark = pytest.mark.integration


def test_serve_writes_a_kubeconfig_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from arena.cli import app; app()",
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--nodes",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(kubeconfig.exists, 20, what="the kubeconfig")
        env = {**os.environ, "HOME": str(tmp_path)}
        out = wait_for(
            lambda: (
                subprocess.run(
                    [KUBECTL, "--kubeconfig", str(kubeconfig), "get", "nodes"], capture_output=True, text=True, env=env
                ).stdout
            ),
            10,
            what="nodes",
        )
        assert "node-1" in out and "node-2" in out and "node-3" not in out
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "arena serving the Kubernetes API" in stdout


def test_bench_api_prints_percentiles() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arena.bench_api", "--pods", "5", "--rounds", "5", "--clients", "2", "--seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "p50 ms" in out.stdout and "list 5 pods" in out.stdout and "create configmap" in out.stdout
