"""docker-compose.yml: every Stratus service is there, runs its own module, and gets only real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.contracts import SERVICES
from stratus.settings import SETTINGS_BY_SERVICE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # PyYAML resolves the `<<` merges like Compose
STRATUS = {name: svc for name, svc in COMPOSE["services"].items() if svc.get("build") == "."}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}")


def setting_names(service: str) -> set[str]:
    return {f"STRATUS_{field.upper()}" for field in SETTINGS_BY_SERVICE[service].model_fields}


def env_of(svc: dict[str, Any]) -> dict[str, Any]:
    env = svc.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment"
    return env


def test_every_stratus_service_is_composed_from_the_one_image() -> None:
    assert set(STRATUS) == set(SERVICES)
    assert len({svc["image"] for svc in STRATUS.values()}) == 1
    assert (ROOT / "Dockerfile").exists()


@pytest.mark.parametrize("service", SERVICES)
def test_command_runs_the_service_module(service: str) -> None:
    assert STRATUS[service]["command"] == ["python", "-m", f"services.{service}"]
    assert (ROOT / "services" / service / "__main__.py").exists()


@pytest.mark.parametrize("service", SERVICES)
def test_environment_holds_only_settings_of_that_service(service: str) -> None:
    env = env_of(STRATUS[service])
    unknown = set(env) - setting_names(service)
    assert not unknown, f"{service}: {sorted(unknown)} are not settings of {SETTINGS_BY_SERVICE[service].__name__}"
    assert {"STRATUS_NATS_URL", "STRATUS_METRICS_PORT"} <= set(env)
    for name, value in env.items():
        for var, _, _ in INTERPOLATION.findall(str(value or "")):
            assert var == name, f"{service}: {name} is read from ${{{var}}}; pass settings through under their own name"


def test_required_settings_fail_fast_when_missing() -> None:
    token = env_of(STRATUS["bridge"])["STRATUS_WEBHOOK_TOKEN"]
    m = INTERPOLATION.fullmatch(token)
    assert m is not None and m.group(2) == ":?" and m.group(3), (
        "the webhook token must be ${STRATUS_WEBHOOK_TOKEN:?...}"
    )


def test_optional_settings_are_passed_through_not_defaulted_to_empty() -> None:
    # An empty string is not "unset": STRATUS_LLM_BASE_URL="" fails URL validation. Optional ones carry no value.
    for service, svc in STRATUS.items():
        for name, value in env_of(svc).items():
            assert value is None or str(value).strip() != "", f"{service}: {name} is set to an empty string"
            assert not re.search(r"\$\{\w+:-\}", str(value or "")), f"{service}: {name} defaults to empty"


def test_only_the_services_that_touch_the_cluster_get_a_kubeconfig() -> None:
    for service, svc in STRATUS.items():
        mounted = any(".kube" in str(v) for v in svc.get("volumes") or [])
        assert mounted == (service != "bridge"), service
        assert ("STRATUS_KUBECONFIG" in env_of(svc)) == mounted


def test_dependencies_wait_for_health() -> None:
    for name, svc in COMPOSE["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
            assert COMPOSE["services"][dep].get("healthcheck"), f"{dep} has no healthcheck"
    for service, svc in STRATUS.items():
        needs = {"nats"} if service == "bridge" else {"nats", "redis"}
        assert set(svc["depends_on"]) == needs, service
        assert svc["healthcheck"]["test"], service


def test_infrastructure() -> None:
    nats = COMPOSE["services"]["nats"]
    assert "--jetstream" in nats["command"] and "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
    urls = {env_of(svc)["STRATUS_NATS_URL"] for svc in STRATUS.values()}
    assert urls == {"nats://nats:4222"}
    assert {env_of(svc).get("STRATUS_REDIS_URL") for n, svc in STRATUS.items() if n != "bridge"} == {
        "redis://redis:6379/0"
    }


def test_prometheus_and_alertmanager_are_an_optional_profile_wired_to_the_bridge() -> None:
    prom, am = COMPOSE["services"]["prometheus"], COMPOSE["services"]["alertmanager"]
    assert prom["profiles"] == am["profiles"] == ["observability"]
    for svc in (prom, am):
        for volume in svc["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    entry = " ".join(am["entrypoint"])
    assert "--cluster.listen-address=" in entry
    am_config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alertmanager.yml").read_text())
    [hook] = am_config["receivers"][0]["webhook_configs"]
    bridge_port = env_of(STRATUS["bridge"])["STRATUS_PORT"]
    assert hook["url"] == f"http://bridge:{bridge_port}/webhook" and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["credentials_file"] in entry
    assert f"{bridge_port}:{bridge_port}" in STRATUS["bridge"]["ports"]

    prom_config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom_config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    metrics_ports = {str(env_of(svc)["STRATUS_METRICS_PORT"]) for svc in STRATUS.values()}
    assert metrics_ports == {"9100"}
    assert {f"{s}:9100" for s in SERVICES} <= targets


def test_dockerfile_exposes_the_ports_compose_uses() -> None:
    text = (ROOT / "Dockerfile").read_text()
    exposed = set(re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    assert {"9100", str(env_of(STRATUS["bridge"])["STRATUS_PORT"])} <= exposed
    assert re.search(r"^USER 10001", text, re.M), "the image runs as an unprivileged user"
