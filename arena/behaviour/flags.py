"""Feature flags: what a flag service (flagd) serves, and what a service's OpenFeature client gets when it asks.

Why it is shaped this way: the flag state lives where the real demo keeps it, a JSON flag file in a ConfigMap that
the flag service reads from the path of its ``--uri file:...`` argument. What the process sees at that path follows
the kubelet's volume semantics, not the ConfigMap's current content:

- a ConfigMap volume mounted as a directory is re-projected by the kubelet's periodic sync (``Runtime.volume_sync``,
  a minute on a real node); flagd watches the file and serves the new document once it lands;
- a ``subPath`` mount is a copy made when the container started: it never changes until the container restarts;
- any other volume (or no volume) holds no flag file: the service serves no flags.

A client evaluates a flag by connecting to ``FLAGD_HOST:FLAGD_PORT`` from its own pod (DNS, Service, endpoints,
NetworkPolicies). When the flag service is unreachable, the file does not parse, or the flag is missing or
``DISABLED``, the client gets the default its code passes, as the OpenFeature SDKs do. A flag's value is its
``defaultVariant``'s value (the demo's flags have no targeting rules).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from arena.behaviour.world import Process, Refused, World, meta, pod_key
from arena.hooks import Obj


def flag_file(proc: Process) -> str | None:
    """The absolute path of the flag file the service reads (``--uri file:./etc/flagd/x.json`` -> /etc/flagd/x.json)."""
    uri = proc.arg_value("--uri", "-f")
    if not uri or not uri.startswith("file:"):
        return None
    path = uri[len("file:") :]
    if path.startswith("./"):
        path = path[1:]
    return path if path.startswith("/") else "/" + path


def projected_file(world: World, pod: Obj, container: Obj, path: str) -> str | None:
    """The content of ``path`` inside the container, when a ConfigMap volume provides it; None when absent."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: len(str(m.get("mountPath") or "")), reverse=True)
    for mount in mounts:
        mp = str(mount.get("mountPath") or "").rstrip("/")
        sub = mount.get("subPath")
        if sub:
            if path != mp:
                continue
            key = str(sub)
        elif path.startswith(mp + "/"):
            key = path[len(mp) + 1 :]
        else:
            continue
        vol = volumes.get(mount.get("name")) or {}
        ref = vol.get("configMap")
        if ref is None:
            return None
        items = {str(i.get("path")): str(i.get("key")) for i in ref.get("items") or []}
        if items:
            if key not in items:
                return None
            key = items[key]
        name = str(ref.get("name") or "")
        if sub:  # a copy made at container start: frozen for this instance
            cname = str(container.get("name"))
            snap = (pod_key(pod), str(mount.get("name")), cname, str(world.rt.instance(pod, cname)))
            data = _snapshot(world, pod, name, snap, refresh=False)
        else:
            data = _snapshot(world, pod, name, (pod_key(pod), str(mount.get("name"))), refresh=True)
        return data.get(key)
    return None


def _snapshot(world: World, pod: Obj, cm_name: str, key: tuple[str, ...], refresh: bool) -> dict[str, str]:
    now = world.rt.clock()
    held = world.rt.volumes.get(key)
    if held is not None and (not refresh or now - held[1] < world.rt.volume_sync):
        return held[0]
    cm = world.view.get("ConfigMap", meta(pod).get("namespace"), cm_name)
    data = {str(k): str(v) for k, v in ((cm or {}).get("data") or {}).items()}
    if cm is None and held is not None:
        data = held[0]  # the kubelet keeps the last projection of a ConfigMap that disappeared
    world.rt.volumes[key] = (data, now)
    return data


def served_flags(world: World, pod: Obj, container: Obj, proc: Process) -> dict[str, Any]:
    """Flag key -> value, as this flag-service container serves them now (logs a line when the document changes)."""
    path = flag_file(proc)
    raw = projected_file(world, pod, container, path) if path else None
    name = str(container.get("name"))
    instance = (pod_key(pod), name, world.rt.instance(pod, name))
    digest = hashlib.sha1((raw or "").encode()).hexdigest()
    previous = world.rt.flag_sets.get(instance)
    flags: dict[str, Any] = {}
    error = None
    if raw is None:
        error = f"open {path}: no such file or directory"
    else:
        try:
            doc = json.loads(raw)
            for key, spec in dict(doc.get("flags") or {}).items():
                if not isinstance(spec, dict) or spec.get("state", "ENABLED") != "ENABLED":
                    continue
                variants = spec.get("variants") or {}
                if spec.get("defaultVariant") in variants:
                    flags[str(key)] = variants[spec["defaultVariant"]]
        except (ValueError, AttributeError, TypeError) as e:
            error = f"unable to parse flag configuration {path}: {e}"
            flags = {}
    if previous != digest:
        world.rt.flag_sets[instance] = digest
        if error:
            line = f'{{"level":"error","msg":"{_esc(error)}"}}'
        else:
            on = sorted(k for k, v in flags.items() if truthy(v))
            verb = "loaded" if previous is None else "reloaded after a change of"
            line = f'{{"level":"info","msg":"{verb} {path}: {len(flags)} flags, on: {", ".join(on) or "none"}"}}'
        world.rt.log(pod, name, line)
    return flags


def evaluate(world: World, pod: Obj, proc: Process, key: str, default: Any = False) -> Any:
    """The value ``key`` has for a client process in ``pod`` (its code's ``default`` when it cannot get one)."""
    host = proc.config.get("FLAGD_HOST")
    if not host:
        return default  # no provider configured: the SDK's no-op provider returns the default
    port = proc.config.get("FLAGD_PORT") or "8013"
    conn = world.connect(pod, str(meta(pod).get("namespace")), f"{host}:{port}")
    if isinstance(conn, Refused) or not conn.process.program.serves_flags:
        return default
    return served_flags(world, conn.pod, conn.container, conn.process).get(key, default)


def truthy(value: Any) -> bool:
    """A flag is on when it is true or a number above 0 (the demo's numeric flags use 0 for off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return False


def number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return 0.0


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
