"""Installing the Prometheus stack: processes that need it at the same time (the bench's workers) install it once, in
turn; a second apt-get beside the first fails on dpkg's lock, which crashed a bench worker on a fresh machine."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from stratus import promstack
from stratus.errors import PermanentError


def test_concurrent_callers_install_once_in_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"stratus-fake-{uuid.uuid4().hex[:8]}"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setattr(promstack, "BINARIES", {"fake": name})
    monkeypatch.setattr(promstack, "INSTALL_LOCK", tmp_path / "install.lock")
    runs = tmp_path / "runs"
    script = tmp_path / "install.sh"
    # like apt-get: fails when another install runs at the same time
    script.write_text(
        f"set -e\nif ! mkdir {tmp_path}/busy 2>/dev/null; then echo 'dpkg lock held' >&2; exit 100; fi\n"
        f"echo run >> {runs}\nsleep 0.3\nprintf '#!/bin/sh\\n' > {bindir}/{name}\nchmod +x {bindir}/{name}\n"
        f"rmdir {tmp_path}/busy\n"
    )
    errors: list[BaseException] = []

    def install() -> None:
        try:
            promstack.ensure_installed(script)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert runs.read_text().splitlines() == ["run"]
    assert promstack.missing() == []


def test_a_failed_install_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promstack, "BINARIES", {"fake": f"stratus-fake-{uuid.uuid4().hex[:8]}"})
    monkeypatch.setattr(promstack, "INSTALL_LOCK", tmp_path / "install.lock")
    script = tmp_path / "install.sh"
    script.write_text("echo 'no apt-get here' >&2; exit 100\n")
    with pytest.raises(PermanentError, match="exit 100"):
        promstack.ensure_installed(script)
