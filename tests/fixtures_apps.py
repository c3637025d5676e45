"""Pytest plugin with the fixtures of the arena with both applications (registered in ``tests/conftest.py``).

``apps_arena`` is an :class:`AppsArena` with fast timings, started once per test module and stopped after it;
``apps_kubeconfig`` is its kubeconfig. A scenario ``Engine`` on them is not registered, because its ``time_scale``
is each file's own choice: a module that needs one binds ``engine = engine_fixture("module", time_scale=...)``.

The fixtures are made by factories so that the opt-in tier ``tests_llm`` (which does not load ``tests/conftest.py``)
can bind the same fixtures with session scope in its own conftest. The factories' fixtures find each other by name,
so bind them as ``apps_arena``, ``apps_kubeconfig`` and ``engine``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from arena.scenarios.engine import Engine, PlaneClient
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing

Scope = Literal["module", "session"]


def apps_arena_fixture(scope: Scope) -> Any:
    """An ``apps_arena`` fixture: the arena with both applications, started for ``scope`` and stopped after it."""

    @pytest.fixture(scope=scope)
    def apps_arena() -> Iterator[AppsArena]:
        arena = AppsArena(timing=Timing.fast())
        arena.start()
        yield arena
        arena.stop()

    return apps_arena


def apps_kubeconfig_fixture(scope: Scope) -> Any:
    """An ``apps_kubeconfig`` fixture: ``apps_arena``'s kubeconfig, written to a fresh temporary folder."""

    @pytest.fixture(scope=scope)
    def apps_kubeconfig(apps_arena: AppsArena, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return Path(apps_arena.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config"))

    return apps_kubeconfig


def engine_fixture(scope: Scope, time_scale: float) -> Any:
    """An ``engine`` fixture: a scenario Engine on ``apps_arena`` whose scenario waits are scaled by ``time_scale``."""

    @pytest.fixture(scope=scope)
    def engine(apps_arena: AppsArena, apps_kubeconfig: Path) -> Iterator[Engine]:
        kube = Kube.from_kubeconfig(str(apps_kubeconfig))
        plane = PlaneClient(apps_arena.plane_url)
        yield Engine(kube, plane, time_scale=time_scale)
        plane.close()
        kube.close()

    return engine


apps_arena = apps_arena_fixture("module")
apps_kubeconfig = apps_kubeconfig_fixture("module")
