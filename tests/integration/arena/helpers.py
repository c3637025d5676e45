"""Manifests and small helpers shared by the arena conformance tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client

Obj = dict[str, Any]
CLIENTS = ["python", "kubectl"]
CLIENT_SOCKETS = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
"""The official client (its urllib3 pool and the websocket of ``stream``) leaves sockets to the garbage collector."""


def deployment(
    name: str, image: str = "nginx:1.25", replicas: int = 2, labels: dict[str, str] | None = None, **spec: Any
) -> Obj:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "MODE", "value": "prod"}],
                        }
                    ],
                    **spec,
                },
            },
        },
    }


def pod(name: str, image: str = "nginx:1.25", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": [{"name": "main", "image": image}], **spec},
    }


def to_yaml(*objs: Obj) -> str:
    return yaml.safe_dump_all(list(objs), sort_keys=False)


def status_of(exc: client.ApiException) -> Obj:
    return json.loads(exc.body)
