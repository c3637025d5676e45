"""The state encoder at run time: numpy only, loaded offline from one small versioned artefact.

Architecture (after RuntimeSlicer, sized for CPU and for systems of any number of services):

- one encoder per modality, applied to every service's standardised features: a two-layer MLP ``x -> token``
  (``H`` wide); a service's tokens of the three modalities live in one space (the training aligns them);
- per modality, the window embedding is a projection of the services' tokens pooled (max and mean), L2-normalised;
- the joint state embedding is the normalised sum of the available modalities' embeddings, so a missing modality
  leaves a (slightly less informed) embedding in the same space: the training drops modalities at random;
- a service's joint token is the mean of its available modality tokens: its *shift* from its healthy tokens is the
  per-service signal the localisation uses.

Light heads on top (fitted after the encoder, see ``stratus.embedding.scoring``): anomaly calibration, optional
per-state detection heads (states = k-means partition of healthy and faulty embeddings), a localisation head.

The artefact (``.npz``) holds every array plus a JSON manifest: format version, dimensions, training seed, dataset
digest, and the sha256 of the arrays, checked at load.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stratus.embedding.baseline import MODALITIES, Standardised

FORMAT = "stratus-state-embedding/1"
MAX_ARTEFACT_BYTES = 50 * 1024 * 1024


class ArtefactError(ValueError):
    """The model file is missing, corrupt, too large or of another format."""


@dataclass
class Encoder:
    params: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        return int(self.params["metrics.W2"].shape[1])

    # -- per-modality ----------------------------------------------------------------------------------------
    def tokens(self, modality: str, x: np.ndarray) -> np.ndarray:
        p = self.params
        h = np.maximum(x @ p[f"{modality}.W1"] + p[f"{modality}.b1"], 0.0)
        out: np.ndarray = h @ p[f"{modality}.W2"] + p[f"{modality}.b2"]
        return out

    def pool(self, modality: str, tokens: np.ndarray) -> np.ndarray:
        p = self.params
        if tokens.shape[0] == 0:
            pooled = np.zeros(2 * tokens.shape[1])
        else:
            pooled = np.concatenate([tokens.max(axis=0), tokens.mean(axis=0)])
        q = pooled @ p[f"{modality}.Wp"] + p[f"{modality}.bp"]
        return _unit(q)

    # -- a window ---------------------------------------------------------------------------------------------
    def encode(self, w: Standardised) -> Encoded:
        tokens: dict[str, np.ndarray] = {}
        views: dict[str, np.ndarray] = {}
        for m in MODALITIES:
            if not w.present.get(m, True):
                continue
            tokens[m] = self.tokens(m, w.x[m].astype(np.float64))
            views[m] = self.pool(m, tokens[m])
        if views:
            joint = _unit(np.sum(list(views.values()), axis=0))
            service = np.mean(list(tokens.values()), axis=0)
        else:
            joint = np.zeros(self.params["metrics.bp"].shape[0])
            service = np.zeros((len(w.services), self.hidden))
        return Encoded(w.start, w.end, list(w.services), joint, views, service)

    # -- the artefact -----------------------------------------------------------------------------------------
    def save(self, path: Path) -> str:
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in sorted(self.params.items())}
        digest = _digest(arrays)
        manifest = {**self.meta, "format": FORMAT, "arrays_sha256": digest}
        buf = io.BytesIO()
        arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        data = buf.getvalue()
        if len(data) > MAX_ARTEFACT_BYTES:
            raise ArtefactError(f"the artefact would be {len(data)} bytes, over the {MAX_ARTEFACT_BYTES} limit")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return digest

    @classmethod
    def load(cls, path: Path) -> Encoder:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ArtefactError(f"state-embedding model {path} not readable: {exc}") from None
        if size > MAX_ARTEFACT_BYTES:
            raise ArtefactError(f"{path}: {size} bytes is over the {MAX_ARTEFACT_BYTES} limit")
        try:
            with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
        except Exception as exc:
            raise ArtefactError(f"{path} is not a state-embedding model: {exc!r}") from None
        raw = arrays.pop("__manifest__", None)
        if raw is None:
            raise ArtefactError(f"{path} has no manifest")
        try:
            manifest = json.loads(raw.tobytes().decode())
        except ValueError:
            raise ArtefactError(f"{path}: unreadable manifest") from None
        if manifest.get("format") != FORMAT:
            raise ArtefactError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
        if manifest.get("arrays_sha256") != _digest(arrays):
            raise ArtefactError(f"{path}: arrays do not match the manifest's sha256 (corrupt or edited)")
        params = {k: v.astype(np.float64) for k, v in arrays.items()}
        for m in MODALITIES:
            for name in ("W1", "b1", "W2", "b2", "Wp", "bp"):
                if f"{m}.{name}" not in params:
                    raise ArtefactError(f"{path}: missing array {m}.{name}")
        return cls(params, manifest)


@dataclass
class Encoded:
    start: float
    end: float
    services: list[str]
    joint: np.ndarray
    views: dict[str, np.ndarray]
    service: np.ndarray
    """(S, H) joint per-service tokens."""


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else np.zeros_like(v)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k].astype(np.float32))
        h.update(k.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
