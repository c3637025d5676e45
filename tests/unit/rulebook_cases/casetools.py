"""``ClusterTools`` / ``MitigationTools`` over a case folder, recording the writes instead of making them.

A case folder holds ``objects.yaml`` (every object, multi-document), ``events.yaml``, ``logs.yaml`` (``pod/container``
and ``pod/container#previous`` -> text), optionally ``traces.json`` and ``expected.yaml``. ``refuse`` makes
``execute`` raise like the gateway does (e.g. a cluster-scoped write under a namespace lease).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from stratus.actions import Action
from stratus.errors import PermanentError

Obj = dict[str, Any]
CASES = Path(__file__).parent
CLUSTER_KINDS = {"PersistentVolume", "StorageClass", "Node", "Namespace"}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _load(path: Path) -> Any:
    """Parsed once per run: the rulebook only reads what the tools return, so cases are shared read-only."""
    if path.name == "objects.yaml":
        return [o for o in yaml.load_all(path.read_text(), Loader=Loader) if o]
    return yaml.load(path.read_text(), Loader=Loader)


def case_dirs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if (p / "objects.yaml").exists())


class CaseTools:
    def __init__(
        self,
        folder: Path,
        *,
        max_writes: int = 20,
        refuse: Callable[[Action], str | None] | None = None,
    ) -> None:
        self.folder = folder
        self.objects: list[Obj] = _load(folder / "objects.yaml")
        self.event_list: list[Obj] = _load(folder / "events.yaml") or []
        logs = folder / "logs.yaml"
        self.log_texts: dict[str, str] = (_load(logs) or {}) if logs.exists() else {}
        traces = folder / "traces.json"
        self.trace_list: list[Obj] = json.loads(traces.read_text()) if traces.exists() else []
        expected = folder / "expected.yaml"
        self.expected: dict[str, Any] = (_load(expected) or {}) if expected.exists() else {}
        self.max_writes = max_writes
        self.refuse = refuse
        self.executed: list[Action] = []
        self.refused: list[Action] = []
        self.reads = 0

    # -- ClusterTools ------------------------------------------------------------------------------------------
    async def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        self.reads += 1
        return [
            o
            for o in self.objects
            if o.get("kind") == kind
            and (kind in CLUSTER_KINDS or namespace is None or o["metadata"].get("namespace") == namespace)
        ]

    async def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        for o in await self.list_objects(kind, namespace):
            if o["metadata"].get("name") == name:
                return o
        return None

    async def logs(
        self, namespace: str, pod: str, container: str | None = None, tail: int = 100, previous: bool = False
    ) -> str:
        key = f"{pod}/{container}" + ("#previous" if previous else "")
        if key not in self.log_texts and previous:
            raise PermanentError(f'previous terminated container "{container}" in pod "{pod}" not found')
        return "\n".join(self.log_texts.get(key, "").splitlines()[-tail:])

    async def events(self, namespace: str) -> list[Obj]:
        return list(self.event_list)

    async def traces(self, namespace: str, service: str | None = None, limit: int = 50) -> list[Obj]:
        return self.trace_list[:limit]

    async def kubectl(self, command: str) -> str:
        return "kubectl is not used by the rulebook"

    # -- MitigationTools ---------------------------------------------------------------------------------------
    @property
    def writes_left(self) -> int:
        return self.max_writes - len(self.executed)

    async def execute(self, action: Any) -> str:
        if self.refuse is not None:
            why = self.refuse(action)
            if why:
                self.refused.append(action)
                raise PermanentError(why)
        if self.writes_left <= 0:
            raise PermanentError("K exhausted")
        self.executed.append(action)
        return f"{action.verb} {action.target}: done"


def namespace_lease(scope: str) -> Callable[[Action], str | None]:
    """Refuse writes outside ``scope`` the way the gateway's lease check does."""

    def check(action: Action) -> str | None:
        if action.scope != scope:
            return (
                f"Write operation '{action.verb}' on {action.target} refused: it is in scope '{action.scope}' but "
                f"this transaction's lease covers scope '{scope}'."
            )
        return None

    return check
