"""Evaluate failure memory on the held-out split against the baselines, in one run.

Steps (held-out apps: shop, astronomy-shop; the knowledge base comes from the two other apps):
- detection F1 (is the step a failing one), diagnosis F1 (macro over the six failure kinds, on the failing steps),
  Recall@10 of equivalent steps (the same step template in the knowledge base), latency per step;
- methods: the step check (MiniLM + n-grams, contrastive projection), the plain MiniLM embedding with no training
  (same nearest-neighbour rule), and string heuristics (keywords of the answers).
Incidents: Recall@10 of equivalent incidents (the same fault kind, any app or service, leave-one-out) with the
memory's signature similarity, the plain MiniLM embedding of the raw scope text, and raw token overlap.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from arena.bench.memory.dataset import load
from arena.bench.memory.traces import TRACES_FILE, summary
from arena.bench.memory.traces import load as load_recorded
from arena.bench.memory.train import text_of
from stratus.memory.signature import signature_of, similarity
from stratus.reasoners.rulebook.snapshot import Snapshot
from stratus.stepcheck.checker import MODEL_FILE, StepChecker
from stratus.stepcheck.encoder import BaseEncoder, normalise
from stratus.stepcheck.steps import FAILURES

Step = dict[str, Any]


def heuristic(step: Step) -> str:
    """What a careful engineer would grep for in the answers (and the writes' arguments)."""
    r, a = step["result"].lower(), step["arguments"].lower()
    if r.startswith("unknown tool") or "read-only role" in r:
        return "wrong_tool"
    if "already called" in r:
        return "loop"
    if "not run" in r or r.startswith("invalid arguments"):
        return "malformed_call"
    if "not supported" in r or "refused" in r:
        return "refused_command"
    if "not found" in r or "no pod or workload" in r:
        return "hallucinated_name"
    if re.search(r"replicas[= ]0\b", a) or "delete pvc" in a:
        return "preceded_abort"
    return "ok"


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def scores(truth: list[str], pred: list[str]) -> dict[str, float]:
    tp = sum(t != "ok" and p != "ok" for t, p in zip(truth, pred, strict=True))
    fp = sum(t == "ok" and p != "ok" for t, p in zip(truth, pred, strict=True))
    fn = sum(t != "ok" and p == "ok" for t, p in zip(truth, pred, strict=True))
    per_kind = []
    # macro over the kinds that occur (in the truth or the predictions): a small recorded set lacks some kinds, and
    # a kind nobody has nor predicts would count as an F1 of 0
    for kind in [k for k in FAILURES if k in truth or k in pred]:
        ktp = sum(t == kind and p == kind for t, p in zip(truth, pred, strict=True))
        kfp = sum(t != kind and t != "ok" and p == kind for t, p in zip(truth, pred, strict=True))
        kfn = sum(t == kind and p != kind for t, p in zip(truth, pred, strict=True))
        per_kind.append(f1(ktp, kfp, kfn))
    return {
        "detection_precision": tp / (tp + fp) if tp + fp else 0.0,
        "detection_recall": tp / (tp + fn) if tp + fn else 0.0,
        "detection_f1": f1(tp, fp, fn),
        "diagnosis_f1": sum(per_kind) / len(per_kind) if per_kind else 0.0,
    }


def recall_at(ranked: list[list[int]], relevant: list[set[int]], k: int = 10) -> float:
    vals = [len(set(r[:k]) & rel) / min(k, len(rel)) for r, rel in zip(ranked, relevant, strict=True) if rel]
    return sum(vals) / len(vals) if vals else 0.0


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9_.:/-]+", text.lower()))


def _jaccard_rank(queries: list[str], corpus: list[str], exclude_self: bool = False) -> list[list[int]]:
    ct = [_tokens(t) for t in corpus]
    out = []
    for qi, q in enumerate(queries):
        qt = _tokens(q)
        sims = [len(qt & c) / max(1, len(qt | c)) for c in ct]
        order = sorted(range(len(corpus)), key=lambda j: -sims[j])
        out.append([j for j in order if not (exclude_self and j == qi)])
    return out


def _vector_rank(q: np.ndarray, kb: np.ndarray, exclude_self: bool = False) -> list[list[int]]:
    sims = q @ kb.T
    out = []
    for i, row in enumerate(sims):
        order = [int(j) for j in np.argsort(-row)]
        out.append([j for j in order if not (exclude_self and j == i)])
    return out


def _checkers(model: Any) -> dict[str, StepChecker]:
    kb_texts, kb_labels = [str(t) for t in model["texts"]], [str(x) for x in model["labels"]]
    return {
        "step check (MiniLM + n-grams, contrastive projection)": StepChecker(
            np.asarray(model["w"]), kb_texts, kb_labels, BaseEncoder(True)
        ),
        "plain MiniLM (no training)": StepChecker(None, kb_texts, kb_labels, BaseEncoder(True, ngrams=False)),
    }


