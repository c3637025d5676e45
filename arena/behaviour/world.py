"""How a process inside the arena sees the cluster: which program a container runs, what it listens on, and whether a
connection to ``host:port`` from a pod lands on a listening process.

A connection succeeds only if every link of the real path holds, in this order: the name resolves to a Service (in
the caller's namespace or fully qualified) -> the Service has the port -> its selector matches Ready pods with an IP
-> the port's targetPort (number or container port name) -> NetworkPolicies allow the caller's egress and the callee's
ingress -> a running container of that pod serves a program listening on that port. Each broken link fails the way it
fails on a cluster (no such host, connection refused, or a silent drop that ends in a timeout), so faults need no code.

``Runtime`` is the state a real cluster keeps inside processes and volumes: MongoDB data per volume, which container
instances finished their start-up, log lines waiting to be collected, and one-shot kills already delivered.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arena.apps.catalogue import Catalogue, Image, Program, expand, load_catalogue
from arena.behaviour import chaos, dns
from arena.behaviour.mongo import MongoState
from arena.hooks import ClusterView, Obj


@dataclass(frozen=True)
class Process:
    """What a container runs: the program of its binary, configured by the image and its env."""

    image: Image
    binary: str
    program: Program
    config: dict[str, str]
    args: list[str]

    def ports(self) -> list[int]:
        out = []
        for listen in self.program.listens:
            port = listen.port
            if port.startswith("{arg:") and port.endswith("}"):  # the value of a command-line flag (nc -p PORT)
                port = self.arg_value(port[5:-1]) or ""
            try:
                out.append(int(expand(port, self.config)))
            except ValueError:
                continue
        return out

    def arg_value(self, *names: str) -> str | None:
        for i, a in enumerate(self.args):
            key, _, val = a.partition("=")
            if key in names:
                return val if val else (self.args[i + 1] if i + 1 < len(self.args) else "")
        return None


class ProcessError(Exception):
    """The container cannot run at all (no such image or binary)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def process_of(catalogue: Catalogue, container: Obj, env: dict[str, str] | None = None) -> Process:
    """The process ``container`` runs; ``env`` is its environment as resolved when it started (default: the literal
    ``value`` entries of its spec, later duplicates winning)."""
    ref = str(container.get("image") or "")
    image = catalogue.image(ref)
    if image is None:
        raise ProcessError(
            "pull_error",
            f'Failed to pull image "{ref}": rpc error: code = NotFound desc = failed to pull and unpack image '
            f'"docker.io/{ref}": failed to resolve reference "docker.io/{ref}": {ref}: not found',
        )
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        command = [image.entrypoint] if image.entrypoint else []
    if not command:
        raise ProcessError("crash", "no command specified")
    binary = command[0]
    rest = command[1:] + args
    program_name = None
    if rest:  # an interpreter running a script: the pair names the program ("python /scripts/server.py")
        program_name = image.binaries.get(f"{binary.rsplit('/', 1)[-1]} {rest[0]}")
    program_name = program_name or image.binaries.get(binary) or image.binaries.get(binary.rsplit("/", 1)[-1])
    if program_name is None:
        raise ProcessError(
            "start_error",
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create "
            f'failed: unable to start container process: exec: "{binary}": executable file not found in $PATH: '
            "unknown",
        )
    config = dict(image.config)
    if env is not None:
        config.update(env)
    else:
        for item in container.get("env") or []:
            if "value" in item:
                config[str(item["name"])] = str(item["value"])
    return Process(image, binary, catalogue.programs[program_name], config, command[1:] + args)


# ----------------------------------------------------------------------------------------------- object helpers
def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def pod_key(pod: Obj) -> str:
    m = meta(pod)
    return str(m.get("uid") or f"{m.get('namespace')}/{m.get('name')}")


