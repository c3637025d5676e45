"""Train the step encoder's projection and build the step check's knowledge base, from the training split.

Training pairs are two steps made by the same template on different apps, services or seeds (reruns of the same
step); nothing else is used, in particular no failure label. The knowledge base is a bounded sample of the training
steps with their labels (labels came from what the step led to). Both go into ``stratus/stepcheck/models``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from arena.bench.memory.dataset import VERSION, load
from stratus.stepcheck.checker import MODEL_FILE
from stratus.stepcheck.encoder import BaseEncoder, save, train_projection
from stratus.stepcheck.steps import step_text

KB_PER_TEMPLATE = 12


def text_of(step: dict[str, Any]) -> str:
    return step_text(step["tool"], step["arguments"], step["result"])


def pairs(steps: list[dict[str, Any]], rng: random.Random, per_template: int = 60) -> list[tuple[int, int]]:
    by_template: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(steps):
        by_template[s["template"]].append(i)
    out = []
    for members in by_template.values():
        if len(members) < 2:
            continue
        for _ in range(min(per_template, len(members) * 2)):
            a, b = rng.sample(members, 2)
            out.append((a, b))
    rng.shuffle(out)
    return out


def knowledge_base(steps: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    by_template: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in steps:
        by_template[s["template"]].append(s)
    kb = []
    for template in sorted(by_template):
        members = by_template[template]
        kb += rng.sample(members, min(KB_PER_TEMPLATE, len(members)))
    return kb


def train(out: Path = MODEL_FILE, *, use_minilm: bool = True, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    steps = [s for s in load("steps") if s["split"] == "train"]
    encoder = BaseEncoder(use_minilm)
    x = encoder.encode([text_of(s) for s in steps])
    ab = pairs(steps, rng)
    w = train_projection(x[[a for a, _ in ab]], x[[b for _, b in ab]], seed=seed)
    kb = knowledge_base(steps, rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(out, w, [text_of(s) for s in kb], [s["label"] for s in kb], version=VERSION)
    return {"pairs": len(ab), "kb": len(kb), "train_steps": len(steps), "model": str(out), "dim": int(w.shape[1])}


if __name__ == "__main__":
    print(train())  # noqa: T201
