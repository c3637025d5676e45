"""The request-filter load model: a nested-quantifier regex backtracks exponentially on a long input it does not
match, so a client that keeps sending such inputs pins the filtering process and requests behind it time out;
a disabled rule, a linear regex, or no such client leaves it serving."""

from __future__ import annotations

from typing import Any

import pytest

from arena.behaviour.load import backtracks, nested_quantifier, saturated
from arena.behaviour.world import Landed, Runtime, World, process_of
from tests.unit.arena_apps.minicluster import MiniCluster

BAD = "^([a-zA-Z]+)*$"
CRAFTED = "a" * 100 + "!"


@pytest.mark.parametrize(
    ("regex", "nested"),
    [(BAD, True), ("^(a*)*$", True), ("(x|y+){2,}", True), ("^[A-Za-z]+$", False), ("^(ab)+$", False)],
)
def test_nested_quantifiers(regex: str, nested: bool) -> None:
    assert nested_quantifier(regex) is nested


def test_backtracking_needs_a_long_input_that_does_not_match() -> None:
    assert backtracks(BAD, CRAFTED)
    assert not backtracks(BAD, "a" * 100)  # it matches: no backtracking storm
    assert not backtracks(BAD, "a!")  # short
    assert not backtracks("^[A-Za-z]+$", CRAFTED)  # linear


def _proxy(env: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "proxy", "namespace": "shop", "uid": "p1", "labels": {"app": "proxy"}},
        "spec": {
            "containers": [
                {
                    "name": "proxy",
                    "image": "ghcr.io/open-telemetry/demo:2.2.0-frontend-proxy",
                    "command": ["/usr/bin/perl", "-e", "x"],
                    "env": env,
                }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "proxy", "state": {"running": {}}}],
        },
    }


def _client(url: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "shop", "uid": "c1", "labels": {"app": "client"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.36", "command": ["watch", "-n", "0.05", "wget", "-q", url]}
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.6",
            "containerStatuses": [{"name": "c", "state": {"running": {}}}],
        },
    }


def _saturated(env: list[dict[str, str]], url: str | None) -> str | None:
    mc = MiniCluster()
    proxy = _proxy(env)
    mc.put(proxy)
    mc.put(
        {
            "kind": "Service",
            "metadata": {"name": "proxy", "namespace": "shop"},
            "spec": {"selector": {"app": "proxy"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        }
    )
    if url:
        mc.put(_client(url))
    world = World(mc, Runtime())
    pod = mc.get("Pod", "shop", "proxy")
    assert pod is not None
    container = pod["spec"]["containers"][0]
    conn = Landed(pod, container, process_of(world.rt.catalogue, container), 8080)
    return saturated(world, conn)


def test_a_client_sending_backtracking_inputs_pins_the_filter() -> None:
    url = f"http://proxy:8080/?waf={CRAFTED}"
    env = [{"name": "WAF_RULE_REGEX", "value": BAD}]
    assert _saturated(env, url) is not None
    assert _saturated([*env, {"name": "WAF_RULE_ENABLED", "value": "false"}], url) is None
    assert _saturated([{"name": "WAF_RULE_REGEX", "value": "^[A-Za-z]+$"}], url) is None
    assert _saturated(env, None) is None
    assert _saturated(env, "http://proxy:8080/?waf=" + "a" * 100) is None