def score_steps(
    test: list[Step],
    checkers: dict[str, StepChecker],
    kb_texts: list[str],
    relevant: list[set[int]] | None,
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Each method's detection and diagnosis scores and latency on ``test``; Recall@10 when ``relevant`` is given."""
    truth = [s["label"] for s in test]
    texts = [text_of(s) for s in test]
    out: dict[str, Any] = {"test_steps": len(test), "failing": sum(t != "ok" for t in truth), "kb": len(kb_texts)}
    for name, checker in checkers.items():
        echo(f"steps: {name}")
        preds, lat = [], []
        minilm = checker.encoder.minilm
        for t in texts:
            if minilm is not None:  # latency of a step seen for the first time (recorded traces repeat steps)
                minilm.cache.clear()
            t0 = time.perf_counter()
            label, sim, _ = checker.classify_text(t)
            lat.append((time.perf_counter() - t0) * 1000)
            preds.append(label if (label == "ok" or sim >= checker.threshold) else "ok")
        recall = None
        if relevant is not None:
            recall = recall_at(_vector_rank(checker._embed(texts), checker.kb), relevant)
        out[name] = {
            **scores(truth, preds),
            "recall_at_10": recall,
            "latency_ms_median": statistics.median(lat) if lat else None,
            "latency_ms_p95": sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else None,
        }
    echo("steps: string heuristics")
    t0 = time.perf_counter()
    preds = [heuristic(s) for s in test]
    per = (time.perf_counter() - t0) * 1000 / max(1, len(test))
    out["string heuristics"] = {
        **scores(truth, preds),
        "recall_at_10": recall_at(_jaccard_rank(texts, kb_texts), relevant) if relevant is not None else None,
        "latency_ms_median": per,
        "latency_ms_p95": per,
    }
    return out


def evaluate_steps(echo: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    data = load("steps")
    test = [s for s in data if s["split"] == "test"]
    model = np.load(MODEL_FILE, allow_pickle=False)
    kb_texts = [str(t) for t in model["texts"]]
    train_templates = {text_of(s): s["template"] for s in data if s["split"] == "train"}
    kb_templates = [train_templates.get(t, "") for t in kb_texts]
    test_templates = [s["template"] for s in test]
    relevant = [{j for j, kt in enumerate(kb_templates) if kt == t} if t.split("/")[0] != "ok" else set()
                for t in test_templates]  # fmt: skip
    return score_steps(test, _checkers(model), kb_texts, relevant, echo)


def evaluate_recorded(
    echo: Callable[[str], None] = lambda _: None, path: Path = TRACES_FILE, model_file: Path = MODEL_FILE
) -> list[dict[str, Any]]:
    """The same methods on the recorded traces, one table per model that made them (the local LLM, the scripted
    failure-injecting model). All held out: nothing of them is in the knowledge base or the training pairs. Empty
    when no recorded trace is there. No Recall@10: real steps have no template to say which are the same step."""
    steps = load_recorded(path)
    if not steps:
        return []
    model = np.load(model_file, allow_pickle=False)
    checkers = _checkers(model)
    kb_texts = [str(t) for t in model["texts"]]
    out = []
    for source in sorted({str(s.get("model", "")) for s in steps}):
        test = [s for s in steps if str(s.get("model", "")) == source]
        echo(f"recorded traces: {source}")
        out.append({**summary(test), **score_steps(test, checkers, kb_texts, None, echo)})
    return out


def _snapshot(inc: dict[str, Any]) -> Snapshot:
    snap = Snapshot(namespace=inc["namespace"])
    snap.objects, snap.events, snap.logs = inc["objects"], inc["events"], inc["logs"]
    return snap


def raw_text(inc: dict[str, Any]) -> str:
    """What an engineer would paste: pod names and states, events, log lines (nothing normalised)."""
    parts = []
    for pod in inc["objects"].get("Pod", []):
        st = pod["status"]
        reasons = [
            (cs.get("state") or {}).get("waiting", {}).get("reason", "") for cs in st.get("containerStatuses", [])
        ]
        parts.append(f"pod {pod['metadata']['name']} {st.get('phase')} {' '.join(r for r in reasons if r)}")
    for d in inc["objects"].get("Deployment", []):
        parts.append(f"deployment {d['metadata']['name']} {d['status']['availableReplicas']}/{d['spec']['replicas']}")
    parts += [f"event {e['reason']} {e.get('message', '')}" for e in inc["events"]]
    parts += [line for text in inc["logs"].values() for line in text.splitlines()]
    return "\n".join(parts)


def evaluate_incidents(echo: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    data = load("incidents")
    faults = [i["fault"] for i in data]
    relevant = [{j for j, f in enumerate(faults) if f == fi and j != i} for i, fi in enumerate(faults)]
    echo(f"incidents: {len(data)} snapshots, signatures")
    t0 = time.perf_counter()
    sigs = [signature_of(_snapshot(i)) for i in data]
    sig_ms = (time.perf_counter() - t0) * 1000 / len(data)
    ranked = []
    for i, s in enumerate(sigs):
        sims = [similarity(s, o) for o in sigs]
        ranked.append([j for j in sorted(range(len(sigs)), key=lambda j: -sims[j]) if j != i])
    texts = [raw_text(i) for i in data]
    echo("incidents: plain MiniLM")
    minilm = BaseEncoder(True, ngrams=False)
    v = normalise(minilm.encode([t[:2000] for t in texts]))
    return {
        "incidents": len(data),
        "fault_kinds": len(set(faults)),
        "incident memory signature": {"recall_at_10": recall_at(ranked, relevant), "signature_ms": sig_ms},
        "plain MiniLM (raw text)": {"recall_at_10": recall_at(_vector_rank(v, v, exclude_self=True), relevant)},
        "string heuristics (token overlap)": {
            "recall_at_10": recall_at(_jaccard_rank(texts, texts, exclude_self=True), relevant)
        },
    }
