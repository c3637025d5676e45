"""One arena with the applications' behaviour per test module, on loopback, with compressed timings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.apps import APPS
from arena.scenarios.engine import Engine, PlaneClient, Registry, wait_for
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec

TIME_SCALE = 0.1
"""Scenario waits (e.g. wait_for_ready's 60 s) are compressed by this factor."""


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppsArena]:
    a = AppsArena(timing=Timing.fast())
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope="module")
def kubeconfig(arena: AppsArena, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(arena.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config"))


@pytest.fixture(scope="module")
def engine(arena: AppsArena, kubeconfig: Path) -> Iterator[Engine]:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    plane = PlaneClient(arena.plane_url)
    yield Engine(kube, plane, time_scale=TIME_SCALE)
    plane.close()
    kube.close()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry()


def healthy(engine: Engine, app: str, timeout: float = 30.0) -> None:
    """Deploy the app if needed, then wait for every pod Ready and a clean probe workload."""
    spec = APPS[app]
    if engine.kube.get("Namespace", None, spec.namespace) is None:
        engine.deploy(spec)
    engine.wait_ready(spec.namespace, timeout)
    probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
    wait_for(
        f"{app} to serve without errors",
        lambda: engine._plane().workload(spec.namespace, probe).clean,
        timeout,
        interval=0.25,
    )
