"""A scenario's ``setup`` (what the upstream deployment has before the fault) runs first at inject, or earlier, once,
for a runner that records a healthy baseline in between."""

from __future__ import annotations

from typing import Any

from arena.scenarios.engine import Engine
from arena.scenarios.schema import parse_scenario


class Recorder:
    """A Kube stand-in that records the deletes and answers every read with nothing."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def get(self, kind: str, namespace: str | None, name: str) -> None:
        return None

    def delete(self, kind: str, namespace: str | None, name: str, ignore_missing: bool = True) -> None:
        self.deleted.append(name)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call {name}")


def scenario() -> Any:
    return parse_scenario(
        {
            "family": "f",
            "app": "hotel-reservation",
            "tasks": ["detection"],
            "description": "d",
            "ground_truth": {"detection": True},
            "setup": [{"action": "delete", "kind": "ConfigMap", "name": "built-before"}],
            "inject": [{"action": "delete", "kind": "ConfigMap", "name": "the-fault"}],
        }
    )


def test_inject_runs_the_setup_first_unless_a_runner_set_it_up() -> None:
    kube = Recorder()
    Engine(kube).inject(scenario())  # type: ignore[arg-type]
    assert kube.deleted == ["built-before", "the-fault"]
    kube = Recorder()
    engine = Engine(kube)  # type: ignore[arg-type]
    engine.setup(scenario())
    assert kube.deleted == ["built-before"]
    engine.inject(scenario(), set_up=True)
    assert kube.deleted == ["built-before", "the-fault"]
