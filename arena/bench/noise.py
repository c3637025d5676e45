"""Benign changes during a scenario (the bench's ``--noise``): what a busy team does to a healthy app all day.

Why: a detector or a diagnoser that only ever sees the fault learns that every change is the fault. Real clusters
roll, scale and restart constantly; SREGym's noise mode runs background disturbances during a problem for the same
reason. Here every change is *benign by Kubernetes' own rules*, chosen against the live state at the moment it runs:

- ``rollout_restart``: a rolling restart (the ``restartedAt`` template annotation, as ``kubectl rollout restart``)
  of a Deployment whose RollingUpdate strategy keeps a Ready pod (maxUnavailable resolves below the replicas).
- ``scale``: one replica more, held a moment, then back, only when the new pod fits a schedulable Ready node's
  free allocatable CPU and memory.
- ``delete_pod``: one Ready pod of a Deployment with at least two Ready replicas; its ReplicaSet recreates it. When no
  Deployment has two, one is first scaled up by one (recorded as its own change) and scaled back afterwards.
- ``config_reload``: a ConfigMap gets a new key and the Deployment that reads it rolls (the Helm ``checksum/config``
  pattern: the template carries the ConfigMap's hash). When no rolling Deployment reads a ConfigMap, the noise's own
  ConfigMap is used, and the rolled Deployment carries its hash.
- ``image_alias``: a container's image becomes another tag of the *same* image (the arena's image catalogue says
  which tags are equivalent: same binaries, entry point and baked configuration).

Deployments that hold a PersistentVolumeClaim, use the Recreate strategy or run a data store or registry (MongoDB,
Redis, Consul, by the arena's image catalogue) are never touched: rolling them is an outage (a ReadWriteOnce claim,
every pod stopped first, an empty store), which is not noise. Each change waits until the
Deployment has converged (rolled out, every pod Ready) before the next; the schedule (offsets and kinds) comes from the
seed, the targets from the seed and the sorted live objects, so a run is reproducible. It is bounded by ``count`` and
by ``min_gap_s`` between changes. Every change is recorded with its time and the objects it touched, so the bench can
tell a diagnosis that blamed the noise from one that blamed the fault. ``restore`` puts back what would otherwise
linger (replicas, images, ConfigMap keys, the noise's own ConfigMap) after the run.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from arena.apps.catalogue import load_catalogue, normalise_image
from arena.objects import parse_quantity
from arena.scenarios.kube import Kube, KubeError

Obj = dict[str, Any]

KINDS = ("rollout_restart", "scale", "delete_pod", "config_reload", "image_alias")
MAX_COUNT = 50
NOISE_CONFIGMAP = "stratus-noise-config"
RELOAD_KEY = "stratus-noise-reload"
HASH_ANNOTATION = "stratus.noise/config-hash"
RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


class NoiseError(ValueError):
    """A noise specification out of bounds."""


@dataclass(frozen=True)
class NoiseSpec:
    """How much noise, how often, which kinds, from which seed."""

    seed: int = 0
    count: int = 4
    """At most this many changes per scenario run (a scale or a pod deletion's helper scale counts once)."""
    start_s: float = 1.0
    """The first change comes no earlier than this after the noise starts."""
    min_gap_s: float = 3.0
    """At least this long between the starts of two changes (the rate bound)."""
    jitter_s: float = 2.0
    """Up to this much more, drawn from the seed, between two changes."""
    settle_timeout_s: float = 30.0
    """How long a change may take to converge (rolled out, every pod Ready) before it is recorded as not settled."""
    hold_s: float = 1.0
    """How long a scaled-up replica stays before the scale back."""
    kinds: tuple[str, ...] = KINDS
    before: int = 1
    """Changes made before the fault is injected (the rest run while it unfolds): the last healthy snapshot and the
    change analysis then see noise and fault side by side."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise NoiseError(f"noise count {self.count} is out of bounds: 1..{MAX_COUNT}")
        if not 0.5 <= self.min_gap_s <= 600:
            raise NoiseError(f"noise min gap {self.min_gap_s} s is out of bounds: 0.5..600 s")
        if not 0 <= self.start_s <= 600 or not 0 <= self.jitter_s <= 600:
            raise NoiseError("noise start and jitter are bounded to 0..600 s")
        if not 1 <= self.settle_timeout_s <= 600 or not 0 <= self.hold_s <= 60:
            raise NoiseError("noise settle timeout is bounded to 1..600 s and the hold to 0..60 s")
        if not 0 <= self.before <= self.count:
            raise NoiseError(f"noise changes before the fault ({self.before}) must be within 0..count ({self.count})")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise NoiseError(f"unknown noise kinds {bad}; choose from {', '.join(KINDS)}")

    @classmethod
    def parse(cls, text: str) -> NoiseSpec:
        """``seed=3,count=5,gap=2,before=1,kinds=scale+rollout_restart`` (every part optional; ``on`` alone is the
        default)."""
        values: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part or part == "on":
                continue
            key, sep, value = part.partition("=")
            try:
                if key == "seed" and sep:
                    values["seed"] = int(value)
                elif key == "count" and sep:
                    values["count"] = int(value)
                elif key == "gap" and sep:
                    values["min_gap_s"] = float(value)
                elif key == "start" and sep:
                    values["start_s"] = float(value)
                elif key == "jitter" and sep:
                    values["jitter_s"] = float(value)
                elif key == "before" and sep:
                    values["before"] = int(value)
                elif key == "kinds" and sep:
                    values["kinds"] = tuple(k for k in value.split("+") if k)
                else:
                    raise NoiseError(
                        f"noise option {part!r} is not understood; use seed=N, count=N, gap=S, start=S, jitter=S, "
                        f"before=N, kinds=a+b ({'+'.join(KINDS)})"
                    )
            except ValueError as exc:
                if isinstance(exc, NoiseError):
                    raise
                raise NoiseError(f"noise option {part!r}: {value!r} is not a number") from None
        return cls(**values)

    def schedule(self, run: int = 0) -> list[tuple[float, str]]:
        """The (offset in seconds from the start, kind) of every change: a function of the seed and the run's index
        in the bench (so the scenarios of one bench do not all get the same kinds)."""
        rng = random.Random(f"noise-schedule:{self.seed}:{run}")
        out: list[tuple[float, str]] = []
        at = self.start_s
        for _ in range(self.count):
            at += rng.uniform(0, self.jitter_s)
            out.append((round(at, 3), rng.choice(self.kinds)))
            at += self.min_gap_s
        return out

    @property
    def duration_s(self) -> float:
        """When the last change starts, at the latest (a bound for a run's noise window)."""
        return self.start_s + self.count * (self.min_gap_s + self.jitter_s)


class NoiseEvent(BaseModel):
    """One benign change the noise made."""

    at: datetime = Field(description="When the change was sent to the API (UTC).")
    offset_s: float = Field(description="Seconds from the noise's start.")
    kind: str = Field(description="rollout_restart, scale, delete_pod, config_reload or image_alias.")
    namespace: str = Field(description="Namespace of the change.")
    target: str = Field(description="The Deployment the change concerns ('' when none was eligible).")
    objects: list[str] = Field(
        default_factory=list, description="Objects written, as Kind/namespace/name (the keys a diagnosis may blame)."
    )
    detail: str = Field(default="", description="What changed, e.g. replicas 1 -> 2.")
    ok: bool = Field(default=True, description="The API accepted every write.")
    settled_s: float | None = Field(
        default=None, description="Seconds until the Deployment converged (None: not within the settle timeout)."
    )
    error: str | None = Field(default=None, description="Why the change was skipped or failed.")


@dataclass
class _Undo:
    replicas: dict[str, int] = field(default_factory=dict)
    images: dict[tuple[str, str], str] = field(default_factory=dict)
    configmap_keys: set[str] = field(default_factory=set)
    own_configmap: bool = False


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _resolve(value: Any, replicas: int, up: bool) -> int:
    """A RollingUpdate bound (an int or a percentage) as Kubernetes resolves it: surge rounds up, unavailable down."""
    if isinstance(value, str) and value.endswith("%"):
        exact = float(value[:-1]) * replicas / 100
        return int(-(-exact // 1)) if up else int(exact)
    return int(value)


def _claims(dep: Obj) -> bool:
    vols = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
    return any(v.get("persistentVolumeClaim") for v in vols)


STATEFUL_SERVERS = frozenset({"mongodb", "redis", "consul"})
"""Servers (the image catalogue's ``server``) whose pods hold data or membership: a fresh or second pod of one is an
empty store or a registry nobody registered with. A cache (memcached) may be restarted and scaled."""


def holds_state(dep: Obj) -> bool:
    """Whether a container of the Deployment runs an image that serves a data store or a registry."""
    catalogue = load_catalogue()
    for c in ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        image = catalogue.image(str(c.get("image", "")))
        if image is None:
            continue
        for program in image.binaries.values():
            p = catalogue.programs.get(program)
            if p is not None and p.server in STATEFUL_SERVERS:
                return True
    return False


def rolls_safely(dep: Obj) -> bool:
    """A Deployment whose rollout keeps a Ready pod: RollingUpdate with maxUnavailable below the replicas (or a
    surge), no PersistentVolumeClaim and no data store (``holds_state``), and fully available now."""
    spec = dep.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or _claims(dep) or holds_state(dep):
        return False
    replicas = int(spec.get("replicas", 1) or 0)
    if replicas < 1:
        return False
    ru = strategy.get("rollingUpdate") or {}
    unavailable = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
    if unavailable == 0 and surge == 0:
        return False
    if unavailable >= replicas:
        return False
    return converged(dep)


def converged(dep: Obj) -> bool:
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1) or 0)
    if int(st.get("observedGeneration", 0) or 0) < int(dep["metadata"].get("generation", 0) or 0):
        return False
    return all(int(st.get(k) or 0) == want for k in ("updatedReplicas", "readyReplicas", "availableReplicas")) and (
        int(st.get("replicas") or 0) == want
    )


def _requests(pod_spec: Obj) -> tuple[float, float]:
    cpu = mem = 0.0
    for c in pod_spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += parse_quantity(req.get("cpu", 0))
        mem += parse_quantity(req.get("memory", 0))
    return cpu, mem


def fits_somewhere(pod_spec: Obj, nodes: list[Obj], pods: list[Obj]) -> bool:
    """Whether one more pod with this spec fits a Ready, schedulable node's free allocatable CPU and memory."""
    cpu, mem = _requests(pod_spec)
    used: dict[str, tuple[float, float]] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if not node or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        c, m = _requests(p.get("spec") or {})
        uc, um = used.get(node, (0.0, 0.0))
        used[node] = (uc + c, um + m)
    for n in nodes:
        if (n.get("spec") or {}).get("unschedulable") or (n.get("spec") or {}).get("taints"):
            continue
        conds = (n.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            continue
        alloc = (n.get("status") or {}).get("allocatable") or {}
        free_cpu = parse_quantity(alloc.get("cpu", 0)) - used.get(_name(n), (0.0, 0.0))[0]
        free_mem = parse_quantity(alloc.get("memory", 0)) - used.get(_name(n), (0.0, 0.0))[1]
        if cpu <= free_cpu and mem <= free_mem:
            return True
    return False


def equivalent_images() -> dict[str, list[str]]:
    """Image -> the other tags of the same image in the arena's catalogue (equal binaries, entry point, config)."""
    images = load_catalogue().images
    out: dict[str, list[str]] = {}
    for ref, img in images.items():
        repo = ref.rsplit(":", 1)[0]
        same = [
            other
            for other, o in images.items()
            if other != ref and other.rsplit(":", 1)[0] == repo and o.model_dump() == img.model_dump()
        ]
        if same:
            out[ref] = sorted(same)
    return out


def _configmaps_read(dep: Obj) -> set[str]:
    pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    names = {(v.get("configMap") or {}).get("name") for v in pod.get("volumes") or []}
    for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        names |= {(e.get("configMapRef") or {}).get("name") for e in c.get("envFrom") or []}
        names |= {((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") for e in c.get("env") or []}
    return {n for n in names if n}


class NoiseGenerator:
    """Runs a ``NoiseSpec``'s schedule on one namespace, in a thread of its own, until done or stopped."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        spec: NoiseSpec,
        *,
        run: int = 0,
        echo: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.kube, self.namespace, self.spec, self.echo = kube, namespace, spec, echo
        self.run_index = run
        self.rng = random.Random(f"noise-targets:{spec.seed}:{run}")
        self.events: list[NoiseEvent] = []
        self.undo = _Undo()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> NoiseGenerator:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self.run, name=f"noise-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> list[NoiseEvent]:
        """No new change starts; the one in flight finishes converging (bounded by the settle timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.spec.settle_timeout_s * 3 + 5 if timeout is None else timeout)
        return list(self.events)

    def wait_changes(self, n: int) -> None:
        """Wait until ``n`` changes are recorded (or the schedule has ended): how the bench lets the first changes
        happen before the fault."""
        if n <= 0 or self._thread is None:
            return
        bound = self.spec.start_s + n * (self.spec.min_gap_s + self.spec.jitter_s + 2 * self.spec.settle_timeout_s)
        deadline = time.monotonic() + bound
        while len(self.events) < n and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait(self, timeout: float) -> bool:
        """Wait until the whole schedule has run; True when it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self) -> None:
        if not self._t0:
            self._t0 = time.monotonic()
        for offset, kind in self.spec.schedule(self.run_index):
            delay = self._t0 + offset - time.monotonic()
            if self._stop.wait(max(0.0, delay)):
                return
            try:
                self._change(kind, offset)
            except Exception as exc:  # the noise must never take the bench down
                self._record(kind, "", [], "", ok=False, error=f"{type(exc).__name__}: {exc}")

    # -- the changes ------------------------------------------------------------------------------------------------
    def _deployments(self) -> list[Obj]:
        return sorted(self.kube.list("Deployment", self.namespace), key=_name)

    def _pick(self, candidates: list[Obj]) -> Obj | None:
        return self.rng.choice(candidates) if candidates else None

    def _key(self, kind: str, name: str) -> str:
        return f"{kind}/{self.namespace}/{name}"

    def _record(
        self,
        kind: str,
        target: str,
        objects: list[str],
        detail: str,
        *,
        ok: bool = True,
        settled_s: float | None = None,
        error: str | None = None,
        at: datetime | None = None,
        offset: float | None = None,
    ) -> NoiseEvent:
        event = NoiseEvent(
            at=at or datetime.now(UTC),
            offset_s=round(time.monotonic() - self._t0 if offset is None else offset, 3),
            kind=kind,
            namespace=self.namespace,
            target=target,
            objects=objects,
            detail=detail,
            ok=ok,
            settled_s=settled_s,
            error=error,
        )
        self.events.append(event)
        self.echo(
            f"noise: {kind} {target or '-'} {detail}"
            + (f" (settled in {settled_s:.1f}s)" if settled_s is not None else "")
            + (f" [{error}]" if error else "")
        )
        return event

    def _settle(self, name: str) -> float | None:
        t0 = time.monotonic()
        deadline = t0 + self.spec.settle_timeout_s
        while time.monotonic() < deadline:
            dep = self.kube.get("Deployment", self.namespace, name)
            if dep is not None and converged(dep) and self._pods_settled(dep):
                return round(time.monotonic() - t0, 2)
            time.sleep(0.1)
        return None

    def _pods_settled(self, dep: Obj) -> bool:
        want = int((dep.get("spec") or {}).get("replicas", 1) or 0)
        selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = [
            p for p in self.kube.list("Pod", self.namespace, selector) if not p["metadata"].get("deletionTimestamp")
        ]
        ready = [
            p
            for p in pods
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions") or [])
        ]
        return len(pods) == len(ready) == want

    def _write(self, kind: str, name: str, patch: Obj, patch_type: str = "strategic") -> None:
        self.kube.patch(kind, self.namespace, name, patch, patch_type)

    def _change(self, kind: str, offset: float) -> None:
        getattr(self, f"_{kind}")()

    def _rollout_restart(self) -> None:
        dep = self._pick([d for d in self._deployments() if rolls_safely(d)])
        if dep is None:
            self._record("rollout_restart", "", [], "", ok=False, error="no Deployment rolls without an outage now")
            return
        name, at = _name(dep), datetime.now(UTC)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._write(
            "Deployment", name, {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: stamp}}}}}
        )
        self._record(
            "rollout_restart", name, [self._key("Deployment", name)], "rolling restart", settled_s=self._settle(name)
        )

    def _scalable(self) -> list[Obj]:
        nodes = self.kube.list("Node", None)
        pods = self.kube.list("Pod", None)
        return [
            d
            for d in self._deployments()
            if rolls_safely(d) and fits_somewhere(d["spec"]["template"].get("spec") or {}, nodes, pods)
        ]

    def _scale_to(self, name: str, replicas: int, detail: str) -> NoiseEvent:
        at = datetime.now(UTC)
        self._write("Deployment", name, {"spec": {"replicas": replicas}}, "merge")
        return self._record("scale", name, [self._key("Deployment", name)], detail, at=at, settled_s=self._settle(name))

    def _scale(self) -> None:
        dep = self._pick(self._scalable())
        if dep is None:
            self._record("scale", "", [], "", ok=False, error="no Deployment has room for one more replica")
            return
        name, n = _name(dep), int(dep["spec"].get("replicas", 1))
        self.undo.replicas.setdefault(name, n)
        self._scale_to(name, n + 1, f"replicas {n} -> {n + 1}")
        self._stop.wait(self.spec.hold_s)
        self._scale_to(name, n, f"replicas {n + 1} -> {n}")

    def _delete_pod(self) -> None:
        multi = [d for d in self._deployments() if rolls_safely(d) and int(d["spec"].get("replicas", 1)) >= 2]
        scaled: tuple[str, int] | None = None
        dep = self._pick(multi)
        if dep is None:
            helper = self._pick(self._scalable())
            if helper is None:
                self._record("delete_pod", "", [], "", ok=False, error="no Deployment can run a second replica")
                return
            name, n = _name(helper), int(helper["spec"].get("replicas", 1))
            self.undo.replicas.setdefault(name, n)
            self._scale_to(name, n + 1, f"replicas {n} -> {n + 1} (a second replica to delete one of)")
            scaled = (name, n)
            dep = self.kube.get("Deployment", self.namespace, name)
            if dep is None:
                return
        name = _name(dep)
        selector = dep["spec"]["selector"].get("matchLabels") or {}
        ready = sorted(
            _name(p)
            for p in self.kube.list("Pod", self.namespace, selector)
            if not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions") or [])
        )
        if len(ready) >= 2:
            pod = self.rng.choice(ready)
            at = datetime.now(UTC)
            self.kube.delete("Pod", self.namespace, pod)
            self._record(
                "delete_pod", name, [self._key("Pod", pod)], f"deleted pod {pod}", at=at, settled_s=self._settle(name)
            )
        else:
            self._record("delete_pod", name, [], "", ok=False, error=f"only {len(ready)} Ready pod(s)")
        if scaled is not None:
            self._stop.wait(self.spec.hold_s)
            self._scale_to(scaled[0], scaled[1], f"replicas {scaled[1] + 1} -> {scaled[1]}")

    def _config_reload(self) -> None:
        rolling = [d for d in self._deployments() if rolls_safely(d)]
        pairs = sorted((_name(d), cm) for d in rolling for cm in _configmaps_read(d))
        pairs = [(d, cm) for d, cm in pairs if self.kube.get("ConfigMap", self.namespace, cm) is not None]
        if pairs:
            target, cm = self.rng.choice(pairs)
        else:
            dep = self._pick(rolling)
            if dep is None:
                self._record("config_reload", "", [], "", ok=False, error="no Deployment rolls without an outage now")
                return
            target, cm = _name(dep), NOISE_CONFIGMAP
            if self.kube.get("ConfigMap", self.namespace, cm) is None:
                self.kube.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": cm, "namespace": self.namespace},
                        "data": {},
                    }
                )
                self.undo.own_configmap = True
        if cm != NOISE_CONFIGMAP:
            self.undo.configmap_keys.add(cm)
        at = datetime.now(UTC)
        value = f"{self.spec.seed}-{len(self.events)}-{at.isoformat()}"
        self._write("ConfigMap", cm, {"data": {RELOAD_KEY: value}}, "merge")
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        self._write(
            "Deployment", target, {"spec": {"template": {"metadata": {"annotations": {HASH_ANNOTATION: digest}}}}}
        )
        self._record(
            "config_reload",
            target,
            [self._key("ConfigMap", cm), self._key("Deployment", target)],
            f"configmap {cm} key {RELOAD_KEY} updated; rollout (hash {digest})",
            at=at,
            settled_s=self._settle(target),
        )

    def _image_alias(self) -> None:
        aliases = equivalent_images()
        options: list[tuple[str, str, str]] = []
        for d in self._deployments():
            if not rolls_safely(d):
                continue
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                ref = normalise_image(str(c.get("image", "")))
                for alias in aliases.get(ref, []):
                    options.append((_name(d), str(c["name"]), alias))
        if not options:
            self._record("image_alias", "", [], "", ok=False, error="no running image has an equivalent tag")
            return
        name, container, alias = self.rng.choice(options)
        dep = self.kube.get("Deployment", self.namespace, name)
        if dep is None:
            return
        old = next(str(c["image"]) for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == container)
        self.undo.images.setdefault((name, container), old)
        at = datetime.now(UTC)
        self._write(
            "Deployment", name, {"spec": {"template": {"spec": {"containers": [{"name": container, "image": alias}]}}}}
        )
        self._record(
            "image_alias",
            name,
            [self._key("Deployment", name)],
            f"{container}: {old} -> {alias} (the same image)",
            at=at,
            settled_s=self._settle(name),
        )

    # -- after the run ------------------------------------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Put back what the noise left changed (replicas, images, ConfigMap keys, its own ConfigMap); the bench runs
        this with the detector paused, like its own recovery."""
        done: list[str] = []
        for name, n in sorted(self.undo.replicas.items()):
            dep = self.kube.get("Deployment", self.namespace, name)
            if dep is not None and int(dep["spec"].get("replicas", 1)) != n:
                self._write("Deployment", name, {"spec": {"replicas": n}}, "merge")
                done.append(f"Deployment/{name} replicas -> {n}")
        for (name, container), image in sorted(self.undo.images.items()):
            dep = self.kube.get("Deployment", self.namespace, name)
            if dep is None:
                continue
            now = next(
                (c.get("image") for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == container), None
            )
            if now is not None and now != image:
                self._write(
                    "Deployment",
                    name,
                    {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}},
                )
                done.append(f"Deployment/{name} {container} image -> {image}")
        for cm in sorted(self.undo.configmap_keys):
            try:
                self._write("ConfigMap", cm, {"data": {RELOAD_KEY: None}}, "merge")
                done.append(f"ConfigMap/{cm} key {RELOAD_KEY} removed")
            except KubeError as exc:
                if exc.status != 404:
                    raise
        if self.undo.own_configmap:
            self.kube.delete("ConfigMap", self.namespace, NOISE_CONFIGMAP)
            done.append(f"ConfigMap/{NOISE_CONFIGMAP} deleted")
        self.undo = _Undo()
        return done


def noise_objects(events: list[NoiseEvent]) -> set[str]:
    """Every object the noise wrote, and the Deployments it concerned (Kind/namespace/name)."""
    out: set[str] = set()
    for e in events:
        if not e.ok:
            continue
        out |= set(e.objects)
        if e.target:
            out.add(f"Deployment/{e.namespace}/{e.target}")
    return out


def noise_components(events: list[NoiseEvent]) -> set[str]:
    """The Deployments the noise concerned (the names a localisation would give)."""
    return {e.target for e in events if e.ok and e.target}


CHANGE_EVIDENCE = "changed since the last healthy state: "
"""How the rulebook's change analysis opens the evidence of a blamed change (``stratus.reasoners.rulebook.changes``)."""


def fault_names(scenario: Any) -> set[str]:
    """The names a scenario's fault concerns: its ground-truth localisation (and accepted alternatives) and every
    object its injection steps name (a noise change on the faulty object itself is no wrong attribution)."""
    truth = scenario.ground_truth
    names = set(truth.localization)
    for alt in truth.localization_alternatives:
        names |= set(alt)
    for step in scenario.inject:
        for attr in ("deployment", "name"):
            value = getattr(step, attr, None)
            if isinstance(value, str):
                names.add(value)
        names |= {str(v) for v in (getattr(step, "selector", None) or {}).values()}
    return names


def blamed_change(evidence: list[str]) -> str | None:
    """The object key (Kind/namespace/name) of the first change a diagnosis blames, if it blames one."""
    for line in evidence:
        if CHANGE_EVIDENCE in line:
            rest = line.split(CHANGE_EVIDENCE, 1)[1].strip()
            return rest.split(" ", 1)[0] if rest else None
    return None


def blamed(diagnosis: dict[str, Any]) -> str:
    """What a diagnosis blames, for the record: its top component and the first change it blames."""
    top = (diagnosis.get("localisation") or ["-"])[0]
    change = blamed_change([str(e) for e in diagnosis.get("evidence") or []])
    return f"top: {top}" + (f"; change: {change}" if change else "")


def wrong_attribution(diagnosis: dict[str, Any], events: list[NoiseEvent], fault: set[str]) -> str | None:
    """Why a diagnosis blames the noise rather than the fault (None when it does not): its top component is one only
    the noise touched, or the first change it blames is an object only the noise wrote."""
    noisy = noise_components(events) - fault
    top = (diagnosis.get("localisation") or [None])[0]
    if top is not None and top in noisy:
        return f"the top component {top} was only touched by noise"
    blamed = blamed_change([str(e) for e in diagnosis.get("evidence") or []])
    summary = str(diagnosis.get("summary") or "")
    if blamed is None and CHANGE_EVIDENCE in summary:
        blamed = blamed_change([summary])
    if blamed is not None and blamed in noise_objects(events) and blamed.rsplit("/", 1)[-1] not in fault:
        return f"the blamed change {blamed} was noise"
    return None
