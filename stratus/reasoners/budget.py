"""Token budgets for the tool loop: every prompt fits the model's context window, and its prefix stays cacheable.

Why it is shaped this way:

- Budgets are in tokens, the unit the server counts, but a provider-neutral client has no tokenizer. ``TokenMeter``
  estimates tokens from characters and recalibrates after every call from the server's own ``prompt_tokens`` for the
  prompt it just sent (measured the same way), so the estimate follows the model's tokenizer and the template's
  overhead instead of a guess. It starts conservative (3 characters a token: YAML and names tokenize densely).
- A reply's tool results share one budget: what is left of the window after the prompt and the reply's reserve,
  capped at a share of the window so one listing cannot crowd out everything after it; each call gets an equal part.
- History is compacted by *folding*, not by rewriting: when the prompt would pass the window, the oldest turns are
  replaced by one summary message (a line per tool call: what was called and the first line of what it answered),
  down to a low-water mark. Between folds the prompt only grows at its end, so a server's prefix cache (llama.cpp
  keeps the last prompt's state) reads only the new tokens; shortening old messages one by one at every step, as
  before, changed the middle of the prompt each time and made the server re-read 1.3-1.9k tokens per call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_CONTEXT_TOKENS = 8192
SUMMARY_HEADER = (
    "Summary of your earlier steps (their full results were folded away to save context; call a tool again if you "
    "need a detail):"
)


class TokenMeter:
    """Tokens of text, estimated from characters and calibrated by the server's counts."""

    def __init__(self, chars_per_token: float = 3.0, *, low: float = 1.5, high: float = 6.0) -> None:
        self.chars_per_token = chars_per_token
        self.low, self.high = low, high

    def tokens(self, chars: int) -> int:
        return math.ceil(chars / self.chars_per_token)

    def chars(self, tokens: int) -> int:
        return max(0, int(tokens * self.chars_per_token))

    def calibrate(self, chars: int, tokens: int) -> None:
        """Learn from one prompt: ``chars`` as ``prompt_chars`` measured it, ``tokens`` as the server counted them."""
        if chars > 0 and tokens > 0:
            self.chars_per_token = min(self.high, max(self.low, 0.95 * chars / tokens))


def prompt_chars(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> int:
    """The size of a request's prompt in characters, measured one way for estimating and for calibrating."""
    return len(json.dumps(list(messages), ensure_ascii=False)) + len(json.dumps(list(tools), ensure_ascii=False))


@dataclass
class Budget:
    """The context window and how it is spent."""

    context: int = DEFAULT_CONTEXT_TOKENS
    reply: int = 768
    """Tokens kept for the reply (sent as ``max_tokens``)."""
    margin: float = 0.06
    """A share of the window kept free for the estimate's error."""
    results_share: float = 0.35
    """At most this share of the window for the results of one reply's calls together."""
    low_water: float = 0.55
    """A fold brings the prompt down to this share of the limit, so folds are rare."""

    @property
    def limit(self) -> int:
        """The largest prompt to send."""
        return max(256, int(self.context * (1 - self.margin)) - self.reply)

    def results_tokens(self, prompt_tokens: int, calls: int) -> int:
        """Each call's share of a reply's result budget, given the prompt the results will be appended to."""
        room = min(self.limit - prompt_tokens, int(self.context * self.results_share))
        return max(40, room // max(1, calls))


def _turns(messages: list[dict[str, Any]], start: int) -> list[tuple[int, int]]:
    """Index ranges [a, b) of the turns after ``start``: an assistant message and what answered it."""
    out: list[tuple[int, int]] = []
    i = start
    while i < len(messages):
        j = i + 1
        while j < len(messages) and messages[j]["role"] != "assistant":
            j += 1
        out.append((i, j))
        i = j
    return out


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def summarise_turn(turn: list[dict[str, Any]]) -> list[str]:
    """One line per tool call of a turn: the call and the first line of its result."""
    head = turn[0]
    calls = head.get("tool_calls") or []
    results = [m for m in turn[1:] if m["role"] == "tool"]
    lines: list[str] = []
    for n, call in enumerate(calls):
        fn = call.get("function") or {}
        answer = str(results[n].get("content") or "") if n < len(results) else ""
        lines.append(f"- {fn.get('name')}({_first_line(str(fn.get('arguments') or ''), 120)}) -> {_first_line(answer)}")
    if not calls:
        said = _first_line(str(head.get("content") or ""), 200)
        answers = [_first_line(str(m.get("content") or "")) for m in turn[1:]]
        if said:
            lines.append(f"- you wrote: {said}" + (f" -> {answers[0]}" if answers else ""))
    return lines


def fold(
    messages: list[dict[str, Any]],
    *,
    head: int,
    keep_turns: int,
    too_big: Any,
) -> bool:
    """Fold the oldest turns after the first ``head`` messages into one summary, until ``too_big(messages)`` is false
    or only ``keep_turns`` turns are left. Returns whether anything was folded. Changes ``messages`` in place."""
    has_summary = len(messages) > head and str(messages[head].get("content", "")).startswith(SUMMARY_HEADER)
    start = head + 1 if has_summary else head
    turns = _turns(messages, start)
    if len(turns) <= keep_turns:
        return False
    lines = str(messages[head]["content"]).splitlines()[1:] if has_summary else []
    folded = 0
    for a, b in turns[: len(turns) - keep_turns]:
        lines += summarise_turn(messages[a:b])
        folded = b
        rest = messages[folded:]
        trial = [*messages[:head], {"role": "user", "content": "\n".join([SUMMARY_HEADER, *lines])}, *rest]
        if not too_big(trial):
            break
    summary = {"role": "user", "content": "\n".join([SUMMARY_HEADER, *lines[-40:]])}
    messages[head:] = [summary, *messages[folded:]]
    return True
