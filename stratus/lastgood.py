"""Last-known-good memory: a compact, normalised snapshot of a scope taken while it is healthy, kept on the bus.

Why: most incidents follow a change, and TNR makes trying to revert one safe (a revert that does not help is undone).
To know what changed, Stratus needs the state *before* the fault, which no read of the broken cluster can give. So
while a watched scope is healthy (mu at 0 for ``settle_s``), the detector records what the scope declares (its
workloads, Services, claims, policies, quotas, ConfigMaps, Secrets) and the cluster objects it depends on (nodes,
StorageClasses, its PVs, admission webhooks, and the cluster DNS configuration every name lookup goes through: the
ConfigMaps of ``kube-system`` that configure the DNS server and the Deployments that mount them, at most
``MAX_DNS_OBJECTS``); the diagnoser and mitigator read it back on an incident (``stratus.reasoners.rulebook.changes``).

Shaped for that job:
- **Normalised**: server-written fields (uids, resourceVersions, timestamps, status, cluster IPs, revision
  annotations) are dropped, so two snapshots of an unchanged scope are equal and every difference is a declared change.
- **Compact and bounded**: Secrets are kept as a hash of their data only (never in clear on the bus); ConfigMaps by
  value up to ``CONFIGMAP_INLINE_BYTES``, by hash beyond; at most ``MAX_OBJECTS`` objects; the record is zlib
  compressed and refused over ``max_bytes``; the KV bucket keeps ``history`` records per scope.
- **Persisted**: a JetStream key-value bucket (``<stream prefix>_LASTGOOD``, key = scope), so every replica of every
  service reads the same memory and a restart loses nothing. Pure parts (``normalise``, ``HealthyClock``) do no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from stratus.contracts import Severity

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SCOPE_KINDS = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
)
"""Namespaced kinds a scope declares (pods and ReplicaSets are derived: their owners are recorded instead)."""

CLUSTER_KINDS = (
    "Node",
    "StorageClass",
    "PersistentVolume",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "Namespace",
)
"""Cluster-scoped kinds a scope depends on (of the Namespaces, only the scope's own: its labels set admission
policy, e.g. Pod Security levels)."""

MAX_OBJECTS = 2000

DNS_NAMESPACE = "kube-system"
"""Where the cluster DNS server (CoreDNS, kube-dns) and its configuration live."""
CLUSTER_DNS = "ClusterDNS"
"""Marker in ``LastGood.kinds``: the cluster DNS configuration was read (its objects are ConfigMaps and Deployments
in ``DNS_NAMESPACE``); a snapshot without it says nothing about DNS, so no difference there is a change."""
MAX_DNS_OBJECTS = 8
"""At most this many DNS objects are kept: the server's configuration is a handful of objects, never the namespace."""
DNS_CONFIG_KEYS = frozenset({"Corefile", "stubDomains", "upstreamNameservers"})
"""Data keys by which a ConfigMap configures the cluster DNS server: CoreDNS's Corefile (also NodeLocal DNSCache's),
kube-dns's stub domains and upstream servers."""
CONFIGMAP_INLINE_BYTES = 32_768

