from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from arena.scenarios import oracles
from arena.scenarios import schema as s
from arena.scenarios.engine import CATALOGUE_DIR, Engine, Registry
from arena.scenarios.schema import FieldCheck, GroundTruth, ScenarioError, load_scenario, parse_scenario

VALID = yaml.safe_load((CATALOGUE_DIR / "k8s_target_port-misconfig-1.yaml").read_text())


def test_catalogue_has_every_aiopslab_mitigation_problem() -> None:
    ids = set(Registry().ids())
    for pid in [
        "k8s_target_port-misconfig-mitigation-1",
        "k8s_target_port-misconfig-mitigation-2",
        "k8s_target_port-misconfig-mitigation-3",
        "auth_miss_mongodb-mitigation-1",
        "revoke_auth_mongodb-mitigation-1",
        "revoke_auth_mongodb-mitigation-2",
        "user_unregistered_mongodb-mitigation-1",
        "user_unregistered_mongodb-mitigation-2",
        "misconfig_app_hotel_res-mitigation-1",
        "scale_pod_zero_social_net-mitigation-1",
        "assign_to_non_existent_node_social_net-mitigation-1",
        "redeploy_without_PV-mitigation-1",
        "wrong_bin_usage-mitigation-1",
        "container_kill-detection",
        "pod_failure_hotel_res-localization-1",
        "noop_detection_hotel_reservation-1",
        "noop_detection_social_network-1",
    ]:
        assert pid in ids
    assert "redeploy_without_PV-localization-1" not in ids  # AIOpsLab registers no L variant


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (
            lambda d: d.update(app="train-ticket"),
            "app",
            "Input should be 'hotel-reservation', 'social-network' or 'astronomy-shop'",
        ),
        (lambda d: d["inject"][0].update(action="explode"), "inject[0]", "does not match any of the expected tags"),
        (lambda d: d["inject"][0].update(patch_type="yaml"), "inject[0].patch.patch_type", "Input should be"),
        (lambda d: d["ground_truth"].update(fault_type="Gremlins"), "ground_truth.fault_type", "Input should be"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda d: d.pop("oracle"), "(root)", "a scenario with the mitigation task needs an oracle"),
        (lambda d: d["oracle"]["checks"][0].pop("equals"), "oracle.checks[0]", "give exactly one of equals"),
        (
            lambda d: d["symptoms"].append({"check": "workload", "min_error_ratio": 2}),
            "symptoms[5].workload.min_error_ratio",
            "less than or equal to 1",
        ),
    ],
)
def test_invalid_scenario_is_rejected_with_field_and_reason(mutate, field: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(yaml.safe_dump(VALID))
    mutate(data)
    with pytest.raises(ScenarioError) as e:
        parse_scenario(data, "bad.yaml")
    msg = str(e.value)
    assert msg.startswith("bad.yaml: invalid scenario: ")
    assert field in msg and reason in msg, msg


def test_bad_yaml_and_bad_chaos_name(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("family: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(p)
    data = yaml.safe_load((CATALOGUE_DIR / "pod_failure_hotel_res-1.yaml").read_text())
    data["inject"][0]["name"] = "Pod_Failure"
    with pytest.raises(ScenarioError, match=r"inject\[0\]\.chaos\.name: String should match pattern"):
        parse_scenario(data)


def test_field_paths_and_checks() -> None:
    svc = {"spec": {"ports": [{"targetPort": 9090}, {"targetPort": 9999}]}}
    assert oracles.values_at(svc, "spec.ports[*].targetPort") == [9090, 9999]
    assert oracles.values_at(svc, "spec.ports[0].targetPort") == [9090]
    assert oracles.values_at(svc, "spec.missing.x") == [None]
    check = FieldCheck(kind="Service", name="s", path="spec.ports[*].targetPort", equals=9090)
    assert "must be 9090" in (oracles.field_check(check, svc) or "")
    absent = FieldCheck(kind="Deployment", name="d", path="spec.template.spec.nodeSelector", absent=True)
    assert oracles.field_check(absent, {"spec": {"template": {"spec": {}}}}) is None
    nc = FieldCheck(kind="Deployment", name="d", path="spec.template.spec.containers[0].args", not_contains="x")
    assert oracles.field_check(nc, {"spec": {"template": {"spec": {"containers": [{}]}}}}) is None


def pod(name: str, statuses: list[dict] | None, phase: str = "Running") -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": name}, "status": {"phase": phase, "containerStatuses": statuses}}


def test_all_ready_quirks() -> None:
    ok = pod("a", [{"name": "c", "ready": True, "state": {"running": {}}}])
    pending = pod("b", None, "Pending")
    crash = pod("c", [{"name": "c", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    assert oracles.all_ready([ok, pending], guarded=True) == []  # AIOpsLab quirk (a): a Pending pod passes
    assert "TypeError" in oracles.all_ready([ok, pending], guarded=False)[0]  # quirk (b)
    assert "CrashLoopBackOff" in oracles.all_ready([crash], guarded=True)[0]
    assert oracles.every_pod_ready([ok, pending]) == ["pod b is Pending"]


def test_task_evaluators() -> None:
    truth = GroundTruth(
        detection=True,
        localization=["mongodb-geo"],
        localization_alternatives=[["geo"]],
        system_level="Application",
        fault_type="Authentication Issue",
    )
    assert oracles.evaluate_detection(truth, " YES ")
    assert oracles.evaluate_localization(truth, ["geo"]) == (True, 100.0)
    assert oracles.evaluate_localization(truth, ["mongodb-geo", "geo"]) == (False, 50.0)
    assert oracles.evaluate_localization(truth, ["search"]) == (False, 0.0)
    assert oracles.evaluate_analysis(truth, {"system_level": "application", "fault_type": "authentication issue"})
    assert not oracles.evaluate_analysis(truth, {"system_level": "Application", "fault_type": "Misconfiguration"})


def test_setup_runs_once_before_inject_and_prepare_skips_it_then() -> None:
    ran: list[str] = []

    class Recording(Engine):
        def bind(self, scenario: s.Scenario, fresh: bool = False) -> dict[str, str]:
            return {}

        def _step(self, app: object, step: object) -> None:
            ran.append(str(getattr(step, "seconds", "")))

    sc = s.Scenario.model_validate(
        {
            "family": "demo",
            "app": "hotel-reservation",
            "tasks": ["detection"],
            "description": "d",
            "ground_truth": {"detection": True},
            "setup": [{"action": "sleep", "seconds": 1}],
            "inject": [{"action": "sleep", "seconds": 2}],
        }
    )
    engine = Recording.__new__(Recording)
    engine.prepared = set()
    engine.inject(sc)
    assert ran == ["1.0", "2.0"]
    ran.clear()
    engine.prepare(sc)
    engine.inject(sc)
    assert ran == ["1.0", "2.0"]
    ran.clear()
    engine.inject(sc)
    assert ran == ["1.0", "2.0"], "prepared once: the next inject runs the setup again"


def test_env_by_name_and_an_upper_bound() -> None:
    dep = {
        "spec": {
            "template": {
                "spec": {"containers": [{"env": [{"name": "QPS", "value": "20"}, {"name": "CAP", "value": "9000"}]}]}
            }
        }
    }
    path = "spec.template.spec.containers[*].env[name={}].value"
    assert oracles.values_at(dep, path.format("QPS")) == ["20"]

    def bound(name: str, limit: float) -> str | None:
        check = FieldCheck(kind="Deployment", name="rate", path=path.format(name), at_most=limit)
        return oracles.field_check(check, dep)

    assert bound("QPS", 500) is None
    assert bound("CAP", 256) is not None and "at most 256" in (bound("CAP", 256) or "")
    assert bound("UNSET", 256) is None, "a missing value passes: the program's default applies"
    with pytest.raises(ValueError):
        FieldCheck(kind="Deployment", name="rate", path="a", at_most=1, equals=2)
