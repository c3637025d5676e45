"""How a service reaches the Kubernetes API: the kubeconfig named in settings, else in-cluster, else ~/.kube/config."""

from __future__ import annotations

import logging

from stratus.errors import TemporaryError
from stratus.gateway import KubeApi
from stratus.settings import CommonSettings

log = logging.getLogger(__name__)


def kube_api(settings: CommonSettings) -> KubeApi:
    if settings.kubeconfig:
        return KubeApi.from_kubeconfig(settings.kubeconfig, settings.kube_context)
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
