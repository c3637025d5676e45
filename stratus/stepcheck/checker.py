"""Match a step against the knowledge base of steps, failing and not, and flag it when its neighbours fail.

The knowledge base holds steps of both kinds (the ok ones keep look-alikes apart: a log read that answers
"connection refused" is a good step, a kubectl refusal is not). A step is flagged when the similarity-weighted vote
of its ``k`` nearest neighbours (in the projected space) goes to a failure kind and the nearest failing neighbour is
at least ``threshold`` similar; the kind names the lesson.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from stratus.stepcheck.encoder import BaseEncoder, project
from stratus.stepcheck.steps import LESSONS, FailureKind, step_text

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).parent / "models" / "stepcheck.npz"


@dataclass(frozen=True)
class Flag:
    kind: FailureKind
    similarity: float
    lesson: str
    example: str
    """The nearest failing step of the knowledge base (what it looked like)."""


class StepChecker:
    def __init__(
        self,
        w: np.ndarray | None,
        texts: list[str],
        labels: list[str],
        encoder: BaseEncoder,
        *,
        k: int = 5,
        threshold: float = 0.5,
    ) -> None:
        self.w = w
        self.encoder = encoder
        self.texts = texts
        self.labels = labels
        self.k = k
        self.threshold = threshold
        self.kb = self._embed(texts)
        self.latencies_ms: list[float] = []

    @classmethod
    def load(cls, path: Path = MODEL_FILE, *, use_minilm: bool = True, projected: bool = True) -> StepChecker:
        data = np.load(path, allow_pickle=False)
        w = np.asarray(data["w"], dtype=np.float32) if projected else None
        return cls(w, [str(t) for t in data["texts"]], [str(x) for x in data["labels"]], BaseEncoder(use_minilm))

    def _embed(self, texts: list[str]) -> np.ndarray:
        base = self.encoder.encode(texts) if texts else np.zeros((0, self.encoder.dim), dtype=np.float32)
        if self.w is None:
            out: np.ndarray = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
            return out
        return project(base, self.w)

    def classify_text(self, text: str) -> tuple[str, float, int]:
        """(label, similarity of the nearest neighbour with that label, its index) for one step text."""
        v = self._embed([text])[0]
        sims = self.kb @ v
        top = np.argsort(-sims)[: self.k]
        votes: dict[str, float] = defaultdict(float)
        for i in top:
            votes[self.labels[i]] += float(max(sims[i], 0.0))
        label = max(votes, key=lambda lab: votes[lab])
        best = next(int(i) for i in top if self.labels[i] == label)
        return label, float(sims[best]), best

    def check(self, tool: str, arguments: str, result: str) -> Flag | None:
        t0 = time.perf_counter()
        label, sim, idx = self.classify_text(step_text(tool, arguments, result))
        self.latencies_ms.append((time.perf_counter() - t0) * 1000)
        del self.latencies_ms[:-1000]
        if label == "ok" or sim < self.threshold:
            return None
        kind = cast(FailureKind, label)
        return Flag(kind=kind, similarity=sim, lesson=LESSONS[kind], example=self.texts[idx])
