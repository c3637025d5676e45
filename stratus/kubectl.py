"""The ``kubectl`` tool: parse a kubectl command line into typed actions (after confinement); render kubectl output.

Nothing here runs a shell or a kubectl binary: the line is checked (``stratus.confinement``), split with shlex, and
mapped onto the same typed actions an LLM tool call produces, so one gateway path executes both. Writes on selectors
are refused rather than expanded, because each write needs the pre-image of the one object it changes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stratus import bounds
from stratus.actions import ACTION_ADAPTER, Action, resolve_kind
from stratus.confinement import Refusal, Role, confine_action, confine_command, find_subcommand
from stratus.dataplane import describe_catalogue

SUPPORTED = (
    "Supported commands: reads: kubectl get, describe, logs, events (or get events), rollout status, "
    "rollout history; writes: kubectl scale, patch, set image, set env, rollout restart, rollout undo, delete, "
    "apply -f FILE, create -f FILE, replace -f FILE, cordon, uncordon, exec POD -- CMD (with a declared inverse)."
)

_VALUE_FLAGS: dict[str, str] = {
    "-n": "namespace",
    "--namespace": "namespace",
    "-o": "output",
    "--output": "output",
    "-l": "selector",
    "--selector": "selector",
    "--field-selector": "field_selector",
    "-c": "container",
    "--container": "container",
    "--tail": "tail",
    "--type": "type",
    "--replicas": "replicas",
    "--to-revision": "to_revision",
    "--revision": "revision",
    "-f": "filename",
    "--filename": "filename",
    "--for": "for",
    "-e": "env",
    "--env": "env",
    "--patch": "patch",
    "--patch-file": "patch_file",
    "--sort-by": "sort_by",
    "--timeout": "timeout",
}
_BOOL_FLAGS: dict[str, str] = {
    "-A": "all_namespaces",
    "--all-namespaces": "all_namespaces",
    "--previous": "previous",
    "--no-headers": "no_headers",
    "--show-labels": "show_labels",
    "--watch": "watch",
}
_READ_OPTS = {"namespace", "all_namespaces"}
_ALLOWED: dict[str, set[str]] = {
    "get": _READ_OPTS | {"output", "selector", "field_selector", "no_headers", "show_labels", "sort_by", "watch"},
    "describe": {"namespace", "selector"},
    "logs": {"namespace", "container", "tail", "previous"},
    "events": _READ_OPTS | {"for", "field_selector", "output"},
    "scale": {"namespace", "replicas"},
    "patch": {"namespace", "patch", "patch_file", "type"},
    "set": {"namespace", "container", "env"},
    "rollout": {"namespace", "to_revision", "revision", "watch", "timeout"},
    "delete": {"namespace"},
    "apply": {"namespace", "filename"},
    "create": {"namespace", "filename"},
    "replace": {"namespace", "filename"},
    "cordon": set(),
    "uncordon": set(),
    "exec": {"namespace", "container"},
}
_OUTPUTS = {"yaml", "json", "wide", "name"}
_ALL_KINDS = ("Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet")


class _Line:
    """A tokenised command line: sub-command, positionals, flags (each flag may repeat), and the words after --."""

    def __init__(self, tokens: list[str]) -> None:
        head: list[str] = tokens
        after: list[str] = []
        if "--" in tokens:
            i = tokens.index("--")
            head, after = tokens[:i], tokens[i + 1 :]
        idx, self.sub = find_subcommand(head)
        self.after = after
        self.positionals: list[str] = []
        self.flags: dict[str, list[str]] = {}
        self.raw_flags: dict[str, str] = {}
        i = 1
        while i < len(head):
            tok = head[i]
            i += 1
            if i - 1 == idx:
                continue
            if not tok.startswith("-") or tok == "-":
                self.positionals.append(tok)
                continue
            name, eq, value = tok.partition("=")
            if self.sub == "patch" and name == "-p":
                name = "--patch"
            if self.sub == "logs" and name == "-p":
                name = "--previous"
            if not eq and name[:2] in ("-n", "-o") and len(name) > 2 and not name.startswith("--"):
                name, value, eq = name[:2], name[2:], "="
            if name in _VALUE_FLAGS:
                if not eq:
                    if i >= len(head):
                        raise Refusal(f"Flag {name} needs a value. {SUPPORTED}", rule="syntax")
                    value = head[i]
                    i += 1
                key = _VALUE_FLAGS[name]
            elif name in _BOOL_FLAGS:
                key = _BOOL_FLAGS[name]
                value = value if eq else "true"
            else:
                raise Refusal(f"Flag {name} is not supported for kubectl {self.sub}.{self._allowed_text()}", "syntax")
            self.flags.setdefault(key, []).append(value)
            self.raw_flags.setdefault(key, name)
        allowed = _ALLOWED.get(self.sub)
        if allowed is not None:
            for key in self.flags:
                if key not in allowed:
                    raise Refusal(
                        f"Flag {self.raw_flags[key]} is not supported for kubectl {self.sub}.{self._allowed_text()}",
                        rule="unsupported",
                    )

    def _allowed_text(self) -> str:
        allowed = _ALLOWED.get(self.sub, set())
        names = sorted({flag for flag, key in {**_VALUE_FLAGS, **_BOOL_FLAGS}.items() if key in allowed})
        return f" Supported flags: {', '.join(names)}." if names else " It takes no flags."

    def one(self, key: str) -> str | None:
        values = self.flags.get(key)
        return values[-1] if values else None

    def bool(self, key: str) -> bool:
        value = self.one(key)
        return value is not None and value.lower() not in ("false", "0")


def _kind(name: str) -> str:
    try:
        return resolve_kind(name)
    except ValueError as exc:
        raise Refusal(str(exc), rule="unsupported") from exc


def _resources(positionals: Sequence[str], verb: str) -> list[tuple[str, str | None]]:
    """``type/name ...`` or ``type[,type] [name ...]`` -> (Kind, name or None) pairs."""
    if not positionals:
        raise Refusal(f"kubectl {verb} needs a resource, e.g. kubectl {verb} deployment NAME. {SUPPORTED}", "syntax")
    if "/" in positionals[0]:
        out: list[tuple[str, str | None]] = []
        for item in positionals:
            kind, sep, name = item.partition("/")
            if not sep or not name:
                raise Refusal(f"Cannot mix TYPE/NAME and TYPE NAME forms: {item!r}.", rule="syntax")
            out.append((_kind(kind), name))
        return out
    kinds = [k for k in positionals[0].split(",") if k]
    names = list(positionals[1:])
    if len(kinds) > 1 and names:
        raise Refusal("Give names with one resource type at a time, or use TYPE/NAME forms.", rule="syntax")
    if kinds == ["all"]:
        return [(k, None) for k in _ALL_KINDS]
    if not names:
        return [(_kind(k), None) for k in kinds]
    kind = _kind(kinds[0])
    return [(kind, n) for n in names]


def _named(positionals: Sequence[str], verb: str) -> list[tuple[str, str]]:
    pairs = _resources(positionals, verb)
    out: list[tuple[str, str]] = []
    for kind, name in pairs:
        if name is None:
            raise Refusal(
                f"kubectl {verb} needs the name of each object (e.g. kubectl {verb} {kind.lower()}/NAME); "
                "writes on every object of a kind are not supported: each write needs its own pre-image.",
                rule="selector_write" if verb not in ("logs", "exec") else "syntax",
            )
        out.append((kind, name))
    return out


def _output(line: _Line) -> str:
    out = line.one("output") or "table"
    if out not in _OUTPUTS and out != "table":
        raise Refusal(
            f"Output format -o {out} is not supported. Use -o yaml, -o json, -o wide or -o name, "
            "and read the fields you need.",
            rule="unsupported",
        )
    return out


def _load_yaml(text: str, what: str) -> Any:
    try:
        return bounds.load_yaml(text, what)
    except yaml.YAMLError as exc:
        raise Refusal(f"{what} is not valid JSON or YAML: {exc}", rule="syntax") from exc


def _manifests(line: _Line, workdir: Path | None) -> list[dict[str, Any]]:
    files = line.flags.get("filename") or []
    if not files:
        raise Refusal(
            f"kubectl {line.sub} needs -f FILE (a YAML or JSON manifest). Generators such as "
            f"kubectl {line.sub} deployment NAME --image=... are not supported; write the manifest instead.",
            rule="unsupported",
        )
    docs: list[dict[str, Any]] = []
    for name in files:
        text = bounds.read_file(name, workdir)
        try:
            loaded = bounds.load_yaml_all(text, f"Manifest file {name}")
        except yaml.YAMLError as exc:
            raise Refusal(f"Manifest file {name} is not valid YAML: {exc}", rule="syntax") from exc
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise Refusal(f"Manifest file {name} holds a {type(doc).__name__}, not an object.", rule="syntax")
            if doc.get("kind") == "List":
                docs.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
            else:
                docs.append(doc)
    if not docs:
        raise Refusal(f"No objects found in {', '.join(files)}.", rule="syntax")
    return docs


def _key_values(items: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Refusal(f"Expected NAME=VALUE for {what}, got {item!r}.", rule="syntax")
        out[key] = value
    return out


def _parse(line: _Line, namespace: str, workdir: Path | None, exec_inverse: list[str] | None) -> list[dict[str, Any]]:
    sub, pos = line.sub, line.positionals
    all_ns = line.bool("all_namespaces")
    ns = line.one("namespace") or namespace
    if sub == "get":
        out: list[dict[str, Any]] = []
        for kind, name in _resources(pos, "get"):
            if kind == "Event" and name is None:
                out.append(
                    {
                        "verb": "events",
                        "namespace": None if all_ns else ns,
                        "all_namespaces": all_ns,
                        "field_selector": line.one("field_selector"),
                    }
                )
            elif name is None:
                out.append(
                    {
                        "verb": "list",
                        "kind": kind,
                        "namespace": None if all_ns else ns,
                        "all_namespaces": all_ns,
                        "label_selector": line.one("selector"),
                        "field_selector": line.one("field_selector"),
                        "output": _output(line),
                    }
                )
            else:
                out.append({"verb": "get", "kind": kind, "namespace": ns, "name": name, "output": _output(line)})
        return out
    if sub == "describe":
        return [
            {"verb": "describe", "kind": kind, "namespace": ns, "name": name, "label_selector": line.one("selector")}
            for kind, name in _resources(pos, "describe")
        ]
    if sub == "logs":
        if not pos:
            raise Refusal(
                "kubectl logs needs a pod: kubectl logs POD [-c CONTAINER] [--tail=N] [--previous].", "syntax"
            )
        kind, _, name = pos[0].rpartition("/")
        container = line.one("container") or (pos[1] if len(pos) > 1 else None)
        tail = line.one("tail")
        try:
            tail_n = None if tail is None or tail == "-1" else int(tail)
        except ValueError as exc:
            raise Refusal(f"--tail takes a number of lines, not {tail!r}.", rule="syntax") from exc
        return [
            {
                "verb": "logs",
                "kind": _kind(kind) if kind else "Pod",
                "namespace": ns,
                "name": name,
                "container": container,
                "tail": tail_n,
                "previous": line.bool("previous"),
            }
        ]
    if sub == "events":
        target = line.one("for")
        for_kind = for_name = None
        if target:
            k, sep, n = target.partition("/")
            if not sep:
                raise Refusal("--for takes KIND/NAME, e.g. --for pod/web-0.", rule="syntax")
            for_kind, for_name = _kind(k), n
        return [
            {
                "verb": "events",
                "namespace": None if all_ns else ns,
                "all_namespaces": all_ns,
                "for_kind": for_kind,
                "for_name": for_name,
                "field_selector": line.one("field_selector"),
            }
        ]
    if sub == "scale":
        replicas = line.one("replicas")
        if replicas is None or not replicas.isdigit():
            raise Refusal("kubectl scale needs --replicas=N with N >= 0.", rule="syntax")
        return [
            {"verb": "scale", "kind": k, "namespace": ns, "name": n, "replicas": int(replicas)}
            for k, n in _named(pos, "scale")
        ]
    if sub == "patch":
        text = line.one("patch")
        if text is None and line.one("patch_file"):
            text = bounds.read_file(str(line.one("patch_file")), workdir, "Patch file")
        if text is None:
            raise Refusal(
                "kubectl patch needs -p PATCH (JSON or YAML) and optionally --type strategic|merge|json.", "syntax"
            )
        body = _load_yaml(text, "The patch")
        ptype = line.one("type") or "strategic"
        return [
            {"verb": "patch", "kind": k, "namespace": ns, "name": n, "patch_type": ptype, "patch": body}
            for k, n in _named(pos, "patch")
        ]
    if sub == "set":
        what = pos[0] if pos else ""
        rest = pos[1:]
        if what == "image":
            targets = [p for p in rest if "=" not in p]
            images = _key_values([p for p in rest if "=" in p], "set image (CONTAINER=IMAGE)")
            if not images:
                raise Refusal(
                    "kubectl set image needs CONTAINER=IMAGE, e.g. set image deploy/web app=web:1.2.", "syntax"
                )
            return [
                {"verb": "set_image", "kind": k, "namespace": ns, "name": n, "images": images}
                for k, n in _named(targets, "set image")
            ]
        if what == "env":
            targets = [p for p in rest if "=" not in p and not p.endswith("-")]
            env = _key_values([p for p in rest if "=" in p] + (line.flags.get("env") or []), "set env (NAME=VALUE)")
            unset = [p[:-1] for p in rest if p.endswith("-") and "=" not in p]
            return [
                {
                    "verb": "set_env",
                    "kind": k,
                    "namespace": ns,
                    "name": n,
                    "container": line.one("container"),
                    "env": env,
                    "unset": unset,
                }
                for k, n in _named(targets, "set env")
            ]
        raise Refusal(f"kubectl set {what} is not supported; use set image or set env. {SUPPORTED}", "unsupported")
    if sub == "rollout":
        what = pos[0] if pos else ""
        verbs = {"restart": "rollout_restart", "undo": "rollout_undo", "status": "rollout_status"}
        verbs["history"] = "rollout_history"
        if what not in verbs:
            raise Refusal(
                f"kubectl rollout {what} is not supported; use restart, undo, status or history.", "unsupported"
            )
        items: list[dict[str, Any]] = []
        for k, n in _named(pos[1:], f"rollout {what}"):
            item: dict[str, Any] = {"verb": verbs[what], "kind": k, "namespace": ns, "name": n}
            if what == "undo" and line.one("to_revision") not in (None, "0"):
                item["to_revision"] = line.one("to_revision")
            items.append(item)
        return items
    if sub == "delete":
        return [{"verb": "delete", "kind": k, "namespace": ns, "name": n} for k, n in _named(pos, "delete")]
    if sub in ("apply", "create", "replace"):
        if pos:
            raise Refusal(
                f"kubectl {sub} {' '.join(pos)} is not supported: use kubectl {sub} -f FILE with a manifest.",
                rule="unsupported",
            )
        return [{"verb": sub, "namespace": ns, "manifest": m} for m in _manifests(line, workdir)]
    if sub in ("cordon", "uncordon"):
        pairs = [(_kind(p.partition("/")[0]), p.partition("/")[2]) if "/" in p else ("Node", p) for p in pos]
        if not pairs:
            raise Refusal(f"kubectl {sub} needs a node name.", rule="syntax")
        return [{"verb": sub, "kind": k, "name": n} for k, n in pairs]
    if sub == "exec":
        del exec_inverse  # a declared inverse no longer makes a free command runnable
        raise Refusal(
            "Command refused: kubectl exec runs a free command inside a container, which no dry run, pre-image or "
            "digest can see, so Stratus never runs one. Use the exec action with a data-plane catalogue operation "
            f"instead: {describe_catalogue()}.",
            rule="dataplane",
        )
    what = f"kubectl {sub}" if sub else "kubectl without a sub-command"
    raise Refusal(f"Unsupported command: {what}. {SUPPORTED}", rule="unsupported")


def parse_command(
    line: str,
    *,
    role: Role = "read",
    namespace: str = "default",
    workdir: Path | None = None,
    exec_inverse: list[str] | None = None,
) -> list[Action]:
    """Confine and parse one kubectl command line into typed actions (several for multi-object commands).

    ``namespace`` is used when the line has no ``-n``; ``workdir`` resolves relative ``-f`` paths; ``exec_inverse``
    is the declared inverse of an ``exec`` command (without it an exec is refused). Raises ``Refusal``.
    """
    tokens = confine_command(line, role)
    parsed = _Line(tokens)
    if role != "write" and (parsed.sub in ("apply", "create", "replace") or parsed.one("patch_file")):
        # Refused before any file is read: a read-only agent has no reason to make the gateway read one.
        raise Refusal(
            f"Write operation '{parsed.sub}' refused: this agent has a read-only role. "
            "Report the change you recommend instead; only the mitigator writes, under a lease.",
            rule="read_only",
        )
    actions: list[Action] = []
    for data in _parse(parsed, namespace, workdir, exec_inverse):
        try:
            action = _build(data)
        except ValidationError as exc:
            reasons = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
            raise Refusal(f"Command refused: {reasons}.", rule="syntax") from exc
        confine_action(action, role)
        actions.append(action)
    return actions


def _build(data: dict[str, Any]) -> Action:
    return ACTION_ADAPTER.validate_python({k: v for k, v in data.items() if v is not None})


# --- output: what kubectl would print -------------------------------------------------------------------------


def _age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    s = max(0, int((now - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _pod_status(pod: dict[str, Any]) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("reason")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state:
            term = state["terminated"]
            return str(term.get("reason") or f"ExitCode:{term.get('exitCode')}")
    return str(reason or status.get("phase") or "Unknown")


def _ports(svc: dict[str, Any]) -> str:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _columns(kind: str, obj: dict[str, Any], wide: bool, now: datetime) -> list[tuple[str, str]]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    age = ("AGE", _age(meta.get("creationTimestamp"), now))
    cols: list[tuple[str, str]] = [("NAME", str(meta.get("name")))]
    if kind == "Pod":
        css = status.get("containerStatuses") or []
        total = len(spec.get("containers") or []) or len(css)
        ready = sum(1 for c in css if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in css)
        cols += [("READY", f"{ready}/{total}"), ("STATUS", _pod_status(obj)), ("RESTARTS", str(restarts)), age]
        if wide:
            cols += [("IP", str(status.get("podIP") or "<none>")), ("NODE", str(spec.get("nodeName") or "<none>"))]
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        want = spec.get("replicas", 1)
        cols.append(("READY", f"{status.get('readyReplicas') or 0}/{want}"))
        if kind == "Deployment":
            cols += [("UP-TO-DATE", str(status.get("updatedReplicas") or 0))]
            cols += [("AVAILABLE", str(status.get("availableReplicas") or 0))]
        if kind == "ReplicaSet":
            cols = [cols[0], ("DESIRED", str(want)), ("CURRENT", str(status.get("replicas") or 0)), cols[1]]
        cols.append(age)
        if wide:
            containers = (spec.get("template") or {}).get("spec", {}).get("containers") or []
            cols += [("CONTAINERS", ",".join(str(c.get("name")) for c in containers))]
            cols += [("IMAGES", ",".join(str(c.get("image")) for c in containers))]
    elif kind == "Service":
        cols += [("TYPE", str(spec.get("type", "ClusterIP"))), ("CLUSTER-IP", str(spec.get("clusterIP") or "<none>"))]
        ext = ",".join(
            i.get("ip") or i.get("hostname") or "" for i in (status.get("loadBalancer") or {}).get("ingress") or []
        )
        cols += [("EXTERNAL-IP", ext or "<none>"), ("PORT(S)", _ports(obj)), age]
        if wide:
            cols.append(("SELECTOR", ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>"))
    elif kind == "PersistentVolumeClaim":
        cap = (status.get("capacity") or {}).get("storage", "")
        modes = ",".join(_MODES.get(m, m) for m in spec.get("accessModes") or [])
        cols += [("STATUS", str(status.get("phase", "Pending"))), ("VOLUME", str(spec.get("volumeName") or ""))]
        cols += [("CAPACITY", cap), ("ACCESS MODES", modes), ("STORAGECLASS", str(spec.get("storageClassName") or ""))]
        cols.append(age)
    elif kind == "PersistentVolume":
        claim = spec.get("claimRef") or {}
        modes = ",".join(_MODES.get(m, m) for m in spec.get("accessModes") or [])
        cols += [("CAPACITY", str((spec.get("capacity") or {}).get("storage", ""))), ("ACCESS MODES", modes)]
        cols += [("RECLAIM POLICY", str(spec.get("persistentVolumeReclaimPolicy", "Retain")))]
        cols += [("STATUS", str(status.get("phase", "")))]
        cols += [("CLAIM", f"{claim.get('namespace')}/{claim.get('name')}" if claim else "")]
        cols += [("STORAGECLASS", str(spec.get("storageClassName") or "")), age]
    elif kind == "StorageClass":
        cols += [
            ("PROVISIONER", str(obj.get("provisioner"))),
            ("RECLAIMPOLICY", str(obj.get("reclaimPolicy", "Delete"))),
        ]
        cols += [("VOLUMEBINDINGMODE", str(obj.get("volumeBindingMode", "Immediate")))]
        cols += [("ALLOWVOLUMEEXPANSION", str(bool(obj.get("allowVolumeExpansion"))).lower()), age]
    elif kind == "Node":
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        state = "Ready" if conds.get("Ready") == "True" else "NotReady"
        if spec.get("unschedulable"):
            state += ",SchedulingDisabled"
        roles = [k.split("/", 1)[1] for k in meta.get("labels") or {} if k.startswith("node-role.kubernetes.io/")]
        version = str((status.get("nodeInfo") or {}).get("kubeletVersion", ""))
        cols += [("STATUS", state), ("ROLES", ",".join(roles) or "<none>"), age, ("VERSION", version)]
    elif kind == "Namespace":
        cols += [("STATUS", str(status.get("phase", "Active"))), age]
    elif kind == "ConfigMap":
        cols += [("DATA", str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {}))), age]
    elif kind == "Secret":
        cols += [("TYPE", str(obj.get("type", "Opaque"))), ("DATA", str(len(obj.get("data") or {}))), age]
    elif kind == "Endpoints":
        addrs = [
            f"{a.get('ip')}:{p.get('port')}"
            for s in obj.get("subsets") or []
            for a in s.get("addresses") or []
            for p in s.get("ports") or [{}]
        ]
        cols += [("ENDPOINTS", ",".join(addrs) or "<none>"), age]
    else:
        cols.append(age)
    return cols


_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _table(rows: list[list[tuple[str, str]]]) -> str:
    headers = [h for h, _ in rows[0]]
    cells = [headers] + [[v for _, v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def render_table(
    kind: str, objects: list[dict[str, Any]], *, wide: bool = False, namespace_column: bool = False, now: datetime
) -> str:
    """A kubectl-like table of objects of one kind."""
    if not objects:
        return "No resources found."
    rows = []
    for obj in objects:
        cols = _columns(kind, obj, wide, now)
        if namespace_column:
            cols.insert(0, ("NAMESPACE", str((obj.get("metadata") or {}).get("namespace") or "")))
        rows.append(cols)
    return _table(rows)


def render_events(events: list[dict[str, Any]], *, now: datetime, namespace_column: bool = False) -> str:
    """Events oldest first, like kubectl get events."""
    if not events:
        return "No events found."

    def when(e: dict[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp"))

    rows = []
    for e in sorted(events, key=when):
        inv = e.get("involvedObject") or e.get("regarding") or {}
        cols = [
            ("LAST SEEN", _age(when(e), now)),
            ("TYPE", str(e.get("type", ""))),
            ("REASON", str(e.get("reason", ""))),
            ("OBJECT", f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"),
            ("MESSAGE", str(e.get("message") or e.get("note") or "").strip()),
        ]
        if (e.get("count") or 1) > 1:
            cols[0] = ("LAST SEEN", f"{cols[0][1]} (x{e['count']})")
        if namespace_column:
            cols.insert(0, ("NAMESPACE", str((e.get("metadata") or {}).get("namespace") or "")))
        rows.append(cols)
    return _table(rows)


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without managedFields (what kubectl get -o yaml shows by default)."""
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def render_object(obj: dict[str, Any], output: str) -> str:
    clean = strip_server_fields(obj)
    if output == "json":
        return json.dumps(clean, indent=2, sort_keys=False)
    if output == "name":
        return f"{str(obj.get('kind', '')).lower()}/{(obj.get('metadata') or {}).get('name')}"
    return yaml.safe_dump(clean, sort_keys=False, default_flow_style=False).rstrip()


def render_describe(obj: dict[str, Any], events: list[dict[str, Any]], *, now: datetime) -> str:
    """A concise describe: identity, labels and annotations, spec and status as YAML, then the object's events."""
    meta = obj.get("metadata") or {}
    lines = [f"Name:         {meta.get('name')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:    {meta['namespace']}")
    lines.append(f"Kind:         {obj.get('kind')}")
    labels = ",".join(f"{k}={v}" for k, v in (meta.get("labels") or {}).items())
    lines.append(f"Labels:       {labels or '<none>'}")
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.endswith("last-applied-configuration")
    }
    lines.append(f"Annotations:  {', '.join(f'{k}: {v}' for k, v in annotations.items()) or '<none>'}")
    owners = ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or [])
    if owners:
        lines.append(f"Controlled By:  {owners}")
    lines.append(f"Created:      {meta.get('creationTimestamp')} ({_age(meta.get('creationTimestamp'), now)} ago)")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if body:
        lines.append(yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip())
    lines.append("Events:" + ("  <none>" if not events else ""))
    if events:
        lines.extend("  " + line for line in render_events(events, now=now).splitlines())
    return "\n".join(lines)
