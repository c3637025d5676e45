"""Scenario files as CLI targets, inject-time choices (``select``), and the bench's scripted plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from arena.apps import APPS
from arena.bench.cli import app as bench_app
from arena.bench.runner import scripted_plan
from arena.cli_apps import app
from arena.scenarios import schema as s
from arena.scenarios.engine import CATALOGUE_DIR, Registry, _substitute
from stratus.actions import Exec
from stratus.reasoners.scripted import ScriptedPlan

runner = CliRunner()


def _scenario(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "family": "node_pin",
        "number": 1,
        "app": "hotel-reservation",
        "tasks": ["mitigation"],
        "description": "geo pinned away from its node",
        "capabilities": ["scheduler"],
        "ground_truth": {"detection": True},
        "select": [{"name": "geo_node", "node_of": {"io.kompose.service": "geo"}}],
        "inject": [
            {
                "action": "patch",
                "kind": "Node",
                "name": "${geo_node}",
                "patch": {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}},
            }
        ],
        "mitigation": [
            {"action": "patch", "kind": "Node", "name": "${geo_node}", "patch_type": "merge", "patch": {"spec": {}}},
            {"action": "delete", "kind": "ConfigMap", "name": "stray"},
            {
                "action": "apply",
                "manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}},
            },
            {"action": "restore", "kind": "Service", "name": "geo"},
            {
                "action": "replace",
                "kind": "Deployment",
                "name": "geo",
                "json_patch": [{"op": "remove", "path": "/spec/template/spec/nodeSelector"}],
            },
        ],
        "oracle": {"all_ready": "none"},
    }
    base.update(extra)
    return base


def test_substitute_replaces_placeholders_in_strings_and_keys() -> None:
    out = _substitute({"name": "${n}", "${n}": ["a-${n}", 3, "${unknown}"]}, {"n": "node-1"})
    assert out == {"name": "node-1", "node-1": ["a-node-1", 3, "${unknown}"]}


def test_binding_needs_exactly_one_source() -> None:
    with pytest.raises(s.ScenarioError, match="exactly one of node_of, pod_of, other_node_than"):
        s.parse_scenario(_scenario(select=[{"name": "x", "node_of": {"a": "b"}, "pod_of": {"a": "b"}}]))


def test_scripted_plan_carries_every_write_kind_and_a_second_attempt() -> None:
    sc = s.parse_scenario(_scenario())
    plan = scripted_plan(sc, APPS["hotel-reservation"])
    attempts = plan["attempts"]
    assert len(attempts) == 2 and attempts[0] == attempts[1], "the fix is retried under the widened lease"
    steps = attempts[0]
    assert steps[0].startswith("kubectl patch node ${geo_node} --type=merge")  # cluster kinds take no -n
    assert steps[1] == {"verb": "delete", "kind": "ConfigMap", "namespace": "test-hotel-reservation", "name": "stray"}
    assert steps[2]["verb"] == "apply" and steps[2]["params"]["manifest"]["metadata"]["namespace"] == (
        "test-hotel-reservation"
    )
    assert steps[3]["verb"] == "replace" and steps[3]["params"]["manifest"]["kind"] == "Service"
    assert steps[4].startswith("kubectl -n test-hotel-reservation patch deployment geo --type=json")
    parsed = ScriptedPlan.model_validate(yaml.safe_load(yaml.safe_dump(plan)))
    assert len(parsed.attempts[0]) == 5


def test_cli_takes_a_scenario_file_or_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.yaml").write_text(yaml.safe_dump(_scenario()))
    (folder / "b.yaml").write_text(yaml.safe_dump(_scenario(family="other")))
    reg = Registry([folder])
    assert sorted(pid for _, pid in reg.scenarios()) == ["node_pin-mitigation-1", "other-mitigation-1"]
    assert Registry([folder / "a.yaml"]).ids() == ["node_pin-mitigation-1"]
    # no arena: the command gets as far as the kubeconfig, so the file was accepted
    out = runner.invoke(app, ["inject", str(folder / "a.yaml"), "--kubeconfig", str(tmp_path / "none")])
    assert out.exit_code == 2 and "no kubeconfig" in out.output
    missing = runner.invoke(app, ["inject", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no scenario file or folder" in missing.output
    (folder / "c.yaml").write_text("family: [")
    bad = runner.invoke(app, ["recover", str(folder)])
    assert bad.exit_code == 2 and "not valid YAML" in bad.output


def test_scenarios_lists_app_and_capabilities() -> None:
    out = runner.invoke(app, ["scenarios", "--task", "mitigation"])
    assert out.exit_code == 0
    for line in out.output.strip().splitlines():
        _pid, app_name = line.split()[:2]
        assert app_name in APPS, line
    reg = Registry([CATALOGUE_DIR])
    tagged = [sc for sc, _ in reg.scenarios() if sc.capabilities]
    assert tagged, "the catalogue's scenarios name their capabilities"
    cap = tagged[0].capabilities[0]
    only = runner.invoke(app, ["scenarios", "--capability", cap])
    assert only.exit_code == 0 and only.output.strip() and all(cap in line for line in only.output.splitlines())


def test_scripted_plan_carries_exec_as_its_catalogue_operation_once_pods_are_known() -> None:
    sc, _ = Registry([CATALOGUE_DIR]).get("revoke_auth_mongodb-mitigation-1")
    assert scripted_plan(sc, APPS["hotel-reservation"])["attempts"][0] == [], "pod steps wait for the pods"
    pods = {"mongodb-geo": ["mongodb-geo-1", "mongodb-geo-2"], "geo": ["geo-a", "geo-b"]}
    plan = scripted_plan(sc, APPS["hotel-reservation"], pods_of=lambda sel: pods[next(iter(sel.values()))])
    exe, *deletes = plan["attempts"][0]
    assert exe == {
        "verb": "exec",
        "kind": "Pod",
        "namespace": "test-hotel-reservation",
        "name": "mongodb-geo-1",
        "operation": "mongodb.grant_roles",
        "args": {"db": "admin", "user": "admin", "roles": [{"role": "readWrite", "db": "geo-db"}]},
    }
    assert [d["name"] for d in deletes] == ["geo-a", "geo-b"] and all(d["verb"] == "delete" for d in deletes)
    assert plan["attempts"][1] == plan["attempts"][0], "retried under the widened lease"
    parsed = ScriptedPlan.model_validate(yaml.safe_load(yaml.safe_dump(plan)))
    assert isinstance(parsed.attempts[0][0], Exec) and parsed.attempts[0][0].operation == "mongodb.grant_roles"


def test_scripted_plan_never_carries_an_exec_step_without_its_operation() -> None:
    argv = {"action": "exec", "selector": {"app": "db"}, "command": ["mongo", "--eval", "db.dropDatabase()"]}
    sc = s.parse_scenario(_scenario(mitigation=[argv, {"action": "delete_pods", "selector": {"app": "web"}}]))
    plan = scripted_plan(sc, APPS["hotel-reservation"], pods_of=lambda sel: ["p-1"])
    delete = {"verb": "delete", "kind": "Pod", "namespace": "test-hotel-reservation", "name": "p-1"}
    assert plan["attempts"][0] == [delete]


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        ({"operation": "shell", "args": {}}, "not one"),
        ({"operation": "mongodb.grant_roles", "args": {"db": "admin", "user": "a;b", "roles": []}}, "refused"),
        ({"operation": "mongodb.drop_user", "args": {"db": "admin", "user": "admin"}}, "never runs forward"),
    ],
)
def test_exec_step_operation_is_checked_against_the_catalogue(op: dict[str, Any], reason: str) -> None:
    step = {"action": "exec", "selector": {"app": "db"}, "command": ["true"], "op": op}
    with pytest.raises(s.ScenarioError, match=reason):
        s.parse_scenario(_scenario(mitigation=[step]))


def test_catalogue_exec_fixes_on_databases_name_their_operation() -> None:
    """Every documented fix that execs a database shell says which catalogue operation it is, so the scripted plan
    carries it through the product's write path."""
    for sc, pid in Registry([CATALOGUE_DIR]).scenarios():
        for step in sc.mitigation:
            if isinstance(step, s.ExecStep) and step.command[0] in ("mongo", "mongosh"):
                assert step.op is not None, pid


def test_jobs_refuse_the_chaos_suite(tmp_path: Path) -> None:
    from arena.bench.runner import Bench, BenchOptions

    with pytest.raises(ValueError, match="jobs 1"):
        Bench(BenchOptions(suite="chaos", policies=["chaos"], jobs=2, out=tmp_path)).run()
    out = runner.invoke(bench_app, ["--suite", "chaos", "--jobs", "2", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "--jobs 1" in out.output