def container_status(pod: Obj, name: str) -> dict[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return dict(cs)
    return None


def is_running(pod: Obj, name: str) -> bool:
    cs = container_status(pod, name)
    return bool(cs and "running" in (cs.get("state") or {}))


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def labels_match(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def label_selector_match(sel: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty selector matches everything."""
    if sel is None:
        return True
    labels = labels or {}
    if not labels_match(sel.get("matchLabels"), labels):
        return False
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ----------------------------------------------------------------------------------------------- connections
@dataclass(frozen=True)
class Landed:
    """A connection that reached a listening process."""

    pod: Obj
    container: Obj
    process: Process
    port: int
    via_service: str | None = None


@dataclass(frozen=True)
class Refused:
    """A connection that failed; ``kind`` is nxdomain, refused, timeout or unavailable (no registered instance)."""

    kind: str
    host: str
    port: int
    detail: str = ""
    pod: Obj | None = None


Connection = Landed | Refused


@dataclass
class Runtime:
    """State kept inside processes and volumes (see the module docstring)."""

    catalogue: Catalogue = field(default_factory=load_catalogue)
    mongo: dict[str, MongoState] = field(default_factory=dict)
    instances: dict[tuple[str, str], int] = field(default_factory=dict)
    started: dict[tuple[str, str], float] = field(default_factory=dict)
    serving: set[tuple[str, str, int]] = field(default_factory=set)
    logs: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    last_retry_log: dict[tuple[str, str], float] = field(default_factory=dict)
    delivered: set[tuple[str, str, str]] = field(default_factory=set)
    panics: dict[tuple[str, str, int], str] = field(default_factory=dict)
    source_ports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Per pod, the destinations holding one of its ephemeral ports (see ``World._source_port``)."""
    env_at_start: dict[tuple[str, str, int], dict[str, str]] = field(default_factory=dict)
    """Per container instance, its environment as the kubelet resolved it at start (``backends.resolve_env``)."""
    stores: dict[str, Any] = field(default_factory=dict)
    """Valkey, PostgreSQL and Kafka state per storage (``backends.store_state``)."""
    loop_marks: dict[tuple[str, ...], float] = field(default_factory=dict)
    """When a producer/consumer loop last produced or logged (``backends.tick``)."""
    """A request made this container instance panic: the message; the kubelet's next liveness pass sees it exit."""
    volumes: dict[tuple[str, ...], tuple[dict[str, str], float]] = field(default_factory=dict)
    """The files of ConfigMap volumes as the kubelet last projected them: (data, when); ``arena.behaviour.flags``."""
    flag_sets: dict[tuple[str, str, int], str] = field(default_factory=dict)
    """Per flag-service instance, the flag document it serves (to log a reload when it changes)."""
    burners: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """Per container instance, busy threads a flag-guarded code path started (``FlagFault`` cpu_burn)."""
    cpu_acc: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    """Per container instance, cAdvisor-style CPU counters (``arena.behaviour.cpu.account``)."""
    queues: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    """Per container instance, the admission queue's state (``arena.behaviour.queueing``)."""
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    clock: Callable[[], float] = time.time
    probe_scale: float = 0.1
    """Arena seconds per second of an application's own clock (warm-ups): the kubelet's probe period over 10 s."""
    retry_interval: float = 1.0
    """Seconds between two lines of a start-up retry loop (the real apps sleep 1 s)."""
    volume_sync: float = 6.0
    """Seconds between two projections of a mounted ConfigMap (the kubelet's 1-minute sync period, scaled)."""

    def log(self, pod: Obj, container: str, line: str) -> None:
        buf = self.logs.setdefault((pod_key(pod), container), deque(maxlen=500))
        buf.append(line)

    def drain(self, pod: Obj, container: str) -> list[str]:
        buf = self.logs.get((pod_key(pod), container))
        if not buf:
            return []
        out = list(buf)
        buf.clear()
        return out

    def instance(self, pod: Obj, container: str) -> int:
        return self.instances.get((pod_key(pod), container), 0)


class World:
    """One read of the cluster, as the processes inside it experience it."""

    def __init__(self, view: ClusterView, runtime: Runtime) -> None:
        self.view, self.rt = view, runtime
        self._chaos: list[tuple[str, chaos.ChaosSpec]] | None = None

    # -- processes ---------------------------------------------------------------------------------------------
    def process(self, container: Obj, pod: Obj | None = None) -> Process | None:
        """The process of ``container``; with its ``pod``, configured by the env resolved when it started."""
        try:
            return process_of(self.rt.catalogue, container, self.started_env(pod, container) if pod else None)
        except ProcessError:
            return None

    def started_env(self, pod: Obj, container: Obj) -> dict[str, str] | None:
        name = str(container.get("name"))
        return self.rt.env_at_start.get((pod_key(pod), name, self.rt.instance(pod, name)))

    def active_chaos(self) -> list[tuple[str, chaos.ChaosSpec]]:
        if self._chaos is None:
            self._chaos = chaos.active_chaos(self.view, self.rt.clock())
        return self._chaos

    def chaos_on(self, pod: Obj, container: str | None = None) -> list[tuple[str, chaos.ChaosSpec]]:
        m = meta(pod)
        out = []
        for key, spec in self.active_chaos():
            if not any(t.namespace == m.get("namespace") and t.name == m.get("name") for t in spec.targets):
                continue
            if container and spec.container_names and container not in spec.container_names:
                continue
            out.append((key, spec))
        return out

    def paused(self, pod: Obj, container: str) -> bool:
        return any(s.action == "pod-failure" for _, s in self.chaos_on(pod, container))

    def serving(self, pod: Obj, container: Obj) -> Process | None:
        """The process if the container is running, finished its start-up and is not paused; else None."""
        name = str(container.get("name"))
        if not is_running(pod, name) or self.paused(pod, name):
            return None
        proc = self.process(container, pod)
        if proc is None:
            return None
        if any(s.on_fail == "retry" for s in proc.program.startup):
            key = (pod_key(pod), name, self.rt.instance(pod, name))
            if key not in self.rt.serving:
                return None
        return proc

    def mongo_state(self, pod: Obj, container: Obj) -> MongoState:
        return self.rt.mongo.setdefault(self.storage_key(pod, container, "/data/db"), MongoState())

    def storage_key(self, pod: Obj, container: Obj, path: str) -> str:
        """The identity of the storage behind ``path``: a hostPath, a PV, an emptyDir of this pod or the container."""
        m = meta(pod)
        ns = m.get("namespace")
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            mp = str(mount.get("mountPath", "")).rstrip("/")
            if not mp or not (path == mp or path.startswith(mp + "/")):
                continue
            vol = volumes.get(mount.get("name")) or {}
            if "hostPath" in vol:
                return f"hostpath:{vol['hostPath'].get('path')}"
            if "persistentVolumeClaim" in vol:
                pvc = self.view.get("PersistentVolumeClaim", ns, vol["persistentVolumeClaim"].get("claimName"))
                pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
                pv = self.view.get("PersistentVolume", None, pv_name) if pv_name else None
                if pv and "hostPath" in (pv.get("spec") or {}):
                    return f"hostpath:{pv['spec']['hostPath'].get('path')}"
                if pv_name:
                    return f"pv:{pv_name}"
            return f"pod:{pod_key(pod)}:{mount.get('name')}"
        return f"container:{pod_key(pod)}:{container.get('name')}:{self.rt.instance(pod, str(container.get('name')))}"

    # -- network -----------------------------------------------------------------------------------------------
    def service(self, namespace: str, host: str) -> Obj | None:
        parts = host.split(".")
        if len(parts) == 1:
            return self.view.get("Service", namespace, parts[0])
        if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
            return self.view.get("Service", parts[1], parts[0])
        return None

    def connect(self, src: Obj | None, namespace: str, address: str) -> Connection:
        address = address.split("://", 1)[-1].split("/", 1)[0]  # http://email:8080/path -> email:8080
        host, _, port_s = address.rpartition(":")
        try:
            port = int(port_s)
        except ValueError:
            return Refused("nxdomain", address, 0, "missing port in address")
        if src is not None and host in ("localhost", "127.0.0.1", "::1") and meta(src).get("uid"):
            return self.connect_pod(src, src, port, host)  # the pod's own network namespace
        fqdn, why = dns.resolve(self.view, src, host, namespace)
        svc = self.service(namespace, fqdn) if fqdn else None
        if svc is None:
            return Refused("nxdomain", host, port, why or f"lookup {host} on 10.96.0.10:53: no such host")
        sspec = svc.get("spec") or {}
        tcp = [p for p in sspec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        sport = next((p for p in tcp if int(p.get("port", 0)) == port), None)
        if sport is None:
            return Refused("timeout", host, port, f"dial tcp {sspec.get('clusterIP', '10.96.0.1')}:{port}: i/o timeout")
        selector = sspec.get("selector") or {}
        if not selector:
            return Refused("refused", host, port, "connection refused")
        svc_ns = str(meta(svc).get("namespace"))
        candidates = [
            p
            for p in self.view.list("Pod", svc_ns, selector)
            if pod_ready(p) and (p.get("status") or {}).get("podIP") and not meta(p).get("deletionTimestamp")
        ]
        if not candidates:
            return Refused("refused", host, port, "connection refused")
        node = ((src or {}).get("spec") or {}).get("nodeName")
        if sspec.get("internalTrafficPolicy") == "Local" and node:
            # kube-proxy routes in-cluster traffic only to endpoints on the caller's node; with none it drops it
            candidates = [p for p in candidates if (p.get("spec") or {}).get("nodeName") == node]
            if not candidates:
                ip = sspec.get("clusterIP", "10.96.0.1")
                return Refused("timeout", host, port, f"dial tcp {ip}:{port}: i/o timeout")
        target = self.rt.rng.choice(candidates)
        tport = self._target_port(sport.get("targetPort", port), target)
        return self._land(src, target, tport, host, port, via=str(meta(svc).get("name")))

    def connect_pod(self, src: Obj | None, target: Obj, port: int, host: str) -> Connection:
        return self._land(src, target, port, host, port, via=None)

    def _target_port(self, target_port: Any, pod: Obj) -> int:
        if isinstance(target_port, int) or str(target_port).isdigit():
            return int(target_port)
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target_port:
                    return int(p.get("containerPort", 0))
        return -1

    def _land(self, src: Obj | None, target: Obj, tport: int, host: str, port: int, via: str | None) -> Connection:
        ip = (target.get("status") or {}).get("podIP", "10.244.0.1")
        if not self.policy_allows(src, target, tport):
            return Refused("timeout", host, port, f"dial tcp {ip}:{tport}: i/o timeout", target)
        if src is not None and not self._source_port(src, ip, tport):
            return Refused(
                "refused", host, port, f"dial tcp {ip}:{tport}: connect: cannot assign requested address", target
            )
        for c in (target.get("spec") or {}).get("containers") or []:
            proc = self.serving(target, c)
            if proc and tport in proc.ports():
                return Landed(target, c, proc, tport, via)
        return Refused("refused", host, port, f"dial tcp {ip}:{tport}: connect: connection refused", target)

    def _source_port(self, src: Obj, ip: str, port: int) -> bool:
        """Whether ``src`` has an ephemeral port for a connection to ip:port. The clients keep their connections
        (gRPC channels, pools), so each destination holds one port from ``net.ipv4.ip_local_port_range`` for the
        pod's life; a destination past the range's size gets EADDRNOTAVAIL."""
        sysctls = ((src.get("spec") or {}).get("securityContext") or {}).get("sysctls") or []
        raw = next((x.get("value") for x in sysctls if x.get("name") == "net.ipv4.ip_local_port_range"), None)
        if not raw:
            return True
        try:
            low, high = (int(v) for v in str(raw).split())
        except ValueError:
            return True
        held = self.rt.source_ports.setdefault(pod_key(src), [])
        if (ip, port) in held:
            return True
        if len(held) >= max(high - low + 1, 0):
            return False
        held.append((ip, port))
        return True

    def consul_lookup(self, src: Obj, namespace: str, consul_address: str, name: str) -> Connection:
        """Consul service discovery: the registered, healthy instances of ``name`` in the namespace."""
        c = self.connect(src, namespace, consul_address)
        if isinstance(c, Refused):
            return Refused("unavailable", name, 0, f"consul: {c.detail}")
        instances: list[tuple[Obj, int]] = []
        for pod in self.view.list("Pod", namespace):
            for cont in (pod.get("spec") or {}).get("containers") or []:
                proc = self.serving(pod, cont)
                if proc and proc.program.registers == name and proc.ports() and (pod.get("status") or {}).get("podIP"):
                    instances.append((pod, proc.ports()[0]))
        if not instances:
            return Refused("unavailable", name, 0, "there is no address available")
        pod, port = self.rt.rng.choice(instances)
        return self.connect_pod(src, pod, port, name)

    # -- NetworkPolicy ------------------------------------------------------------------------------------------
    def policy_allows(self, src: Obj | None, dst: Obj, port: int) -> bool:
        dst_ns = str(meta(dst).get("namespace"))
        if not self._direction_allows("Ingress", dst, dst_ns, src, port):
            return False
        if src is None:
            return True
        return self._direction_allows("Egress", src, str(meta(src).get("namespace")), dst, port)

    def _direction_allows(self, direction: str, subject: Obj, ns: str, peer: Obj | None, port: int) -> bool:
        policies = [
            np
            for np in self.view.list("NetworkPolicy", ns)
            if label_selector_match((np.get("spec") or {}).get("podSelector") or {}, meta(subject).get("labels"))
            and direction in _policy_types(np)
        ]
        if not policies:
            return True
        key = "ingress" if direction == "Ingress" else "egress"
        peer_key = "from" if direction == "Ingress" else "to"
        for np in policies:
            for rule in (np.get("spec") or {}).get(key) or []:
                if not _ports_match(rule.get("ports"), port):
                    continue
                peers = rule.get(peer_key)
                if peers is None or any(self._peer_match(p, ns, peer) for p in peers):
                    return True
        return False

    def _peer_match(self, rule: dict[str, Any], policy_ns: str, peer: Obj | None) -> bool:
        if peer is None:
            return "ipBlock" in rule
        peer_ns = str(meta(peer).get("namespace"))
        if "namespaceSelector" in rule:
            ns_obj = self.view.get("Namespace", None, peer_ns) or {}
            ns_labels = {"kubernetes.io/metadata.name": peer_ns, **(meta(ns_obj).get("labels") or {})}
            if not label_selector_match(rule["namespaceSelector"], ns_labels):
                return False
        elif peer_ns != policy_ns:
            return False
        if "podSelector" in rule:
            return label_selector_match(rule["podSelector"], meta(peer).get("labels"))
        return "namespaceSelector" in rule


def _policy_types(np: Obj) -> list[str]:
    spec = np.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _ports_match(ports: list[dict[str, Any]] | None, port: int) -> bool:
    if not ports:
        return True
    return any(p.get("port") in (None, port, str(port)) for p in ports)
