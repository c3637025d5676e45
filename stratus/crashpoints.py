"""Crash points: named places where a process kills itself with SIGKILL, armed only by tests.

Recovery code is only as good as the moments it was tried at. A crash point makes one exact moment reproducible:
"after the journal acknowledged an intent and before the write", "after an undo step", "after the coordinator decided
to abort and before it asked for the undo". A point fires when ``STRATUS_CRASH_DIR`` (``CommonSettings.crash_dir``,
unset in production) names a directory holding a file named after the point. The file is removed before the process
dies, so the restarted process passes the same point; a ``<name>.fired`` file tells the test that it fired.

Unarmed (the default), a crash point costs one comparison.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

_armed: Path | None = None


def arm(directory: str | Path | None) -> None:
    """Watch ``directory`` for crash-point files (``None``: disarm)."""
    global _armed
    _armed = Path(directory) if directory else None


def crash_point(name: str) -> None:
    """SIGKILL this process here if the test armed ``name`` (see the module docstring)."""
    if _armed is None:
        return
    trigger = _armed / name
    try:
        trigger.unlink()
    except FileNotFoundError:
        return
    (_armed / f"{name}.fired").write_text(str(os.getpid()))
    log.error("crash point %s: SIGKILL (armed by a test)", name)
    os.kill(os.getpid(), signal.SIGKILL)
