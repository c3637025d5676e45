"""Pod Security Admission: a namespace's ``pod-security.kubernetes.io/enforce`` label (``privileged``, ``baseline``,
``restricted``) refuses pods that break its level, with the API server's wording. Only ``enforce`` refuses; ``warn``
and ``audit`` do not change what is admitted. The checks are the levels' published rules that a pod spec can break
in the arena (host namespaces, privileged, host ports and paths for baseline; privilege escalation, capabilities,
non-root and seccomp for restricted)."""

from __future__ import annotations

from arena.errors import forbidden
from arena.resources import ResourceType
from arena.store import Obj, Store

LABEL = "pod-security.kubernetes.io/enforce"
VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"


def _containers(spec: Obj) -> list[Obj]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _baseline(spec: Obj) -> list[str]:
    out = []
    host = [f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    if host:
        out.append(f"host namespaces ({', '.join(f'{f}=true' for f in host)})")
    priv = [c["name"] for c in _containers(spec) if ((c.get("securityContext") or {}).get("privileged"))]
    if priv:
        out.append(
            f"privileged (container{'s' if len(priv) > 1 else ''} {_names(priv)} must not set "
            "securityContext.privileged=true)"
        )
    paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if paths:
        out.append(f"hostPath volumes (volume{'s' if len(paths) > 1 else ''} {_names(paths)})")
    ports = [str(p["hostPort"]) for c in _containers(spec) for p in c.get("ports") or [] if p.get("hostPort")]
    if ports:
        out.append(f"hostPort (container ports use hostPort {', '.join(ports)})")
    return out


def _names(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _restricted(spec: Obj) -> list[str]:
    out = []
    psc = spec.get("securityContext") or {}
    cs = _containers(spec)
    esc = [c["name"] for c in cs if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]
    if esc:
        out.append(
            f"allowPrivilegeEscalation != false (container{'s' if len(esc) > 1 else ''} {_names(esc)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    caps = [
        c["name"]
        for c in cs
        if "ALL" not in (((c.get("securityContext") or {}).get("capabilities") or {}).get("drop") or [])
    ]
    if caps:
        out.append(
            f"unrestricted capabilities (container{'s' if len(caps) > 1 else ''} {_names(caps)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    root = [
        c["name"]
        for c in cs
        if (c.get("securityContext") or {}).get("runAsNonRoot", psc.get("runAsNonRoot")) is not True
    ]
    if root:
        out.append(
            f"runAsNonRoot != true (pod or container{'s' if len(root) > 1 else ''} {_names(root)} must set "
            "securityContext.runAsNonRoot=true)"
        )

    def seccomp(c: Obj) -> str | None:
        prof = (c.get("securityContext") or {}).get("seccompProfile") or psc.get("seccompProfile") or {}
        return prof.get("type")

    bad = [c["name"] for c in cs if seccomp(c) not in ("RuntimeDefault", "Localhost")]
    if bad:
        out.append(
            f"seccompProfile (pod or container{'s' if len(bad) > 1 else ''} {_names(bad)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
        )
    return out


def admit_pod(store: Store, rt: ResourceType, pod: Obj) -> None:
    """Refuse the pod (403) when it violates its namespace's enforced Pod Security level."""
    ns = store.get("namespaces", None, str(pod["metadata"].get("namespace")))
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(LABEL)
    if level not in ("baseline", "restricted"):
        return
    spec = pod.get("spec") or {}
    problems = _baseline(spec) + (_restricted(spec) if level == "restricted" else [])
    if problems:
        version = labels.get(VERSION_LABEL) or "latest"
        name = str(pod["metadata"].get("name") or "")
        raise forbidden(rt, name, f'violates PodSecurity "{level}:{version}": {", ".join(problems)}')