_DROP_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "generateName")
_NOISY_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/restartedAt",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
)
_NODE_TAINTS_SET_BY_KUBERNETES = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def object_key(kind: str, obj: Obj) -> str:
    """``Kind/namespace/name`` for a namespaced object, ``Kind/name`` for a cluster-scoped one."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{kind}/{ns}/{meta.get('name', '')}" if ns else f"{kind}/{meta.get('name', '')}"


def data_hash(data: dict[str, Any] | None) -> str:
    """A stable hash of a ConfigMap's or Secret's data (keys and values)."""
    text = json.dumps(data or {}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _clean_annotations(annotations: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (annotations or {}).items() if k not in _NOISY_ANNOTATIONS}


def _clean_meta(meta: dict[str, Any]) -> Obj:
    out: Obj = {"name": meta.get("name", "")}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    annotations = _clean_annotations(meta.get("annotations"))
    if annotations:
        out["annotations"] = annotations
    if meta.get("finalizers"):
        out["finalizers"] = list(meta["finalizers"])
    return out


def _clean_template(template: Obj) -> Obj:
    out = dict(template)
    tmeta = dict(out.get("metadata") or {})
    annotations = _clean_annotations(tmeta.get("annotations"))
    tmeta.pop("creationTimestamp", None)
    if annotations:
        tmeta["annotations"] = annotations
    else:
        tmeta.pop("annotations", None)
    out["metadata"] = tmeta
    return out


def normalise(kind: str, obj: Obj) -> Obj:
    """The declared part of an object, without what the server writes: equal for an unchanged object."""
    out: Obj = {"kind": kind, "metadata": _clean_meta(obj.get("metadata") or {})}
    spec = dict(obj.get("spec") or {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet") and isinstance(spec.get("template"), dict):
        spec["template"] = _clean_template(spec["template"])
    if kind == "Service":
        for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            spec.pop(k, None)
    if kind == "PersistentVolume" and isinstance(spec.get("claimRef"), dict):
        ref = spec["claimRef"]
        spec["claimRef"] = {k: ref[k] for k in ("kind", "namespace", "name") if k in ref}
    if kind == "Node":
        taints = [
            {k: v for k, v in t.items() if k != "timeAdded"}
            for t in spec.get("taints") or []
            if t.get("key") not in _NODE_TAINTS_SET_BY_KUBERNETES
        ]
        spec = {k: spec[k] for k in ("unschedulable",) if spec.get(k)}
        if taints:
            spec["taints"] = taints
        allocatable = (obj.get("status") or {}).get("allocatable")
        if allocatable:
            out["allocatable"] = dict(allocatable)
    if spec:
        out["spec"] = spec
    if kind == "Secret":
        out["type"] = obj.get("type", "Opaque")
        data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
        out["keys"] = sorted(data)
        out["hash"] = data_hash(data)
    elif kind == "ConfigMap":
        data = {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}
        if len(json.dumps(data)) <= CONFIGMAP_INLINE_BYTES:
            out["data"] = data
        else:
            out["keys"] = sorted(data)
        out["hash"] = data_hash(data)
    elif kind == "StorageClass":
        for k in ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode", "allowVolumeExpansion"):
            if k in obj:
                out[k] = obj[k]
    elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        out["webhooks"] = obj.get("webhooks") or []
    return out


class LastGood(BaseModel):
    """One healthy snapshot of a scope."""

    scope: str = Field(description="The scope (namespace) it describes.")
    taken_at: float = Field(description="When it was taken (Unix time, seconds).")
    mu: float = Field(default=0.0, description="The scope's severity when it was taken (0: healthy).")
    kinds: list[str] = Field(default_factory=list, description="Kinds that were read (a kind missing was not).")
    objects: dict[str, Obj] = Field(default_factory=dict, description="Object key -> the normalised object.")

    def of(self, kind: str) -> list[Obj]:
        return [o for k, o in self.objects.items() if k.split("/", 1)[0] == kind]

    def to_bytes(self) -> bytes:
        return zlib.compress(self.model_dump_json().encode(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> LastGood:
        return cls.model_validate_json(zlib.decompress(data))


class ObjectLister(Protocol):
    async def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]: ...


def is_dns_config(obj: Obj) -> bool:
    """Whether a ConfigMap configures the cluster DNS server (by its data keys)."""
    return bool(DNS_CONFIG_KEYS & set(obj.get("data") or {}))


def dns_configs_mounted(workload: Obj, configs: set[str]) -> bool:
    """Whether a workload's pods mount one of the named ConfigMaps (the DNS server reads its configuration so)."""
    pod_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any((v.get("configMap") or {}).get("name") in configs for v in pod_spec.get("volumes") or [])


def cluster_dns_objects(configmaps: list[Obj], deployments: list[Obj]) -> list[tuple[str, Obj]]:
    """The cluster DNS objects worth remembering, bounded: the DNS ConfigMaps, then the Deployments mounting them."""
    configs = sorted(
        (c for c in configmaps if is_dns_config(c)), key=lambda c: str((c.get("metadata") or {}).get("name"))
    )
    names = {str((c.get("metadata") or {}).get("name")) for c in configs}
    servers = sorted(
        (d for d in deployments if dns_configs_mounted(d, names)),
        key=lambda d: str((d.get("metadata") or {}).get("name")),
    )
    picked = [("ConfigMap", c) for c in configs] + [("Deployment", d) for d in servers]
    return picked[:MAX_DNS_OBJECTS]


