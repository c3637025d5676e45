"""Strategic merge patch directives as kubectl generates them, and selector parsing (pure functions, no server)."""

from __future__ import annotations

import pytest

from arena.errors import ApiError
from arena.patch import JsonPatchError, json_patch, merge_patch, strategic_merge
from arena.selectors import match_labels, parse_fields, parse_labels

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "a:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}],
            },
            {"name": "side", "image": "s:1"},
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
    },
}


def test_strategic_merge_directives() -> None:
    out = strategic_merge(
        POD,
        {
            "metadata": {"labels": {"b": None}, "finalizers": ["y"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                "containers": [
                    {"name": "app", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]},
                    {"name": "new", "image": "n:1"},
                ],
                "tolerations": [{"key": "t", "operator": "Equal", "value": "v"}],
            },
        },
    )
    assert out["metadata"]["labels"] == {"a": "1"}
    assert out["metadata"]["finalizers"] == ["x", "y"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "app", "new"]
    app = out["spec"]["containers"][1]
    assert [e["name"] for e in app["env"]] == ["B", "C"] and app["image"] == "a:1"
    assert out["spec"]["tolerations"] == [{"key": "t", "operator": "Equal", "value": "v"}]  # no merge key: replaced
    assert POD["spec"]["containers"][0]["env"][0]["name"] == "A"  # the original is untouched


def test_strategic_merge_replace_retain_keys_and_ports() -> None:
    dep = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = strategic_merge(dep, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = strategic_merge(POD, {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "o"}]
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = strategic_merge(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    with pytest.raises(ApiError):
        strategic_merge(POD, {"spec": {"containers": [{"image": "no-name"}]}})


def test_merge_and_json_patch() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    doc = json_patch(
        POD,
        [
            {"op": "add", "path": "/metadata/labels/c~1d", "value": "x"},
            {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/z"},
            {"op": "test", "path": "/spec/containers/1/name", "value": "side"},
            {"op": "remove", "path": "/spec/containers/0/env/0"},
        ],
    )
    assert doc["metadata"]["labels"] == {"b": "2", "c/d": "x", "z": "1"}
    assert [e["name"] for e in doc["spec"]["containers"][0]["env"]] == ["B"]
    for bad in (
        [{"op": "remove", "path": "/nope"}],
        [{"op": "test", "path": "/metadata/name", "value": "q"}],
        [{"op": "replace", "path": "/spec/containers/9", "value": 1}],
    ):
        with pytest.raises(JsonPatchError):
            json_patch(POD, bad)


def test_label_and_field_selectors() -> None:
    reqs = parse_labels("app in (a, b),tier!=db,!legacy,env")
    assert match_labels(reqs, {"app": "a", "tier": "web", "env": "p"})
    assert not match_labels(reqs, {"app": "a", "tier": "db", "env": "p"})
    assert not match_labels(reqs, {"app": "c", "env": "p"})
    assert not match_labels(reqs, {"app": "a", "env": "p", "legacy": "1"})
    with pytest.raises(ApiError):
        parse_labels("app in (")
    pred = parse_fields("status.phase!=Failed,spec.nodeName=node-1")
    assert pred({"status": {"phase": "Running"}, "spec": {"nodeName": "node-1"}})
    assert not pred({"status": {"phase": "Failed"}, "spec": {"nodeName": "node-1"}})
    assert parse_fields("spec.unschedulable=true")({"spec": {"unschedulable": True}})
