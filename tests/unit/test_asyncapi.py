"""The AsyncAPI document (``stratus asyncapi``): generated from the services' wiring, valid AsyncAPI 3.0 by
FastStream's own schema, listing every subject of the topology, with every message and field described."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

from services.asyncapi import document
from stratus import contracts as c


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def addresses(doc: dict[str, Any]) -> set[str]:
    return {ch["address"] for ch in doc["channels"].values()}


def test_the_document_validates_against_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] == "Stratus"
    ApplicationSchema.model_validate(doc)  # FastStream's own model of the specification
    for ch in doc["channels"].values():
        for ref in ch["messages"].values():
            name = ref["$ref"].rsplit("/", 1)[1].replace("%3E", ">").replace("%7B", "{").replace("%7D", "}")
            assert name in doc["components"]["messages"], ref


def test_every_subject_of_the_topology_is_listed(doc: dict[str, Any]) -> None:
    t = c.DEFAULT_TOPOLOGY
    have = addresses(doc)
    wanted = {t.all_alerts, t.alerts("{scope}").replace("_scope_", "{scope}")}
    wanted |= {t.work(agent) for agent in c.AGENTS}
    wanted |= {t.partition_events(p) for p in range(t.partitions)}
    wanted |= {t.health(s) for s in c.SERVICES} | {t.deadletter(s) for s in c.SERVICES}
    wanted |= {f"{t.prefix}.journal.{{tx_id}}"}
    kinds = [m.model_fields["kind"].default for m in typing.get_args(typing.get_args(c.Event)[0])]
    wanted |= {f"{t.prefix}.events.{{partition}}.{{incident_id}}.{kind}" for kind in kinds if kind != "work_failed"}
    wanted |= {f"{t.prefix}.events.{{partition}}.{{incident_id}}.work_failed"}
    assert wanted <= have, sorted(wanted - have)


def test_every_message_and_field_carries_a_description(doc: dict[str, Any]) -> None:
    missing = []
    for name, schema in doc["components"]["schemas"].items():
        if ":" in name:  # FastStream's wrapper of a handler's body (a union of the models below)
            continue
        if schema.get("type") == "object" and not schema.get("description"):
            missing.append(name)
        for field, spec in (schema.get("properties") or {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{field}")
    assert not missing, missing
    for ch in doc["channels"].values():
        assert ch.get("description"), ch["address"]


def test_the_document_linked_from_the_readme_is_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import yaml

    for name in [n for n in os.environ if n.startswith("STRATUS_")]:  # the default settings, whatever is set here
        monkeypatch.delenv(name)
    committed = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
    assert yaml.safe_load(committed.read_text()) == document(), (
        "docs/asyncapi.yaml is stale: regenerate it with `env -u STRATUS_NATS_URL stratus asyncapi --yaml --out "
        "docs/asyncapi.yaml` (a contract or a service's wiring changed)"
    )


def test_the_cli_writes_it_and_honours_the_topology_settings(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"
    env = {"STRATUS_SUBJECT_PREFIX": "blue", "STRATUS_PARTITIONS": "2", "PATH": str(Path(sys.executable).parent)}
    run = subprocess.run(
        [sys.executable, "-m", "stratus.cli", "asyncapi", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    written = json.loads(out.read_text())
    have = addresses(written)
    assert {"blue.events.0.>", "blue.events.1.>", "blue.work.mitigator", "blue.health.bridge"} <= have
    assert not any(a.startswith("stratus.") for a in have)
