"""Where a local model's time went, read from the llama.cpp server's own log (``stratus bench --llm-log``).

An OpenAI-compatible answer says how many tokens a prompt had, not how many the server actually evaluated (the rest
came from its prefix cache) nor how long reading took against generating. llama.cpp prints both for every completion
(``llama_perf_context_print``), and uvicorn logs every request's HTTP status; the bench reads the part of the log a
scenario wrote. Reading time is the completion's total minus its generation time: llama.cpp's own "prompt eval"
line is reset oddly when the whole prompt was cached.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

_PROMPT = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs")
_TOTAL = re.compile(r"total time =\s*([\d.]+) ms")
_STATUS = re.compile(r'"POST /v1/chat/completions HTTP/[\d.]+" (\d{3})')


class ServerStats(BaseModel):
    """What the server did for one scenario's completions."""

    requests: int = Field(default=0, description="Chat completions the server answered (any status).")
    http_errors: int = Field(default=0, description="Chat completions answered with a status other than 200.")
    prompt_tokens_evaluated: int = Field(default=0, description="Prompt tokens read (not taken from the cache).")
    prompt_s: float = Field(default=0.0, description="Time reading prompts (total minus generation), seconds.")
    generated_tokens: int = Field(default=0, description="Tokens generated.")
    generate_s: float = Field(default=0.0, description="Time generating, seconds.")


def parse(text: str) -> ServerStats:
    stats = ServerStats()
    eval_ms = 0.0
    for line in text.splitlines():
        if (m := _PROMPT.search(line)) is not None:
            stats.prompt_tokens_evaluated += int(m.group(2))
        elif (m := _EVAL.search(line)) is not None:
            eval_ms = float(m.group(1))
            stats.generated_tokens += int(m.group(2))
            stats.generate_s += eval_ms / 1000
        elif (m := _TOTAL.search(line)) is not None:
            stats.prompt_s += max(0.0, float(m.group(1)) - eval_ms) / 1000
            eval_ms = 0.0
        elif (m := _STATUS.search(line)) is not None:
            stats.requests += 1
            stats.http_errors += m.group(1) != "200"
    stats.prompt_s, stats.generate_s = round(stats.prompt_s, 2), round(stats.generate_s, 2)
    return stats


class LogSlice:
    """The part of a growing log written between ``start()`` and ``read()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def start(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> ServerStats:
        if not self.path.exists():
            return ServerStats()
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return parse(f.read().decode("utf-8", "replace"))
