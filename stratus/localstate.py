"""What ``stratus up`` leaves in its data directory for the other commands, and how they find their servers.

Why a state file: when nothing answers at the configured URLs, ``stratus up`` starts its own nats-server and
redis-server on free ports. ``stratus status`` and ``stratus incidents ...`` would then try the configured URL (often
the default) and find nothing. So ``up`` writes ``<data dir>/up.json``: its pid and, for each server it started, the
URL it was asked for and the URL the server runs at. A command whose URL was not given on its command line takes the
started server's URL in place of the one it was asked for, as long as that ``up`` still runs (its pid is alive); the
file of an ``up`` that was killed is ignored.

Why a persistent data directory: the audit trail is the events stream in NATS, and the coordinator's state is in
Redis. ``up`` keeps both under ``<data dir>/nats`` and ``<data dir>/redis`` so they survive a restart; ``--ephemeral``
uses temporary directories removed on stop. One ``up`` at a time owns a data directory (an exclusive ``flock`` on
``up.lock``, released by the kernel when the process dies): two nats-servers on one store would corrupt it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal

from stratus.errors import PermanentError

STATE_FILE = "up.json"
LOCK_FILE = "up.lock"

ServerName = Literal["nats", "redis"]


@dataclass(frozen=True)
class StartedServer:
    name: str
    requested: str
    url: str


@dataclass(frozen=True)
class UpState:
    """What a running ``stratus up`` recorded."""

    pid: int
    data_dir: str
    ephemeral: bool
    servers: list[StartedServer] = field(default_factory=list)

    def url_for(self, name: str, requested: str) -> str | None:
        """The URL of the server this ``up`` started in place of ``requested``, if it did."""
        for s in self.servers:
            if s.name == name and _same_address(s.requested, requested):
                return s.url
        return None


def _same_address(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def write_state(data_dir: Path, state: UpState) -> Path:
    """Write ``up.json`` atomically (a reader never sees half a file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)
    return path


def read_state(data_dir: Path) -> UpState | None:
    """The state of the ``stratus up`` that runs on ``data_dir``; None when there is none, or it no longer runs."""
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        state = UpState(
            pid=int(raw["pid"]),
            data_dir=str(raw["data_dir"]),
            ephemeral=bool(raw.get("ephemeral", False)),
            servers=[StartedServer(**s) for s in raw.get("servers", [])],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if pid_alive(state.pid) else None


def clear_state(data_dir: Path, pid: int) -> None:
    """Remove ``up.json`` if it is this process's."""
    path = data_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == pid:
            path.unlink()


class DataDirLock:
    """Exclusive ownership of a data directory by one ``stratus up``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file: IO[str] | None = None

    def __enter__(self) -> DataDirLock:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            f = (self.data_dir / LOCK_FILE).open("a+")
        except OSError as exc:
            raise PermanentError(
                f"cannot use the data directory {self.data_dir}: {exc.strerror or exc}; pass --data-dir with a "
                "writable directory, or --ephemeral"
            ) from exc
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            other = read_state(self.data_dir)
            who = f" (pid {other.pid})" if other else ""
            raise PermanentError(
                f"another `stratus up`{who} is using the data directory {self.data_dir}; stop it first, or pass "
                "another --data-dir, or --ephemeral"
            ) from exc
        self._file = f
        return self

    def __exit__(self, *_: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class Endpoint:
    """A server URL a command will use, and where it came from (for the message when it does not answer)."""

    name: ServerName
    url: str
    source: str

    @property
    def label(self) -> str:
        return {"nats": "NATS", "redis": "Redis"}[self.name]

    def unreachable(self, what: str = "nothing accepts connections there") -> str:
        """One line: the URL tried, why it failed, what to do."""
        var = f"STRATUS_{self.name.upper()}_URL"
        return (
            f"cannot reach {self.label} at {self.url} ({self.source}): {what}. Start Stratus with `stratus up`, or "
            f"point {var} (or --{self.name}-url) at a running {self.label} server."
        )


def resolve(name: ServerName, *, option: str | None, configured: str, from_env: bool, data_dir: Path) -> Endpoint:
    """The URL a one-shot command uses: ``--<name>-url`` when given; else the configured one (environment or
    default), unless a running ``stratus up`` started its own server in place of it."""
    if option:
        return Endpoint(name, option, f"from --{name}-url")
    state = read_state(data_dir)
    if state is not None and (started := state.url_for(name, configured)):
        return Endpoint(name, started, f"started by `stratus up` (pid {state.pid}) in place of {configured}")
    var = f"STRATUS_{name.upper()}_URL"
    source = f"from {var}" if from_env else f"the default; {var} is not set"
    return Endpoint(name, configured, source)
