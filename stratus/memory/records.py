"""What incident memory keeps of a closed incident: its signature, its diagnosis and every transaction."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stratus.contracts import Action, IncidentSignature, utcnow


class RememberedTransaction(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    tx_id: str = Field(description="The transaction.")
    attempt: int = Field(description="Its attempt number.")
    actions: list[Action] = Field(default_factory=list, description="The writes it made, in order.")
    hidden_mu: list[float] = Field(default_factory=list, description="mu after each write (the hidden mu-path).")
    mu_pre: float = Field(description="mu at its checkpoint.")
    mu_post: float | None = Field(default=None, description="mu measured after it settled.")
    decision: Literal["commit", "abort"] | None = Field(default=None, description="Commit or abort (None: unknown).")
    reason: str = Field(default="", description="Why it was committed or aborted.")
    recalled_from: str | None = Field(default=None, description="The memory whose fix it replayed, if any.")


class IncidentMemory(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    key: str = Field(description="The memory's key in the bucket.")
    incident_id: str = Field(description="The incident remembered.")
    scope: str = Field(description="Its scope (namespace).")
    outcome: str = Field(description="resolved or escalated.")
    closed_at: datetime = Field(default_factory=utcnow, description="When it closed.")
    signature: IncidentSignature = Field(description="Its normalised signature.")
    localisation: list[str] = Field(default_factory=list, description="The diagnosis' components.")
    root_cause: str = Field(default="", description="The diagnosis' root cause (level / type).")
    summary: str = Field(default="", description="The diagnosis in a few sentences.")
    baseline: float = Field(default=0.0, description="b.")
    visible_mu: list[float] = Field(default_factory=list, description="The visible mu-path.")
    transactions: list[RememberedTransaction] = Field(default_factory=list, description="Every transaction.")
    demoted: bool = Field(
        default=False, description="Its fix was replayed and aborted: never proposed from this memory again."
    )
    replays: int = Field(default=0, description="Times its fix was replayed and committed.")

    def committed_fix(self) -> list[Action]:
        """The writes of the committed transaction (the last one, if several committed), or nothing."""
        for tx in reversed(self.transactions):
            if tx.decision == "commit" and tx.actions:
                return list(tx.actions)
        return []


_KEY_UNSAFE = re.compile(r"[^-_=.a-zA-Z0-9]")


def memory_key(incident_id: str) -> str:
    """A JetStream KV key for the incident (only ``-_=.`` and alphanumerics; never starts or ends with a dot)."""
    return _KEY_UNSAFE.sub("_", incident_id).strip(".") or "incident"


def fix_fingerprint(actions: list[Action]) -> str:
    """The same writes compare equal whatever namespace they ran in."""
    parts = [[a.verb, a.kind, a.name, a.params] for a in actions]
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
