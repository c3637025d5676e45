"""How a service reaches the Kubernetes API: the kubeconfig named in settings, else in-cluster, else ~/.kube/config."""

from __future__ import annotations

import logging
from pathlib import Path

from stratus.errors import PermanentError, TemporaryError
from stratus.gateway import KubeApi
from stratus.settings import CommonSettings

log = logging.getLogger(__name__)


def kube_api(settings: CommonSettings) -> KubeApi:
    if settings.kubeconfig:
        return from_named_kubeconfig(settings.kubeconfig, settings.kube_context)
    try:
        return KubeApi.in_cluster()
    except Exception:
        log.debug("not in a cluster; using the default kubeconfig")
    try:
        return KubeApi.from_kubeconfig(None, settings.kube_context)
    except Exception as exc:
        raise TemporaryError(
            f"no Kubernetes API configured: set STRATUS_KUBECONFIG, run in a cluster, or provide ~/.kube/config ({exc})"
        ) from exc


def check_kubeconfig(path: str) -> None:
    """Raise ``PermanentError`` naming the path when ``STRATUS_KUBECONFIG`` names no readable file."""
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise PermanentError(
            f"STRATUS_KUBECONFIG names {path}, which {what}: point it at a kubeconfig file (`stratus arena up` "
            "writes one), or unset it to use the in-cluster config or ~/.kube/config"
        )
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise PermanentError(f"cannot read the kubeconfig {path} (STRATUS_KUBECONFIG): {exc.strerror or exc}") from exc


def from_named_kubeconfig(path: str, context: str | None) -> KubeApi:
    """The kubeconfig the settings name; a missing, unreadable or invalid file is a ``PermanentError`` naming it."""
    check_kubeconfig(path)
    try:
        return KubeApi.from_kubeconfig(Path(path).expanduser(), context)
    except Exception as exc:  # the client raises ConfigException, yaml and type errors for a bad file
        ctx = f" (context {context!r})" if context else ""
        raise PermanentError(f"cannot load the kubeconfig {path}{ctx} (STRATUS_KUBECONFIG): {exc}") from exc
