"""The chart's operators' controls: modes per scope (coordinator settings) and the approvals API's token."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.unit.test_chart import CHART, RELEASE, by_component, of_kind, permissions, render, sa


def env_of(docs: list[dict[str, object]], service: str) -> dict[str, dict[str, object]]:
    container = by_component(docs, "Deployment")[service]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {e["name"]: e for e in container["env"]}


def test_modes_reach_the_coordinator_only() -> None:
    docs = render({"modes": {"default": "shadow", "scopes": {"pay": "approve"}, "approvalTimeoutSeconds": 120}})
    env = env_of(docs, "coordinator")
    assert env["STRATUS_MODE"]["value"] == "shadow"
    assert env["STRATUS_MODES"]["value"] == '{"pay":"approve"}'
    assert env["STRATUS_APPROVAL_TIMEOUT_S"]["value"] == "120"
    assert "STRATUS_MODE" not in env_of(docs, "mitigator")
    assert env_of(render({}), "coordinator")["STRATUS_MODE"]["value"] == "auto"


def test_the_approvals_api_needs_a_token_on_purpose() -> None:
    assert "STRATUS_APPROVAL_TOKEN" not in env_of(render({}), "bridge")
    with pytest.raises(helm.HelmError, match=r"approvals\.token"):
        render({"approvals": {"enabled": True}})
    docs = render({"approvals": {"enabled": True, "token": "t-1"}})
    [secret] = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == f"{RELEASE}-stratus-approvals"]
    assert base64.b64decode(secret["data"]["token"]).decode() == "t-1"
    ref = env_of(docs, "bridge")["STRATUS_APPROVAL_TOKEN"]["valueFrom"]["secretKeyRef"]  # type: ignore[index]
    assert ref == {"name": f"{RELEASE}-stratus-approvals", "key": "token"}
    external = render({"approvals": {"enabled": True, "existingSecret": "mine"}})
    assert not [s for s in of_kind(external, "Secret") if s["metadata"]["name"].endswith("-approvals")]


def test_the_schema_knows_only_the_four_modes() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema({"modes": {"default": "approve", "scopes": {"ns": "observe"}}})
    for bad in (
        {"modes": {"default": "yolo"}},
        {"modes": {"scopes": {"ns": "manual"}}},
        {"modes": {"scopes": {"Bad_NS": "auto"}}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)


# --- least privilege, stability, availability, alerts -----------------------------------------------------------

ALL = yaml.safe_load((CHART / "ci" / "all-options-values.yaml").read_text())


def can(docs: list[dict[str, Any]], service: str, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    """What the API server's RBAC authoriser answers for the service's ServiceAccount (namespace None: a
    cluster-scoped object), from the rendered ClusterRoles and bindings."""
    grants = permissions(docs).get(sa(service), {})
    where = [grants.get(None, set())] + ([grants.get(namespace, set())] if namespace else [])
    return any((group, resource, verb) in g for g in where)


def test_rendering_twice_gives_identical_output() -> None:
    chart = helm.Chart.load(str(CHART))
    for values in ({"webhook": {"token": "t"}}, ALL):
        first = chart.render(values, name=RELEASE, namespace="stratus", is_install=True)
        second = helm.Chart.load(str(CHART)).render(values, name=RELEASE, namespace="stratus", is_install=True)
        assert first == second


def test_the_mitigator_cannot_touch_a_namespace_outside_its_scopes() -> None:
    docs = render({"scopes": ["shop", "quiet"], "modes": {"scopes": {"quiet": "observe"}}})
    for verb, group, resource in (
        ("patch", "apps", "deployments"),
        ("patch", "apps", "deployments/scale"),
        ("delete", "", "pods"),
        ("update", "", "configmaps"),
        ("create", "", "persistentvolumeclaims"),
    ):
        assert can(docs, "mitigator", verb, group, resource, "shop")
        for outside in ("elsewhere", "kube-system", "stratus"):
            assert not can(docs, "mitigator", verb, group, resource, outside), (verb, resource, outside)
        assert not can(docs, "mitigator", verb, group, resource, "quiet")  # observe: read only
    assert can(docs, "mitigator", "get", "apps", "deployments", "quiet")
    assert not can(docs, "mitigator", "get", "apps", "deployments", "elsewhere")
    assert not can(docs, "mitigator", "create", "", "pods/exec", "shop")  # exec only with rbac.podsExec
    assert not can(docs, "mitigator", "patch", "", "nodes", None)  # cluster writes only with rbac.clusterWrites
    assert not can(docs, "undoer", "delete", "", "persistentvolumes", None)
    opted_in = render({"scopes": ["shop"], "rbac": {"podsExec": True, "clusterWrites": True}})
    assert can(opted_in, "mitigator", "create", "", "pods/exec", "shop")
    assert not can(opted_in, "mitigator", "create", "", "pods/exec", "elsewhere")
    assert can(opted_in, "mitigator", "patch", "", "nodes", None)


def test_no_write_binding_when_every_scope_observes() -> None:
    docs = render({"modes": {"default": "observe"}})
    assert not can(docs, "mitigator", "patch", "apps", "deployments", "any")
    assert can(docs, "mitigator", "get", "apps", "deployments", "any")


def test_pods_restart_when_a_secret_the_chart_renders_changes() -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str | None]:
        deps = by_component(render(values), "Deployment")
        return {n: d["spec"]["template"]["metadata"]["annotations"].get("checksum/secrets") for n, d in deps.items()}

    one, two = checksums({"llm": {"apiKey": "k1"}}), checksums({"llm": {"apiKey": "k2"}})
    assert one["mitigator"] != two["mitigator"] and one["diagnoser"] != two["diagnoser"]
    assert one["bridge"] == two["bridge"] and one["coordinator"] is None
    assert checksums({"webhook": {"token": "a"}})["bridge"] != checksums({"webhook": {"token": "b"}})["bridge"]


def test_a_disruption_budget_per_service_and_optional_network_policies() -> None:
    docs = render({})
    pdbs = by_component(docs, "PodDisruptionBudget")
    assert set(pdbs) == set(by_component(docs, "Deployment"))
    for name, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name
    assert of_kind(docs, "NetworkPolicy") == []
    policies = by_component(render(ALL), "NetworkPolicy")
    bridge = policies["bridge"]["spec"]
    assert {p["port"] for rule in bridge["ingress"] for p in rule["ports"]} == {"metrics", "webhook"}
    assert {p["port"] for rule in policies["mitigator"]["spec"]["ingress"] for p in rule["ports"]} == {"metrics"}
    assert bridge["policyTypes"] == ["Ingress", "Egress"] and any(
        p["port"] == 53 for rule in bridge["egress"] for p in rule.get("ports", [])
    )


def test_the_schema_allows_only_replica_counts_the_services_support() -> None:
    chart = helm.Chart.load(str(CHART))
    for service in ("bridge", "detector", "coordinator", "diagnoser", "mitigator", "undoer"):
        chart.validate_schema({"services": {service: {"replicas": 3}}})
        with pytest.raises(helm.HelmError):
            chart.validate_schema({"services": {service: {"replicas": 0}}})
    with pytest.raises(helm.HelmError):
        chart.validate_schema({"services": {"coordinator": {"replicas": 2000}}})


def metric_names() -> set[str]:
    """Every series name Stratus exports (counters with _total, histograms with _bucket/_sum/_count)."""
    from prometheus_client import REGISTRY

    import stratus.metrics  # noqa: F401  (registers the metrics)

    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_the_alerts_and_the_dashboard_read_metrics_stratus_exports() -> None:
    [rule] = of_kind(render(ALL), "PrometheusRule")
    groups = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    own = groups["stratus.self"]
    assert {r["alert"] for r in own} == {
        "StratusIncidentStuck",
        "StratusDeadLetters",
        "StratusUndoDivergence",
        "StratusNoHeartbeat",
    }
    assert len([r for r in own if r["alert"] == "StratusNoHeartbeat"]) == 6
    assert "stratus.workload.capacity" in groups and "stratus.workload.slo" in groups
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [r["expr"] for r in own] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(stratus_[a-z_]+)\b", e)}
    missing = used - metric_names()
    assert not missing, f"alerts or panels read series Stratus does not export: {missing}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("incidents by state", "committed and aborted", "divergences", "lock wait", "handler latency", "llm"):
        assert topic in titles
    [cm] = of_kind(render(ALL), "ConfigMap")
    assert json.loads(cm["data"]["stratus.json"]) == dashboard and cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_notification_sinks_come_from_a_secret() -> None:
    docs = render(ALL)
    env = env_of(docs, "bridge")
    for var in ("STRATUS_NOTIFY_SLACK_URL", "STRATUS_NOTIFY_WEBHOOK_URL", "STRATUS_NOTIFY_WEBHOOK_TOKEN"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-stratus-notifications"  # type: ignore[index]
    assert json.loads(str(env["STRATUS_NOTIFY_EVENTS"]["value"])) == ALL["notifications"]["events"]
    assert "STRATUS_NOTIFY_SLACK_URL" not in env_of(render({}), "bridge")
    external = env_of(render({"notifications": {"existingSecret": "hooks"}}), "bridge")
    assert external["STRATUS_NOTIFY_SLACK_URL"]["valueFrom"]["secretKeyRef"] == {  # type: ignore[index]
        "name": "hooks",
        "key": "slack-url",
        "optional": True,
    }


def test_the_console_is_optional_tokened_and_has_no_api_access() -> None:
    assert "console" not in by_component(render({}), "Deployment")
    with pytest.raises(helm.HelmError, match=r"console\.token"):
        render({"console": {"enabled": True}})
    docs = render({"console": {"enabled": True, "token": "c"}})
    console = by_component(docs, "Deployment")["console"]["spec"]["template"]["spec"]
    assert console["automountServiceAccountToken"] is False
    assert sa("console") not in permissions(docs)
    env = {e["name"]: e for e in console["containers"][0]["env"]}
    assert env["STRATUS_CONSOLE_APPROVALS"]["value"] == "false"
    assert env["STRATUS_CONSOLE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-stratus-console"


def test_promtool_accepts_the_rendered_rules(tmp_path: Path) -> None:
    from stratus.promstack import binary

    promtool = binary("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    [rule] = of_kind(render(ALL), "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_embedding_settings_reach_the_detector_and_its_state_a_volume() -> None:
    from stratus.settings import DetectorSettings, DiagnoserSettings

    off = render({})
    assert not any(k.startswith("STRATUS_EMBEDDING") for k in env_of(off, "detector"))
    assert not of_kind(off, "PersistentVolumeClaim")
    values = {
        "observability": {"prometheusUrl": "http://prom:9090"},
        "embedding": {
            "enabled": True,
            "calibration": {
                "windows": 12,
                "warmupWindows": 3,
                "margin": 1.5,
                "persist": 4,
                "clear": 3,
                "clearRatio": 0.7,
            },
            "state": {"enabled": True, "create": True, "size": "32Mi"},
        },
    }
    docs = render(values)
    env = {k: str(e["value"]) for k, e in env_of(docs, "detector").items() if "value" in e}
    settings = DetectorSettings.model_validate(
        {k.removeprefix("STRATUS_").lower(): v for k, v in env.items() if k.startswith("STRATUS_EMBEDDING")}
    )
    assert settings.embedding_enabled and str(settings.embedding_prometheus_url).startswith("http://prom:9090")
    assert (settings.embedding_calibration, settings.embedding_calibration_margin) == (12, 1.5)
    assert settings.embedding_warmup_windows == 3
    assert (settings.embedding_persist, settings.embedding_clear, settings.embedding_clear_ratio) == (4, 3, 0.7)
    assert str(settings.embedding_state_file) == "/var/lib/stratus/embedding/calibrations.json"
    diagnoser = env_of(docs, "diagnoser")
    assert diagnoser["STRATUS_EMBEDDING_ENABLED"]["value"] == "true"
    assert "STRATUS_EMBEDDING_STATE_FILE" not in diagnoser and "STRATUS_EMBEDDING_CALIBRATION" not in diagnoser
    assert set(DiagnoserSettings.model_fields) >= {"embedding_enabled", "embedding_prometheus_url"}
    detector = by_component(docs, "Deployment")["detector"]
    spec = detector["spec"]["template"]["spec"]
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "embedding-state"]
    assert mount["mountPath"] == "/var/lib/stratus/embedding"
    [volume] = [v for v in spec["volumes"] if v["name"] == "embedding-state"]
    [claim] = of_kind(docs, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "32Mi"
    assert detector["spec"]["strategy"]["type"] == "Recreate"  # one ReadWriteOnce claim, one pod at a time
    assert by_component(docs, "Deployment")["coordinator"]["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not any(
        v["name"] == "embedding-state"
        for v in by_component(docs, "Deployment")["diagnoser"]["spec"]["template"]["spec"]["volumes"]
    )

    existing = render({"embedding": {"enabled": True, "state": {"enabled": True, "existingClaim": "mine"}}})
    assert not of_kind(existing, "PersistentVolumeClaim")
    [volume] = [
        v
        for v in by_component(existing, "Deployment")["detector"]["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "embedding-state"
    ]
    assert volume["persistentVolumeClaim"]["claimName"] == "mine"
    scratch = render({"embedding": {"enabled": True, "state": {"enabled": True}}})
    [volume] = [
        v
        for v in by_component(scratch, "Deployment")["detector"]["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "embedding-state"
    ]
    assert "emptyDir" in volume
    assert by_component(scratch, "Deployment")["detector"]["spec"]["strategy"]["type"] == "RollingUpdate"


def test_the_schema_bounds_the_embedding_settings() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema({"embedding": {"enabled": True, "calibration": {"windows": 4, "clearRatio": 1}}})
    for bad in (
        {"embedding": {"calibration": {"margin": 0.5}}},
        {"embedding": {"calibration": {"clearRatio": 0}}},
        {"embedding": {"calibration": {"windows": 0}}},
        {"embedding": {"calibration": {"persistt": 3}}},
        {"embedding": {"metricPreset": "nope"}},
        {"embedding": {"state": {"size": "lots"}}},
        {"embedding": {"state": {"existingClaim": "Not_A_Name"}}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)


# --- detection terms, incident memory and step checks -------------------------------------------------------------


def settings_of(docs: list[dict[str, Any]], service: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings as the service itself parses them from the rendered environment."""
    from stratus.settings import SETTINGS_BY_SERVICE

    with monkeypatch.context() as m:
        for name, e in env_of(docs, service).items():
            if name.startswith("STRATUS_") and "value" in e:
                m.setenv(name, str(e["value"]))
        return SETTINGS_BY_SERVICE[service]()


