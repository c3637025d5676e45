"""A kubeconfig that points kubectl and the official client at an arena."""

from __future__ import annotations

from pathlib import Path

import yaml


def kubeconfig(url: str, name: str = "arena", namespace: str = "default", token: str = "arena") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, url: str, namespace: str = "default") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(kubeconfig(url, namespace=namespace), sort_keys=False))
    p.chmod(0o600)
    return p
