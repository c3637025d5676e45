"""charts/stratus: lint and render with the Helm SDK for every values file in charts/stratus/ci, validate the output
against the Kubernetes schemas (kubernetes-validate, strict), and check that the RBAC is least-privilege."""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from stratus.contracts import SERVICES
from stratus.settings import SETTINGS_BY_SERVICE

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stratus"
VALUES_FILES = sorted((CHART / "ci").glob("*.yaml"))
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "rel", "stratus"

READ_VERBS = {"get", "list", "watch"}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate"}


def values_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _render(text: str) -> tuple[tuple[str, str], ...]:
    chart = helm.Chart.load(str(CHART))
    out = chart.render(yaml.safe_load(text) or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(sorted(out.items()))


@cache
def _docs(text: str) -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path, manifest in _render(text):
        if not path.endswith("NOTES.txt"):
            docs += [d for d in yaml.load_all(manifest, Loader=_LOADER) if d]
    return tuple(docs)


REQUIRED: dict[str, Any] = {"webhook": {"token": "not-a-real-token"}}
"""The one value the chart requires (or webhook.existingSecret), added by ``render`` when a test gives no webhook."""


def with_required(values: dict[str, Any]) -> dict[str, Any]:
    return values if "webhook" in values else {**REQUIRED, **values}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The rendered objects (shared between tests: do not mutate)."""
    return list(_docs(yaml.safe_dump(with_required(values))))


def notes(values: dict[str, Any]) -> str:
    return dict(_render(yaml.safe_dump(with_required(values))))["stratus/templates/NOTES.txt"]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_component(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(docs, kind)}


ids = [p.stem for p in VALUES_FILES]


def test_there_are_several_values_files() -> None:
    assert {"default-values", "scoped-values", "minimal-values"} <= set(ids)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=ids)
def test_chart_lints_strictly(values_file: Path) -> None:
    report = helm.lint(str(CHART), values_of(values_file), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=ids)
def test_rendered_manifests_validate_against_kubernetes_schemas(values_file: Path) -> None:
    docs = render(values_of(values_file))
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            with pytest.raises(SchemaNotFoundError):  # a CRD: no schema ships with kubernetes-validate
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["spec"]
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        if doc["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert doc["metadata"].get("namespace"), f"{doc['kind']} {doc['metadata']['name']} has no namespace"
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects with the same kind and name"


def test_values_schema_rejects_bad_values() -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema({})
    for bad in (
        {"services": {"bridge": {"access": "admin"}}},
        {"services": {"bridge": {"replicaz": 2}}},  # a typo is an error, not silently ignored
        {"services": {"mitigator": {"autoscaling": {"enabled": True, "minReplicas": 0}}}},
        {"scopes": ["Not_A_Namespace"]},
        {"nats": {"url": "http://nats:4222"}},
        {"metricsPort": 80},
        {"unknownTopLevel": True},
        {"bus": {"partitions": 0}},
        {"bus": {"subjectPrefix": "has.dots"}},
        {"services": {"coordinator": {"replicas": 2000}}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(bad)


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^( {0,4})([A-Za-z][A-Za-z0-9]*):")
    for i, line in enumerate(lines):
        m = key.match(line)
        if m is None:
            continue
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#"), f"values.yaml:{i + 1}: `{line.strip()}` has no comment above it"


def test_the_workload_examples_use_real_exporters_only() -> None:
    text = (CHART / "files" / "workload-rules.yml").read_text()
    assert "arena_" not in text and "kube_" in text and "probe_success" in text


# --- the workloads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=ids)
def test_one_deployment_per_enabled_service_running_that_service(values_file: Path) -> None:
    values = values_of(values_file)
    docs = render(values)
    deployments = by_component(docs, "Deployment")
    enabled = {s for s in SERVICES if (values.get("services", {}).get(s) or {}).get("enabled", True)}
    if (values.get("console") or {}).get("enabled"):  # the optional web console, outside services.*
        assert deployments.pop("console")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert set(deployments) == enabled
    defaults = values_of(CHART / "values.yaml")["services"]
    hpas = by_component(docs, "HorizontalPodAutoscaler")
    for name, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert (ROOT / "services" / name / "__main__.py").exists()
        assert container["livenessProbe"] and container["readinessProbe"] and container["resources"]["limits"]
        ports = {p["name"] for p in container["ports"]}
        for probe in (container["livenessProbe"], container["readinessProbe"]):
            assert probe["httpGet"]["port"] in ports
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        own = {**defaults[name], **(values.get("services", {}).get(name) or {})}
        if own.get("autoscaling", {}).get("enabled"):
            assert "replicas" not in dep["spec"]
            assert hpas[name]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        else:
            assert dep["spec"]["replicas"] == own["replicas"] and name not in hpas


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=ids)
def test_environment_names_are_settings_of_that_service(values_file: Path) -> None:
    for name, dep in by_component(render(values_of(values_file)), "Deployment").items():
        fields = SETTINGS_BY_SERVICE[name].model_fields
        allowed = {f"STRATUS_{f.upper()}" for f in fields}
        env = [e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]]
        assert len(env) == len(set(env)), f"{name}: duplicate environment variables {env}"
        unknown = {e for e in env if e.startswith("STRATUS_")} - allowed
        assert not unknown, f"{name}: {unknown} are not settings of {SETTINGS_BY_SERVICE[name].__name__}"
        assert {"STRATUS_NATS_URL", "STRATUS_METRICS_PORT"} <= set(env)


def test_secrets_for_the_webhook_token_and_llm_key() -> None:
    docs = render({"webhook": {"token": "tok-123"}, "llm": {"apiKey": "sk-abc"}})
    secrets = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
    assert base64.b64decode(secrets[f"{RELEASE}-stratus-webhook"]["data"]["token"]).decode() == "tok-123"
    assert base64.b64decode(secrets[f"{RELEASE}-stratus-llm"]["data"]["api-key"]).decode() == "sk-abc"
    bridge = by_component(docs, "Deployment")["bridge"]["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in bridge["env"] if e["name"] == "STRATUS_WEBHOOK_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": f"{RELEASE}-stratus-webhook", "key": "token"}
    assert all("value" not in e for e in bridge["env"] if e["name"] in {"STRATUS_WEBHOOK_TOKEN"})

    with pytest.raises(helm.HelmError, match=r"webhook\.token or webhook\.existingSecret is required"):
        list(_docs(yaml.safe_dump({})))  # no generated token: an offline render must be stable
    assert not [s for s in of_kind(render({}), "Secret") if s["metadata"]["name"].endswith("-llm")]

    external = render({"webhook": {"existingSecret": "mine"}, "llm": {"existingSecret": "llm", "baseUrl": "http://x"}})
    assert of_kind(external, "Secret") == []
    env = {
        e["name"]: e
        for e in by_component(external, "Deployment")["mitigator"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["STRATUS_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llm"


def test_service_monitor_selects_the_metrics_services() -> None:
    docs = render({"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}})
    [monitor] = of_kind(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = of_kind(docs, "Service")
    assert len(services) == len(SERVICES)
    for svc in services:
        assert selector.items() <= svc["metadata"]["labels"].items()
        assert "metrics" in {p["name"] for p in svc["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    [rule] = of_kind(docs, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["stratus.self"]


def test_notes_tell_how_to_connect_alertmanager() -> None:
    text = notes({})
    assert f"http://{RELEASE}-stratus-bridge.{NAMESPACE}.svc:9095/webhook" in text
    assert "get secret rel-stratus-webhook" in text


# --- RBAC ------------------------------------------------------------------------------------------------------


def permissions(docs: list[dict[str, Any]]) -> dict[str, dict[str | None, set[tuple[str, str, str]]]]:
    """ServiceAccount -> namespace of the grant (None: cluster-wide) -> {(apiGroup, resource, verb)}."""
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "ClusterRole")}
    grants: dict[str, dict[str | None, set[tuple[str, str, str]]]] = defaultdict(lambda: defaultdict(set))
    for binding in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "ClusterRole"
        role = roles[binding["roleRef"]["name"]]
        where = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == NAMESPACE
            for rule in role["rules"]:
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule
                for group in rule["apiGroups"]:
                    for res in rule["resources"]:
                        for verb in rule["verbs"]:
                            grants[subject["name"]][where].add((group, res, verb))
    return grants


def sa(service: str) -> str:
    return f"{RELEASE}-stratus-{service}"


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=ids)
def test_rbac_is_least_privilege(values_file: Path) -> None:
    values = values_of(values_file)
    docs = render(values)
    grants = permissions(docs)
    accounts = {a["metadata"]["name"]: a for a in of_kind(docs, "ServiceAccount")}
    deployments = by_component(docs, "Deployment")
    secrets_allowed = bool(values.get("rbac", {}).get("secrets"))

    # Nothing anywhere: wildcards, privilege escalation, RBAC objects, namespaces writes.
    for rules in (r["rules"] for r in of_kind(docs, "ClusterRole")):
        for rule in rules:
            assert not DANGEROUS_VERBS & set(rule["verbs"]), rule
            assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"], rule
    for service in deployments:
        everything = {g for where in grants.get(sa(service), {}).values() for g in where}
        assert not {g for g in everything if g[1] == "namespaces" and g[2] not in READ_VERBS}
        if not secrets_allowed:
            assert not {g for g in everything if g[1] == "secrets"}, f"{service} may touch Secrets"

    # The bridge: no RBAC and no token.
    if "bridge" in deployments:
        assert sa("bridge") not in grants
        assert accounts[sa("bridge")]["automountServiceAccountToken"] is False
        assert deployments["bridge"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False

    # Readers: read verbs only, pods/log included.
    for service in ("detector", "coordinator", "diagnoser"):
        if service not in deployments:
            continue
        everything = {g for where in grants[sa(service)].values() for g in where}
        assert {verb for _, _, verb in everything} <= READ_VERBS, service
        assert ("", "pods/log", "get") in everything and ("apps", "deployments", "list") in everything
        assert accounts[sa(service)]["automountServiceAccountToken"] is True

    # Writers: what mitigations and undos need, no more; exec and cluster-scoped writes only when enabled.
    rbac = values.get("rbac", {})
    optional = {
        ("", "pods/exec", "create"): bool(rbac.get("podsExec")),
        ("", "persistentvolumes", "delete"): bool(rbac.get("clusterWrites")),
        ("", "nodes", "patch"): bool(rbac.get("clusterWrites")),
    }
    for service in ("mitigator", "undoer"):
        if service not in deployments:
            continue
        everything = {g for where in grants[sa(service)].values() for g in where}
        for need in (
            ("apps", "deployments", "patch"),
            ("apps", "deployments/scale", "patch"),
            ("", "pods", "delete"),
            ("", "configmaps", "update"),
            ("", "services", "patch"),
            ("", "persistentvolumeclaims", "create"),
        ):
            assert need in everything, f"{service} lacks {need}"
        for grant, enabled in optional.items():
            assert (grant in everything) == enabled, f"{service}: {grant} granted={grant in everything}"
        assert ("", "nodes", "delete") not in everything

    # With scopes, namespaced permissions are granted only in those namespaces.
    scopes = values.get("scopes") or []
    for service, where in grants.items():
        namespaced = {ns for ns in where if ns is not None}
        if scopes:
            assert namespaced == set(scopes), service
            cluster_wide = {res for _, res, _ in where.get(None, set())}
            assert cluster_wide <= {"nodes", "persistentvolumes", "namespaces", "storageclasses"}, (
                service,
                cluster_wide,
            )
        else:
            assert namespaced == set()


def test_coordinator_replicas_are_partitioned_and_bounded_by_the_partitions() -> None:
    objects = render({"bus": {"partitions": 4}, "services": {"coordinator": {"replicas": 4}}})
    coordinator = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("coordinator")
    )
    assert coordinator["spec"]["replicas"] == 4
    env = {e["name"]: e.get("value") for e in coordinator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STRATUS_PARTITIONS"] == "4" and env["STRATUS_SUBJECT_PREFIX"] == "stratus"
    for too_many in (
        {"bus": {"partitions": 4}, "services": {"coordinator": {"replicas": 5}}},
        {"bus": {"partitions": 4}, "services": {"coordinator": {"autoscaling": {"enabled": True, "maxReplicas": 8}}}},
    ):
        with pytest.raises(helm.HelmError, match=r"bus\.partitions"):
            render(too_many)


def test_the_write_policy_reaches_the_mitigator_and_parses() -> None:
    from stratus.writepolicy import WritePolicy

    values = values_of(CHART / "ci" / "scoped-values.yaml")
    envs = {
        d["metadata"]["name"]: {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for d in render(values)
        if d.get("kind") == "Deployment"
    }
    texts = [env["STRATUS_WRITE_POLICY"] for env in envs.values() if "STRATUS_WRITE_POLICY" in env]
    assert len(texts) == 1, "only the mitigator gets the write policy"
    policy = WritePolicy.parse(texts[0])
    assert policy.scopes["*"].max_replicas == 20 and policy.scopes["*"].allowed_registries == ["ghcr.io/acme"]
    assert not any(
        "STRATUS_WRITE_POLICY" in env
        for env in (
            {e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            for d in render(values_of(CHART / "ci" / "default-values.yaml"))
            if d.get("kind") == "Deployment"
        )
    )
