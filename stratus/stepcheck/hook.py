"""The step check as the tool loop sees it: judge a step, answer a corrective note or nothing.

The checker (the MiniLM session and the knowledge base, embedded once) is loaded on the first step, off the event
loop, and shared by every piece of work of the process; each check runs in a worker thread (~10 ms on CPU).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from stratus.reasoners.llm import StepRecord
from stratus.stepcheck.checker import MODEL_FILE, StepChecker

log = logging.getLogger(__name__)


class StepCheckHook:
    def __init__(self, checker: StepChecker | None = None, *, path: Path = MODEL_FILE, threshold: float = 0.5) -> None:
        self.checker = checker
        self.path = path
        self.threshold = threshold
        self._loading = asyncio.Lock()

    async def _checker(self) -> StepChecker:
        async with self._loading:
            if self.checker is None:
                self.checker = await asyncio.to_thread(StepChecker.load, self.path)
                self.checker.threshold = self.threshold
        return self.checker

    async def __call__(self, record: StepRecord) -> str | None:
        checker = await self._checker()
        flag = await asyncio.to_thread(checker.check, record.tool, record.arguments, record.result)
        if flag is None:
            return None
        log.info("step check: %s flagged as %s (%.2f)", record.tool, flag.kind, flag.similarity)
        return (
            f"Step check: your call to {record.tool} matches a known failing step ({flag.kind.replace('_', ' ')}, "
            f"similarity {flag.similarity:.2f}). Lesson: {flag.lesson}"
        )
