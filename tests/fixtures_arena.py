"""Pytest plugin with the arena fixtures (register with ``pytest_plugins = ["tests.fixtures_arena"]``).

One arena per test session (``arena``), with fast timings and a behaviour that makes images named ``crash*`` crash
and images named ``missing*`` fail to pull; tests isolate themselves in uuid-named namespaces (``arena_ns``).
``kubectl`` runs the real kubectl from the venv against it; ``k8s_client`` is the official Python client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from arena.hooks import ClusterView, DefaultBehaviour, StartOutcome
from arena.server import ArenaServer
from arena.timing import Timing

KUBECTL = str(Path(sys.executable).parent / "kubectl")


class ConformanceBehaviour(DefaultBehaviour):
    """Images ``crash*`` exit 1 after a log line; ``missing*`` cannot be pulled; ``hang*`` never exits (an init
    container stays running); everything else runs."""

    def start(self, view: ClusterView, pod: dict[str, Any], container: dict[str, Any]) -> StartOutcome:
        image = str(container.get("image", ""))
        if image.startswith("crash"):
            return StartOutcome("crash", logs=["starting", "panic: cannot connect to database"], exit_code=1)
        if image.startswith("missing"):
            return StartOutcome(
                "pull_error",
                message=f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack '
                f'image "docker.io/library/{image}": failed to resolve reference "docker.io/library/{image}": '
                f"not found",
            )
        if image.startswith("hang"):
            return StartOutcome("running", logs=["waiting"], keeps_running=True)
        return StartOutcome("running", logs=[f"{container.get('name')} listening", "ready"])


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as exc:  # conditions may race object creation
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="session")
def arena() -> Iterator[ArenaServer]:
    server = ArenaServer(behaviour=ConformanceBehaviour(), timing=Timing.fast()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def arena_kubeconfig(arena: ArenaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arena.write_kubeconfig(tmp_path_factory.mktemp("arena") / "kubeconfig")


@pytest.fixture(scope="session")
def k8s_client(arena: ArenaServer) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = arena.url
    cfg.api_key = {"authorization": "Bearer arena"}
    api = client.ApiClient(cfg)
    yield api
    api.close()


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache = cache
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(cache)}

    def run(
        self, *args: str, ns: str | None = None, check: bool = True, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache / "cache")]
        if ns:
            cmd += ["-n", ns]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def __call__(
        self, *args: str, ns: str | None = None, check: bool = True, input: str | None = None, timeout: float = 30
    ) -> str:
        return self.run(*args, ns=ns, check=check, input=input, timeout=timeout).stdout


@pytest.fixture(scope="session")
def kubectl(arena_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(arena_kubeconfig, tmp_path_factory.mktemp("kubectl"))


@pytest.fixture
def arena_ns(arena: ArenaServer) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    arena.cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for(lambda: arena.cluster.get("ServiceAccount", name, "default"), what="default service account")
    yield name
    arena.cluster.delete("Namespace", None, name)
