"""What a reasoning step is made of for matching, the kinds of failing steps, and the lesson each one teaches."""

from __future__ import annotations

import re
from typing import Literal

from stratus.memory.templates import mask

FailureKind = Literal["wrong_tool", "hallucinated_name", "loop", "refused_command", "malformed_call", "preceded_abort"]
Label = Literal["ok", "wrong_tool", "hallucinated_name", "loop", "refused_command", "malformed_call", "preceded_abort"]
FAILURES: tuple[FailureKind, ...] = (
    "wrong_tool",
    "hallucinated_name",
    "loop",
    "refused_command",
    "malformed_call",
    "preceded_abort",
)
LABELS: tuple[Label, ...] = ("ok", *FAILURES)

LESSONS: dict[FailureKind, str] = {
    "wrong_tool": "You called a tool that does not exist or is not yours. Call only the tools listed in this "
    "conversation, by their exact names; the diagnoser's tools are read-only.",
    "hallucinated_name": "The object you named does not exist. List the objects of that kind first and use a name "
    "exactly as the listing shows it.",
    "loop": "You are repeating a call whose answer cannot change. Use the earlier result and move on: another tool, "
    "another object, or your answer.",
    "refused_command": "That command was refused by the rules (no pipes, shell, redirects, interactive flags, edit, "
    "namespace deletion; writes only for the mitigator). Issue one plain kubectl command per call.",
    "malformed_call": "Your tool call's arguments were not a valid JSON object for the tool. Send one JSON object "
    "with the tool's documented fields and nothing else.",
    "preceded_abort": "Writes like this one were undone before because they made things worse (a healthy tier scaled "
    "down, an image, setting or port that does not exist). Read the failing component's state and change only what "
    "is broken there.",
}

_QUOTED = re.compile(r"""(['"])([^'"\s]{1,80})\1""")


def step_text(tool: str, arguments: str, result: str) -> str:
    """One line for the encoder: the tool, its arguments and the start of its answer, variable parts masked."""
    args = _QUOTED.sub(r"\1\2\1", arguments)
    return f"{tool}({mask(args)[:240]}) -> {mask(result)[:360]}"
