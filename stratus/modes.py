"""Operator modes, per scope: how far Stratus may go on its own.

- ``auto``: detect, diagnose, and run transactions under TNR (the default).
- ``approve``: each transaction's plan is made with every write dry-run on the server, then waits for a human; an
  approved plan runs under TNR like any other transaction (checkpoint, journal, validation, undo on abort).
- ``shadow``: plans are made and dry-run the same way, recorded as what Stratus would have done, never executed.
- ``observe``: detection and diagnosis only; no mitigation is ever requested.

The modes are ordered by how much they hold back. A transaction whose lease is wider than its incident's scope
(a cluster-scoped write) runs under the stricter of the two scopes' modes, so widening a lease never loosens a mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Mode = Literal["auto", "approve", "shadow", "observe"]
MODES: tuple[Mode, ...] = ("auto", "approve", "shadow", "observe")
"""From the least to the most restrictive."""


def mode_of(scope: str, default: Mode, modes: Mapping[str, Mode]) -> Mode:
    """The mode set for ``scope`` (a namespace, or ``cluster``), else ``default``."""
    return modes.get(scope, default)


def strictest(*modes: Mode) -> Mode:
    return max(modes, key=MODES.index)


def mode_for(scope: str, lease_scope: str | None, default: Mode, modes: Mapping[str, Mode]) -> Mode:
    """The mode an incident on ``scope`` runs under when its transactions hold a lease on ``lease_scope``."""
    own = mode_of(scope, default, modes)
    if lease_scope and lease_scope != scope:
        return strictest(own, mode_of(lease_scope, default, modes))
    return own
