"""The step encoder: a base vector (MiniLM int8 sentence embedding, plus signed hashed character n-grams) and a
linear projection trained contrastively, without failure labels, on the project's synthetic traces.

Why both parts: MiniLM knows what words mean but sees "Unknown tool 'x'" and "tool x ran" as close; the n-grams see
the exact wording the toolkit and the confinement rules answer with. The projection learns, from pairs of steps
that are the same step of a rerun (the same generator template, other services, apps, names and seeds), which
directions of the base vector matter for telling steps apart (EAGER's unsupervised contrastive objective).
When the MiniLM files are missing the MiniLM part is zero on both sides (the knowledge base is embedded at load
time with the same encoder), so matching degrades instead of breaking.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NGRAM_DIM = 512
MINILM_DIM = 384


def ngram_vectors(texts: Sequence[str], dim: int = NGRAM_DIM) -> np.ndarray:
    """Signed feature hashing of character 3-5-grams and words, L2-normalised rows."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        t = f" {text.lower()} "
        grams = [t[j : j + n] for n in (3, 4, 5) for j in range(max(0, len(t) - n + 1))]
        grams += [f"w:{w}" for w in t.split()]
        for g in grams:
            h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 40) & 1 else -1.0
        n = float(np.linalg.norm(out[i]))
        if n > 0:
            out[i] /= n
    return out


class BaseEncoder:
    """[MiniLM | n-grams]; ``use_minilm=False`` (or missing files) leaves the MiniLM part zero; ``ngrams=False`` is
    the plain MiniLM embedding (the bench's baseline)."""

    def __init__(self, use_minilm: bool = True, ngrams: bool = True) -> None:
        self.ngrams = ngrams
        self.minilm = None
        if use_minilm:
            from stratus.embedding.text import MiniLMEmbedder, minilm_files

            files = minilm_files()
            if files is None:
                log.warning("MiniLM files not installed: step check uses the n-gram part of its encoder only")
            else:
                self.minilm = MiniLMEmbedder(*files)

    @property
    def dim(self) -> int:
        return MINILM_DIM + (NGRAM_DIM if self.ngrams else 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        sem = (
            self.minilm.embed(list(texts))
            if self.minilm is not None
            else np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
        )
        if not self.ngrams:
            return sem.astype(np.float32)
        return np.hstack([sem, ngram_vectors(texts)]).astype(np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def project(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return normalise(x @ w)


def train_projection(
    anchors: np.ndarray,
    positives: np.ndarray,
    *,
    out_dim: int = 96,
    epochs: int = 60,
    batch: int = 128,
    lr: float = 0.05,
    tau: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """InfoNCE over (anchor, positive) pairs with in-batch negatives; plain numpy, gradient through the
    normalisation. Returns W (in_dim x out_dim)."""
    rng = np.random.default_rng(seed)
    d = anchors.shape[1]
    w = (rng.standard_normal((d, out_dim)) / np.sqrt(d)).astype(np.float32)
    n = len(anchors)
    for _ in range(epochs):
        order = rng.permutation(n)
        for b in range(0, n - 1, batch):
            idx = order[b : b + batch]
            if len(idx) < 2:
                continue
            xa, xp = anchors[idx], positives[idx]
            ua, up = xa @ w, xp @ w
            # z = u / |u|
            na = np.maximum(np.linalg.norm(ua, axis=1, keepdims=True), 1e-12)
            np_ = np.maximum(np.linalg.norm(up, axis=1, keepdims=True), 1e-12)
            za, zp = ua / na, up / np_
            logits = za @ zp.T / tau
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - np.eye(len(idx), dtype=np.float32)) / (tau * len(idx))  # dL/dlogits * 1/tau
            gza, gzp = g @ zp, g.T @ za
            gua = (gza - za * (za * gza).sum(axis=1, keepdims=True)) / na
            gup = (gzp - zp * (zp * gzp).sum(axis=1, keepdims=True)) / np_
            w -= lr * (xa.T @ gua + xp.T @ gup)
    trained: np.ndarray = w
    return trained


def save(path: Path, w: np.ndarray, texts: Sequence[str], labels: Sequence[str], version: str) -> None:
    np.savez_compressed(path, w=w, texts=np.asarray(list(texts)), labels=np.asarray(list(labels)), version=version)
