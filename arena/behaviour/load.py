"""A state-driven load model for request filters: which processes have their CPU pinned by regex backtracking.

A process with a ``request_filter`` matches one query parameter of each request against the rule's regex. A regex
with a nested quantifier (a quantified group that itself contains a quantifier, ``^([a-zA-Z]+)*$``) backtracks
exponentially on a long input it does not match: one such request keeps a CPU busy for longer than any client waits,
so while a client keeps sending them (an ``http_loop`` process of a running pod that reaches this process), the
process is saturated and every request it receives times out. A disabled rule, or a regex without nested
quantifiers, evaluates in linear time and costs nothing noticeable. Nothing here runs the regex on the long input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import SplitResult, parse_qs, urlsplit

from arena.apps.catalogue import expand
from arena.behaviour.world import Landed, Process, ProcessError, World, is_running, meta, process_of
from arena.hooks import Obj

_NESTED = re.compile(r"\((?:[^()\\]|\\.)*[+*](?:[^()\\]|\\.)*\)(?:[+*]|\{\d+,\d*\})")
LONG_INPUT = 64
"""Inputs at least this long make exponential backtracking last longer than any client's timeout."""


def nested_quantifier(regex: str) -> bool:
    """Whether ``regex`` has a quantified group containing a quantifier (the catastrophic-backtracking shape)."""
    return bool(_NESTED.search(regex))


def backtracks(regex: str, value: str) -> bool:
    """Whether matching ``value`` against ``regex`` backtracks exponentially: a nested quantifier, a long input, and
    no match (decided on a short sample of the input: its first characters and its last one, cheap to evaluate)."""
    if len(value) < LONG_INPUT or not nested_quantifier(regex):
        return False
    try:
        pattern = re.compile(regex)
    except re.error:
        return False
    return pattern.fullmatch(value[:12] + value[-1]) is None


def filter_active(conn: Landed) -> tuple[str, str] | None:
    """The (regex, parameter) of the landed process's request filter when the rule is enabled, else None."""
    rf = conn.process.program.request_filter
    if rf is None:
        return None
    if expand(rf.enabled, conn.process.config).strip().lower() == "false":
        return None
    regex = expand(rf.regex, conn.process.config)
    return None if regex.startswith("{") else (regex, rf.param)


def saturated(world: World, conn: Landed) -> str | None:
    """Why the landed process's CPU is pinned (a client that keeps sending it backtracking inputs), or None."""
    active = filter_active(conn)
    if active is None:
        return None
    regex, param = active
    target_uid = meta(conn.pod).get("uid")
    for pod, _proc, parts in client_loops(world):
        values = parse_qs(parts.query, keep_blank_values=True).get(param) or []
        if not any(backtracks(regex, v) for v in values):
            continue
        reached = world.connect(pod, str(meta(pod).get("namespace")), parts.netloc)
        if isinstance(reached, Landed) and meta(reached.pod).get("uid") == target_uid:
            return f"{meta(pod).get('name')} sends inputs that make {regex!r} backtrack"
    return None


def client_loops(world: World) -> Iterator[tuple[Obj, Process, SplitResult]]:
    """Every HTTP client loop (``watch -n S wget URL``) of a running container: its pod, its process and the URL it
    requests (one with a host)."""
    for pod in world.view.list("Pod"):
        if (pod.get("status") or {}).get("phase") != "Running" or meta(pod).get("deletionTimestamp"):
            continue
        for c in (pod.get("spec") or {}).get("containers") or []:
            if not is_running(pod, str(c.get("name"))):
                continue
            try:
                proc = process_of(world.rt.catalogue, c)
            except ProcessError:
                continue
            loop = proc.program.http_loop
            if loop is None:
                continue
            url = loop_arg(proc, loop.url)
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.netloc:
                yield pod, proc, parts


def loop_arg(proc: Process, template: str) -> str:
    """``{arg:-1}``: the last argument; ``{arg:-n}``: the value of flag -n; anything else as written."""
    if template == "{arg:-1}":
        return proc.args[-1] if proc.args else ""
    if template.startswith("{arg:") and template.endswith("}"):
        return proc.arg_value(template[5:-1]) or ""
    return expand(template, proc.config)