def _pv_in_scope(pv: Obj, scope: str, claims: set[str]) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    return ref.get("namespace") == scope or f"{ref.get('namespace')}/{ref.get('name')}" in claims


async def capture(lister: ObjectLister, scope: str, mu: float = 0.0, now: float | None = None) -> LastGood:
    """Read the scope and its cluster dependencies into a normalised snapshot (a kind that fails is left out)."""
    snap = LastGood(scope=scope, taken_at=time.time() if now is None else now, mu=mu)
    read: dict[str, list[Obj]] = {}

    async def listing(kind: str, namespace: str | None) -> None:
        try:
            read[kind] = list(await lister.list_objects(kind, namespace))
        except Exception as exc:  # a kind the cluster does not serve: remember that it was not read
            log.debug("last-good: list %s failed: %s", kind, exc)

    dns: dict[str, list[Obj]] = {}

    async def dns_listing(kind: str) -> None:
        try:
            dns[kind] = list(await lister.list_objects(kind, DNS_NAMESPACE))
        except Exception as exc:  # no read access to the system namespace: DNS is simply not remembered
            log.debug("last-good: list %s in %s failed: %s", kind, DNS_NAMESPACE, exc)

    dns_reads = (dns_listing(k) for k in ("ConfigMap", "Deployment")) if scope != DNS_NAMESPACE else ()
    await asyncio.gather(
        *(listing(k, scope) for k in SCOPE_KINDS), *(listing(k, None) for k in CLUSTER_KINDS), *dns_reads
    )
    claims = {f"{scope}/{(c.get('metadata') or {}).get('name')}" for c in read.get("PersistentVolumeClaim", [])}
    for kind in (*SCOPE_KINDS, *CLUSTER_KINDS):
        if kind not in read:
            continue
        snap.kinds.append(kind)
        for obj in read[kind]:
            if kind == "PersistentVolume" and not _pv_in_scope(obj, scope, claims):
                continue
            if kind == "Namespace" and (obj.get("metadata") or {}).get("name") != scope:
                continue
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if len(snap.objects) >= MAX_OBJECTS:
                break
            norm = normalise(kind, obj)
            snap.objects[object_key(kind, norm)] = norm
    if "ConfigMap" in dns:
        snap.kinds.append(CLUSTER_DNS)
        for kind, obj in cluster_dns_objects(dns["ConfigMap"], dns.get("Deployment", [])):
            norm = normalise(kind, obj)
            snap.objects[object_key(kind, norm)] = norm
    return snap


def bounded(snap: LastGood, max_bytes: int) -> bytes | None:
    """The record's bytes, dropping inline ConfigMap data (keeping hashes) if needed; None when still too big."""
    data = snap.to_bytes()
    if len(data) <= max_bytes:
        return data
    for key, obj in snap.objects.items():
        if obj.get("kind") == "ConfigMap" and "data" in obj:
            snap.objects[key] = {**{k: v for k, v in obj.items() if k != "data"}, "keys": sorted(obj["data"])}
    data = snap.to_bytes()
    return data if len(data) <= max_bytes else None


@dataclass
class HealthyClock:
    """When to record: a scope healthy for ``settle_s`` in a row, at most once per ``refresh_s`` (pure, no I/O)."""

    settle_s: float
    refresh_s: float
    healthy_since: dict[str, float] = field(default_factory=dict)
    recorded_at: dict[str, float] = field(default_factory=dict)

    def observe(self, scope: str, healthy: bool, now: float) -> bool:
        if not healthy:
            self.healthy_since.pop(scope, None)
            return False
        since = self.healthy_since.setdefault(scope, now)
        if now - since < self.settle_s:
            return False
        last = self.recorded_at.get(scope)
        return last is None or last < since or now - last >= self.refresh_s

    def recorded(self, scope: str, now: float) -> None:
        self.recorded_at[scope] = now

    def reset(self, scope: str) -> None:
        self.healthy_since.pop(scope, None)


def bucket_name(stream_prefix: str) -> str:
    return f"{stream_prefix}_LASTGOOD"


