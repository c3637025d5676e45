"""Crash points fire only when a test arms them, once, with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from stratus import crashpoints

SCRIPT = """
import sys
from stratus import crashpoints
crashpoints.arm(sys.argv[1])
crashpoints.crash_point("other")
print("passed other", flush=True)
crashpoints.crash_point("here")
print("passed here", flush=True)
"""


def run(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(directory)], capture_output=True, text=True, timeout=30)


def test_an_armed_point_kills_the_process_once(tmp_path: Path) -> None:
    (tmp_path / "here").touch()
    first = run(tmp_path)
    assert first.returncode == -signal.SIGKILL
    assert first.stdout == "passed other\n"
    assert (tmp_path / "here.fired").exists() and not (tmp_path / "here").exists()
    again = run(tmp_path)  # the restarted process passes the same point
    assert again.returncode == 0 and again.stdout == "passed other\npassed here\n"


def test_unarmed_points_do_nothing() -> None:
    crashpoints.arm(None)
    crashpoints.crash_point("anything")
