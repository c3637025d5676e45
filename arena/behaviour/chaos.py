"""Behaviour faults (Chaos Mesh's PodChaos / NetworkChaos) as Kubernetes objects the behaviour reads.

The arena has no CRDs, so an experiment is a ConfigMap in namespace ``chaos-mesh`` labelled
``arena.stratus.dev/chaos=true`` whose ``spec`` key holds the experiment as JSON. It is written through the Kubernetes
API by the scenario engine (a separate process) and read by the behaviour inside the arena process, so both halves
agree through cluster state only, exactly like Chaos Mesh's controller reads its custom resources. Deleting the
object ends the experiment, as ``recover`` does in AIOpsLab.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena.hooks import ClusterView, Obj

CHAOS_NAMESPACE = "chaos-mesh"
CHAOS_LABEL = "arena.stratus.dev/chaos"


class ChaosTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = Field(description="Namespace of the selected pod.")
    name: str = Field(description="Name of the selected pod (mode: one picks one at injection).")


class ChaosSpec(BaseModel):
    """One experiment, as the behaviour reads it."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["pod-failure", "container-kill", "network-loss", "network-delay"] = Field(
        description="What happens to the selected pods."
    )
    targets: list[ChaosTarget] = Field(description="Pods selected at injection time.")
    container_names: list[str] = Field(default_factory=list, description="Containers affected (empty: all).")
    loss: float = Field(0.0, ge=0, le=100, description="network-loss: percentage of packets dropped.")
    latency_ms: float = Field(0.0, ge=0, description="network-delay: added latency per call.")
    duration_s: float | None = Field(None, description="Seconds the experiment lasts (None: until deleted).")
    start: float = Field(default_factory=time.time, description="Epoch seconds of injection.")


def chaos_configmap(name: str, spec: ChaosSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": CHAOS_NAMESPACE, "labels": {CHAOS_LABEL: "true"}},
        "data": {"spec": spec.model_dump_json()},
    }


def active_chaos(view: ClusterView, now: float | None = None) -> list[tuple[str, ChaosSpec]]:
    """(uid-or-name, spec) of every experiment still running."""
    now = time.time() if now is None else now
    out: list[tuple[str, ChaosSpec]] = []
    for cm in view.list("ConfigMap", CHAOS_NAMESPACE, {CHAOS_LABEL: "true"}):
        try:
            spec = ChaosSpec.model_validate(json.loads((cm.get("data") or {}).get("spec", "{}")))
        except (ValueError, TypeError):
            continue
        if spec.duration_s is not None and now > spec.start + spec.duration_s:
            continue
        meta: dict[str, Any] = cm.get("metadata") or {}
        out.append((str(meta.get("uid") or meta.get("name")), spec))
    return out


def faults_on(view: ClusterView, pod: Obj, container: str | None = None) -> list[tuple[str, ChaosSpec]]:
    """Active experiments that select ``pod`` (and ``container`` when given)."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name")
    out = []
    for key, spec in active_chaos(view):
        if not any(t.namespace == ns and t.name == name for t in spec.targets):
            continue
        if container and spec.container_names and container not in spec.container_names:
            continue
        out.append((key, spec))
    return out