class LastGoodStore:
    """The JetStream key-value bucket of last-known-good snapshots (key: the scope; ``history`` kept per key)."""

    def __init__(self, js: Any, bucket: str, *, history: int = 5, max_bytes: int = 512_000) -> None:
        self.js = js
        self.bucket = bucket
        self.history = max(1, min(history, 64))
        self.max_bytes = max_bytes
        self._kv: Any = None
        self._lock = asyncio.Lock()

    async def kv(self) -> Any:
        from nats.js import api as js_api

        from stratus.bus import key_value

        async with self._lock:
            if self._kv is None:
                config = js_api.KeyValueConfig(bucket=self.bucket, history=self.history, max_value_size=self.max_bytes)
                self._kv = await key_value(self.js, config)
            return self._kv

    @staticmethod
    def key(scope: str) -> str:
        from stratus.bus import kv_key

        return kv_key(scope)

    async def put(self, snap: LastGood) -> bool:
        data = bounded(snap, self.max_bytes)
        if data is None:
            log.warning("last-good of %s is over %d bytes: not recorded", snap.scope, self.max_bytes)
            return False
        await (await self.kv()).put(self.key(snap.scope), data)
        return True

    async def latest(self, scope: str) -> LastGood | None:
        from nats.js.errors import KeyNotFoundError, NotFoundError

        try:
            entry = await (await self.kv()).get(self.key(scope))
        except (KeyNotFoundError, NotFoundError):
            return None
        return LastGood.from_bytes(entry.value) if entry and entry.value else None


LastGoodSource = Callable[[str], Awaitable["LastGood | None"]]
"""How a reasoner reads the last-known-good snapshot of a scope (``LastGoodStore.latest``)."""


class LastGoodRecorder:
    """The detector's side: on each probe of a healthy scope, record a snapshot once it has settled.

    A snapshot is kept only if the scope stays healthy for ``settle_s`` *after* it was taken: a change made just before
    a probe may not show its harm yet, and a snapshot of it must never become the "good" state. So a due scope gets a
    *pending* snapshot, promoted to the bus when the settle time has passed with every probe healthy, dropped at the
    first unhealthy one.
    """

    def __init__(self, store: LastGoodStore, lister: ObjectLister, clock: HealthyClock) -> None:
        self.store = store
        self.lister = lister
        self.clock = clock
        self.pending: dict[str, LastGood] = {}

    async def observe(self, scope: str, severity: Severity, now: float | None = None) -> bool:
        """True when a snapshot was recorded."""
        at = time.time() if now is None else now
        healthy = not severity.crashed and not math.isinf(severity.mu) and severity.mu <= 0
        if not healthy:
            self.reset(scope)
            return False
        pending = self.pending.get(scope)
        if pending is not None:
            if at - pending.taken_at < self.clock.settle_s:
                return False
            del self.pending[scope]
            try:
                ok = await self.store.put(pending)
            except Exception:  # the memory is an aid: a failed record never stops the probes
                log.exception("last-good of %s not recorded", scope)
                return False
            if ok:
                self.clock.recorded(scope, at)
                log.info("last-good of %s recorded: %d objects", scope, len(pending.objects))
            return ok
        if self.clock.observe(scope, True, at):
            try:
                self.pending[scope] = await capture(self.lister, scope, severity.mu, at)
            except Exception:
                log.exception("last-good of %s not captured", scope)
        return False

    def reset(self, scope: str) -> None:
        self.clock.reset(scope)
        self.pending.pop(scope, None)


def attach(reasoner: object, source: LastGoodSource, depth: int = 3) -> int:
    """Give ``source`` to every reasoner (and wrapped reasoner) that reads last-known-good snapshots."""
    found = 0
    if hasattr(reasoner, "lastgood"):
        reasoner.lastgood = source
        found += 1
    if depth > 0:
        for value in list(getattr(reasoner, "__dict__", {}).values()):
            if type(value).__module__.startswith("stratus.reasoners"):
                found += attach(value, source, depth - 1)
    return found


def store_from_settings(js: Any, settings: Any) -> LastGoodStore:
    """The store an install's services share (``LastGoodSettings`` plus the topology's stream prefix)."""
    return LastGoodStore(
        js,
        bucket_name(settings.topology.stream_prefix),
        history=settings.lastgood_history,
        max_bytes=settings.lastgood_max_bytes,
    )
