"""The chaos menu: every entry is a valid, permitted write, and the menu covers the families the safety suite needs."""

from __future__ import annotations

import random

from stratus.confinement import confine_action
from stratus.reasoners.chaos import harmful_actions


def objects() -> tuple[list[dict], list[dict], list[dict]]:  # type: ignore[type-arg]
    deployment = {
        "metadata": {"name": "geo"},
        "spec": {"template": {"spec": {"containers": [{"name": "hotel-reserv-geo", "image": "x"}]}}},
    }
    service = {"metadata": {"name": "geo"}, "spec": {"selector": {"app": "geo"}, "ports": [{"port": 8083}]}}
    pod = {"metadata": {"name": "geo-abc"}}
    return [deployment], [service], [pod]


def test_every_chaos_action_is_a_valid_permitted_write() -> None:
    deployments, services, pods = objects()
    menu = harmful_actions(random.Random(1), "ns", deployments, services, pods)
    for spec in menu:
        action = spec
        assert action.is_write
        confine_action(action, "write")  # raises if a rule forbids it
    verbs = {s.verb for s in menu}
    assert {"scale", "set_image", "set_env", "patch", "delete", "create", "rollout_restart"} <= verbs


def test_the_menu_is_reproducible_from_its_seed() -> None:
    deployments, services, pods = objects()
    a = harmful_actions(random.Random("tx-1"), "ns", deployments, services, pods)
    b = harmful_actions(random.Random("tx-1"), "ns", deployments, services, pods)
    assert a == b
