"""Admission webhooks on pod creation: the API server calls every matching webhook of the Mutating and Validating
WebhookConfigurations (rules on the operation and resource, ``namespaceSelector`` over the namespace's labels with
the implicit ``kubernetes.io/metadata.name``, ``objectSelector`` over the pod's labels).

Why the call is modelled this way: whether a webhook's backend answers follows from state (its Service exists, has a
Ready endpoint), and an unreachable backend fails the request unless ``failurePolicy: Ignore``, with the API server's
wording. A reachable backend admits the pod; the arena runs no webhook server code, so what a mutating backend
changes is its own state too: the RFC 6902 patch in its container's ``WEBHOOK_PATCH`` env var (JSON), applied to the
pod as the API server applies the AdmissionReview's patch. Faults that remove or mis-point a backend, make the policy
fail closed, or make a backend rewrite pods, show exactly as on a cluster.
"""

from __future__ import annotations

import json
from typing import Any

from arena.errors import ApiError
from arena.patch import JsonPatchError, json_patch
from arena.selectors import label_selector_requirements, match_labels
from arena.store import Obj, Store

MUTATING = "mutatingwebhookconfigurations.admissionregistration.k8s.io"
VALIDATING = "validatingwebhookconfigurations.admissionregistration.k8s.io"


def _selects(sel: Obj | None, labels: dict[str, str]) -> bool:
    reqs = label_selector_requirements(sel or {})
    return reqs is None or match_labels(reqs, labels)


def _matches_rule(rule: Obj, operation: str) -> bool:
    ops = rule.get("operations") or []
    resources = rule.get("resources") or []
    groups = rule.get("apiGroups") or []
    return (
        ("*" in ops or operation in ops)
        and ("*" in resources or "pods" in resources)
        and ("*" in groups or "" in groups)
    )


def _backend(store: Store, service: Obj) -> tuple[Obj | None, str | None]:
    ns, name = str(service.get("namespace") or "default"), str(service.get("name") or "")
    svc = store.get("services", ns, name)
    if svc is None:
        return None, f'service "{name}" not found'
    selector = (svc.get("spec") or {}).get("selector") or {}
    ready = [
        p
        for p in store.list("pods", ns)
        if selector
        and all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in selector.items())
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]
    if not ready:
        return None, f'no endpoints available for service "{name}"'
    return sorted(ready, key=lambda p: p["metadata"]["name"])[0], None


def admit_pod(store: Store, pod: Obj, operation: str = "CREATE") -> None:
    """Call every webhook that matches the pod; raise the API server's 500 when one fails closed."""
    ns_name = str(pod["metadata"].get("namespace"))
    ns = store.get("namespaces", None, ns_name) or {}
    ns_labels = {"kubernetes.io/metadata.name": ns_name, **((ns.get("metadata") or {}).get("labels") or {})}
    pod_labels = pod["metadata"].get("labels") or {}
    for key in (MUTATING, VALIDATING):
        for config in sorted(store.list(key), key=lambda c: c["metadata"]["name"]):
            for hook in config.get("webhooks") or []:
                if not any(_matches_rule(r, operation) for r in hook.get("rules") or []):
                    continue
                if not _selects(hook.get("namespaceSelector"), ns_labels):
                    continue
                if not _selects(hook.get("objectSelector"), pod_labels):
                    continue
                client: Any = hook.get("clientConfig") or {}
                service = client.get("service")
                if not service:
                    continue  # a URL backend outside the cluster: assumed to answer
                backend, problem = _backend(store, service)
                if backend is not None:
                    if key == MUTATING:
                        _mutate(pod, backend)
                    continue
                if hook.get("failurePolicy", "Fail") == "Ignore":
                    continue
                timeout = int(hook.get("timeoutSeconds") or 10)
                url = (
                    f"https://{service.get('name')}.{service.get('namespace')}.svc:{service.get('port', 443)}"
                    f"{service.get('path') or ''}?timeout={timeout}s"
                )
                raise ApiError(
                    500,
                    "InternalError",
                    f'Internal error occurred: failed calling webhook "{hook.get("name")}": failed to call webhook: '
                    f'Post "{url}": {problem}',
                )


def _mutate(pod: Obj, backend: Obj) -> None:
    for c in (backend.get("spec") or {}).get("containers") or []:
        raw = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "WEBHOOK_PATCH"), None)
        if not raw:
            continue
        try:
            patched = json_patch(pod, json.loads(raw))
        except (ValueError, ApiError, JsonPatchError):
            continue  # a patch that does not apply: the API server would refuse; the arena leaves the pod as is
        pod.clear()
        pod.update(patched)
        return
