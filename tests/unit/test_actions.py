"""The typed action space: validation, scopes, write flags and the Action round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from stratus.actions import (
    ACTION_ADAPTER,
    ACTION_TYPES,
    READ_VERBS,
    WRITE_VERBS,
    Apply,
    Cordon,
    Create,
    Delete,
    Events,
    Exec,
    Get,
    ListObjects,
    Logs,
    Patch,
    Replace,
    RolloutRestart,
    RolloutUndo,
    Scale,
    SetEnv,
    SetImage,
    Uncordon,
    action_json_schemas,
    parse_action,
    resolve_kind,
)
from stratus.contracts import PlannedAction

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}
SC = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "p"}

EXAMPLES: list[Any] = [
    Get(kind="po", namespace="shop", name="web-0", output="yaml"),
    ListObjects(kind="pods", all_namespaces=True, label_selector="app=web"),
    Logs(namespace="shop", name="web-0", container="app", tail=20, previous=True),
    Events(namespace="shop", for_kind="pod", for_name="web-0"),
    Patch(kind="svc", namespace="shop", name="web", patch={"spec": {"type": "ClusterIP"}}),
    Patch(kind="deploy", namespace="shop", name="web", patch_type="json", patch=[{"op": "remove", "path": "/x"}]),
    Scale(kind="deploy", namespace="shop", name="web", replicas=0),
    SetImage(kind="deploy", namespace="shop", name="web", images={"app": "web:2"}),
    SetEnv(kind="sts", namespace="shop", name="db", env={"A": "1"}, unset=["B"]),
    RolloutRestart(kind="deploy", namespace="shop", name="web"),
    RolloutUndo(kind="deploy", namespace="shop", name="web", to_revision=2),
    Delete(kind="pod", namespace="shop", name="web-0"),
    Apply(manifest=DEPLOY, namespace="shop"),
    Create(manifest=SC),
    Replace(manifest={**DEPLOY, "metadata": {"name": "web", "namespace": "shop"}}),
    Cordon(name="node-1"),
    Uncordon(name="node-1"),
    Exec(
        namespace="shop",
        name="db-0",
        operation="mongodb.grant_roles",
        args={"db": "admin", "user": "app", "roles": [{"role": "readWrite", "db": "geo-db"}]},
    ),
]


@pytest.mark.parametrize("action", EXAMPLES, ids=lambda a: a.verb)
def test_the_wire_form_is_the_typed_action_and_legacy_records_still_read(action: Any) -> None:
    wire = json.loads(ACTION_ADAPTER.dump_json(action))
    assert "params" not in wire and wire["verb"] == action.verb  # flat, typed fields: no verb + params dict
    again = ACTION_ADAPTER.validate_json(json.dumps(wire))
    assert again == action and type(again) is type(action)
    legacy = {"verb": action.verb, "kind": action.kind, "namespace": action.namespace, "name": action.name}
    assert parse_action({**legacy, "params": action.params}) == action


def test_messages_validate_their_actions_fields() -> None:
    """A message carrying an action is refused when the action's own fields are invalid, on the wire."""
    scale = Scale(kind="Deployment", namespace="ns", name="web", replicas=1)
    planned = PlannedAction(action=scale, undo=[scale])
    data = json.loads(planned.model_dump_json())
    assert PlannedAction.model_validate(data) == planned
    for bad in (
        {**data["action"], "replicas": -1},
        {**data["action"], "replicas": "many"},
        {**data["action"], "verb": "scale", "kind": "ConfigMap"},
        {**data["action"], "name": "../kube-system"},
        {**data["action"], "command": ["sh", "-c", "true"]},
        {"verb": "exec", "kind": "Pod", "namespace": "ns", "name": "db-0", "params": {"command": ["sh"]}},
    ):
        with pytest.raises(ValidationError):
            PlannedAction.model_validate({**data, "action": bad})


def test_every_verb_is_read_or_write() -> None:
    assert set(ACTION_TYPES) == READ_VERBS | WRITE_VERBS
    assert not READ_VERBS & WRITE_VERBS
    assert {"get", "list", "describe", "logs", "events"} <= READ_VERBS
    assert {"patch", "scale", "set_image", "set_env", "rollout_restart", "rollout_undo", "delete"} <= WRITE_VERBS
    assert {"apply", "create", "cordon", "uncordon", "exec"} <= WRITE_VERBS
    assert all(a.is_write == (a.verb in WRITE_VERBS) for a in EXAMPLES)


def test_scopes() -> None:
    assert Scale(kind="deploy", namespace="shop", name="w", replicas=1).scope == "shop"
    assert Cordon(name="n").scope == "cluster"
    assert Create(manifest=SC).scope == "cluster"
    assert Delete(kind="pv", name="v").scope == "cluster"
    assert Delete(kind="sc", name="v", namespace="ignored").namespace is None
    assert Apply(manifest={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}).scope == "cluster"


ALIASES = {"po": "Pod", "svc": "Service", "deploy": "Deployment", "rs": "ReplicaSet", "ns": "Namespace", "no": "Node"}
ALIASES |= {"pv": "PersistentVolume", "pvc": "PersistentVolumeClaim", "cm": "ConfigMap", "sc": "StorageClass"}
ALIASES |= {"sts": "StatefulSet", "ep": "Endpoints"}


def test_kind_aliases() -> None:
    for alias, kind in ALIASES.items():
        assert resolve_kind(alias) == kind
    assert resolve_kind("deployments.apps") == "Deployment"
    with pytest.raises(ValueError, match="Unknown resource type 'widgets'"):
        resolve_kind("widgets")


def test_manifest_fills_kind_namespace_name() -> None:
    a = Apply(manifest=DEPLOY, namespace="shop")
    assert (a.kind, a.namespace, a.name) == ("Deployment", "shop", "web")
    assert a.manifest["metadata"]["namespace"] == "shop"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}}, "generateName"),
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, "no kind"),
        ({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "x"}}, "apiVersion apps/v1"),
    ],
)
def test_bad_manifests(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Create(manifest=manifest, namespace="shop")


def test_validation() -> None:
    with pytest.raises(ValidationError, match="namespaced"):
        Scale(kind="deploy", name="web", replicas=1)
    with pytest.raises(ValidationError, match="scale does not apply to Service"):
        Scale(kind="svc", namespace="s", name="web", replicas=1)
    with pytest.raises(ValidationError, match="list of operations"):
        Patch(kind="svc", namespace="s", name="w", patch_type="json", patch={"a": 1})
    with pytest.raises(ValidationError):
        Scale(kind="deploy", namespace="s", name="web", replicas=-1)
    with pytest.raises(ValidationError, match="at least one"):
        SetEnv(kind="deploy", namespace="s", name="web")
    with pytest.raises(ValidationError, match="cordon does not apply to Pod"):
        Cordon(kind="Pod", name="x")


def test_json_schemas_are_tool_schemas() -> None:
    schemas = action_json_schemas()
    assert set(schemas) == set(ACTION_TYPES)
    scale = schemas["scale"]
    assert scale["properties"]["replicas"]["description"]
    assert {"kind", "name", "replicas"} <= set(scale["required"]) | {"kind"}
