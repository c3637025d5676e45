"""Discovery documents (legacy ``/api``, ``/apis``, group and resource lists) and the OpenAPI v3 index that kubectl
reads to learn that the server validates fields itself (``fieldValidation``) and accepts patches.

The per-group OpenAPI v3 documents declare each resource's PATCH operation with its GroupVersionKind and the
``fieldValidation``/``dryRun`` query parameters, but without request-body schemas: kubectl then computes strategic
merge patches from its compiled-in types, exactly as it does against a cluster whose OpenAPI lacks a kind.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from arena.resources import GROUPS, RESOURCES, ResourceType

Obj = dict[str, Any]
VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0-arena",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUB_KINDS = {
    "status": (None, ["get", "patch", "update"]),
    "scale": ({"group": "autoscaling", "version": "v1", "kind": "Scale"}, ["get", "patch", "update"]),
    "log": ({"kind": "Pod"}, ["get"]),
    "exec": ({"kind": "PodExecOptions"}, ["create", "get"]),
    "binding": ({"kind": "Binding"}, ["create"]),
    "eviction": ({"group": "policy", "version": "v1", "kind": "Eviction"}, ["create"]),
    "finalize": ({"kind": "Namespace"}, ["update"]),
}


def api_versions(host: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def api_groups() -> Obj:
    groups = []
    for g, versions in GROUPS.items():
        gvs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> Obj | None:
    if group not in GROUPS:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in GROUPS[group]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _hash(rt: ResourceType) -> str:
    return hashlib.sha256(rt.key.encode()).hexdigest()[:11] + "="


def resource_list(group: str, version: str) -> Obj | None:
    rts = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rts:
        return None
    out: list[Obj] = []
    for r in rts:
        entry: Obj = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
            "storageVersionHash": _hash(r),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            gvk, verbs = _SUB_KINDS[sub]
            se: Obj = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "verbs": verbs}
            se.update(gvk or {"kind": r.kind})
            out.append(se)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_index() -> Obj:
    paths: Obj = {}
    for g, v in {(r.group, r.version) for r in RESOURCES}:
        p = _gv_path(g, v)
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={_doc_hash(g, v)}"}
    return {"paths": paths}


def _doc_hash(group: str, version: str) -> str:
    return hashlib.sha512(json.dumps(openapi_gv(group, version)).encode()).hexdigest()[:32].upper()


_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]


def openapi_gv(group: str, version: str) -> Obj:
    paths: Obj = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        root = f"/{_gv_path(group, version)}"
        item = f"{root}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else f"{root}/{r.plural}/{{name}}"
        coll = item.rsplit("/", 1)[0]
        ok = {"200": {"description": "OK"}}
        paths[coll] = {
            "post": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "post", "responses": ok},
            "parameters": _PARAMS,
        }
        paths[item] = {
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": ok},
            "put": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", "responses": ok},
            "patch": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "patch",
                "parameters": _PARAMS,
                "responses": ok,
            },
            "parameters": [],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
