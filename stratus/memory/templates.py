"""Log lines to templates: mask what varies, then let drain3 merge lines that differ in a few tokens.

A signature must compare equal for the same failure on another pod, another day or another address, so the
variable parts of a line (pod-name hashes, IPs, UUIDs, hex ids, numbers, timestamps) are masked first, by these
rules rather than drain3's (Kubernetes generated names need their own). What still varies between lines of one kind
(a user name, a path) is found by drain3's tree: the differing positions become ``<*>``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

WILDCARD = "<*>"

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TS>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<UUID>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<IP>"),
    (re.compile(r"\b[0-9a-f:]*:[0-9a-f:]*:[0-9a-f:]+\b", re.I), "<IP>"),  # IPv6
    # Kubernetes generated names: <deployment>-<template hash>-<5 chars>, <statefulset/job>-<5 chars>
    (re.compile(r"\b([a-z][a-z0-9-]*?)-[a-f0-9]{6,10}-[a-z0-9]{5}\b"), r"\1-<POD>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<HEX>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<HEX>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s|m|h|us|ns|b|kb|mb|gb|ki|mi|gi|%)?\b", re.I), "<NUM>"),
)


def mask(line: str) -> str:
    """The line with its variable parts replaced by placeholders, whitespace collapsed."""
    out = line.strip()
    for pattern, replacement in _MASKS:
        out = pattern.sub(replacement, out)
    return " ".join(out.split())


def template_id(template: str) -> str:
    return hashlib.sha1(template.encode()).hexdigest()[:12]


def mine(lines: list[str], limit: int = 20) -> list[str]:
    """The ``limit`` most frequent templates of ``lines`` (a fresh miner: the result depends on ``lines`` only)."""
    from drain3.drain import Drain  # the tree alone: no persistence, no per-miner log line

    drain = Drain(sim_th=0.4, depth=4, max_clusters=1000)
    for line in lines:
        masked = mask(line)[:1000]
        if masked:
            drain.add_log_message(masked)
    counts: Counter[str] = Counter()
    for cluster in drain.clusters:
        counts[cluster.get_template()] += cluster.size
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
