"""Detection/localisation scenarios (Chaos Mesh-style faults and noop): inject -> the documented symptoms ->
recover -> a healthy app; and the AIOpsLab evaluators judge the expected answers."""

from __future__ import annotations

import pytest

from arena.scenarios import oracles
from arena.scenarios.engine import Engine, Registry

from .conftest import healthy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DETECTION = [
    "pod_failure_hotel_res-detection-1",
    "pod_kill_hotel_res-detection-1",
    "container_kill-detection",
    "network_loss_hotel_res-detection-1",
    "network_delay_hotel_res-detection-1",
    "noop_detection_hotel_reservation-1",
    "noop_detection_social_network-1",
]


@pytest.mark.parametrize("pid", DETECTION)
def test_detection_scenario(pid: str, engine: Engine, registry: Registry) -> None:
    scenario, task = registry.get(pid)
    assert task == "detection"
    healthy(engine, scenario.app)
    engine.inject(scenario)
    symptoms = engine.wait_symptoms(scenario, timeout=20)
    missing = [f"{r.check}: {r.detail}" for r in symptoms if not r.present]
    assert not missing, f"symptoms missing after injecting {pid}: {missing}"
    expected = "Yes" if scenario.ground_truth.detection else "No"
    assert oracles.evaluate_detection(scenario.ground_truth, f" {expected.lower()} ")
    assert not oracles.evaluate_detection(scenario.ground_truth, "Yes" if expected == "No" else "No")
    if scenario.ground_truth.localization:
        target = scenario.ground_truth.localization
        assert oracles.evaluate_localization(scenario.ground_truth, target) == (True, 100.0)
        assert oracles.evaluate_localization(scenario.ground_truth, [*target, "frontend"]) == (False, 50.0)
    engine.recover(scenario)
    healthy(engine, scenario.app)