def test_detection_terms_reach_the_services_that_measure_mu(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(ALL)
    for service in ("detector", "coordinator", "mitigator"):
        s = settings_of(docs, service, monkeypatch)
        assert (s.mu_w_alerts, s.mu_w_violations, s.mu_w_unhealthy) == (2.0, 1.5, 1.0)
        assert s.slo_probes == {"shop": ["http://web.shop:8080/"]} and s.slo_max_latency_s == 1.5
        assert s.slo_queries == {"consumer-lag": 'min_over_time(kafka_consumergroup_lag{namespace="$scope"}[1m]) > 10'}
        assert s.stuck_deletion_s == 120
        assert s.latency_slo_enabled and s.latency_factor == 4 and s.latency_min_delta_s == 0.05
        assert (s.latency_window_s, s.latency_burst_s, s.latency_learn_interval_s) == (60, 5, 20)
        assert (s.latency_min_samples, s.latency_max_samples) == (5, 30)
    assert "STRATUS_SLO_QUERIES" not in env_of(docs, "diagnoser")
    # By default: the settings' own defaults, the latency term off and no queries or probes.
    default = settings_of(render({}), "detector", monkeypatch)
    assert default.stuck_deletion_s == 60 and not default.latency_slo_enabled
    assert default.slo_queries == {} and default.slo_probes == {}
    assert "STRATUS_LATENCY_FACTOR" not in env_of(render({}), "detector")


def test_memory_and_step_checks_can_each_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(ALL)
    for service in ("coordinator", "diagnoser", "mitigator"):
        s = settings_of(docs, service, monkeypatch)
        assert s.memory_enabled and (s.memory_k, s.memory_min_similarity, s.memory_propose_at) == (7, 0.4, 0.8)
        assert s.memory_max_entries == 300
    for service in ("diagnoser", "mitigator"):
        s = settings_of(docs, service, monkeypatch)
        assert s.step_check_enabled and s.step_check_threshold == 0.6
    off = render({**ALL, "memory": {"enabled": False}, "stepCheck": {"enabled": False}})
    for service in ("coordinator", "diagnoser", "mitigator"):
        assert not settings_of(off, service, monkeypatch).memory_enabled
    assert not settings_of(off, "mitigator", monkeypatch).step_check_enabled
    # Step checks need an LLM: without one the chart sets nothing (the rulebook has no steps to check).
    assert "STRATUS_STEP_CHECK_ENABLED" not in env_of(render({"stepCheck": {"enabled": True}}), "mitigator")


def test_the_schema_bounds_the_detection_terms() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema({"severity": {"sloQueries": {"lag": "up == 0"}, "latency": {"enabled": True}}})
    for bad in (
        {"severity": {"stuckDeletionSeconds": -1}},
        {"severity": {"latency": {"factor": 1}}},
        {"severity": {"sloQueries": {"q": "x" * 2001}}},
        {"severity": {"sloQueries": {f"q{i}": "up" for i in range(21)}}},
        {"severity": {"sloProbes": {"Bad_NS": ["http://x/"]}}},
        {"severity": {"sloProbes": {"shop": ["file:///etc/passwd"]}}},
        {"severity": {"weights": {"alerts": -1}}},
        {"memory": {"k": 0}},
        {"memory": {"proposeAt": 1.5}},
        {"stepCheck": {"threshold": 2}},
        {"stepCheck": {"enabeld": True}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)
