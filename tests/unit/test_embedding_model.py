"""The state encoder: training (gradients, seed), the artefact (versioned, verified, bounded), the product's forward
pass against the trainer's, missing modalities, the baseline's robust z-scores, the call-graph walk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from arena.bench.embedding.train import Config, _modality_forward, gradient_check, make_batch, train
from stratus.embedding.baseline import MODALITIES, Baseline, Standardised
from stratus.embedding.features import TemplateLookup, featurise
from stratus.embedding.model import MAX_ARTEFACT_BYTES, ArtefactError, Encoder
from stratus.embedding.scoring import Edge, kmeans, logistic_fit, walk_rank
from stratus.embedding.text import HashingEmbedder

sys.path.insert(0, str(Path(__file__).parent))
from embedding_synth import telemetry


def _windows(n: int = 14, fault_from: int | None = None, **fault: object) -> list[Standardised]:
    tl, base, out = TemplateLookup(), Baseline(min_windows=3), []
    for k in range(n):
        start = k * 1.5
        kwargs = fault if fault_from is not None and k >= fault_from else {}
        wf = featurise(telemetry(start, start + 6.0, seed=k, **kwargs), tl)  # type: ignore[arg-type]
        out.append(base.standardise(wf, HashingEmbedder()))
        if not kwargs:
            base.add(wf)
    return out


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    ws = _windows(16, fault_from=10, delay={"store": 0.4})
    return train(ws, [0] * len(ws), Config(epochs=3, batch=8, seed=3))


def test_the_backward_pass_matches_finite_differences() -> None:
    assert gradient_check(seed=1) < 1e-4


def test_training_is_reproducible_from_the_seed() -> None:
    ws = _windows(10)
    a = train(ws, [0] * 10, Config(epochs=2, batch=5, seed=11))
    b = train(ws, [0] * 10, Config(epochs=2, batch=5, seed=11))
    c = train(ws, [0] * 10, Config(epochs=2, batch=5, seed=12))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["metrics.W1"], c.params["metrics.W1"])


def test_product_forward_equals_the_trainer_forward(encoder: Encoder) -> None:
    w = _windows(5)[4]
    enc = encoder.encode(w)
    batch = make_batch([w], [0])
    for m in MODALITIES:
        ours = _modality_forward(encoder.params, m, batch.x[m], batch.mask)["e"][0]
        assert np.allclose(enc.views[m], ours)
    assert np.isclose(np.linalg.norm(enc.joint), 1.0)


def test_a_missing_modality_still_gives_an_embedding_in_the_same_space(encoder: Encoder) -> None:
    w = _windows(6)[5]
    full = encoder.encode(w).joint
    w.present["logs"] = False
    w.present["metrics"] = False
    partial = encoder.encode(w).joint
    assert np.isclose(np.linalg.norm(partial), 1.0)
    assert float(full @ partial) > 0.0
    w.present = {m: False for m in MODALITIES}
    assert not encoder.encode(w).joint.any()


def test_artefact_round_trip_and_refusals(encoder: Encoder, tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    encoder.meta["version"] = "test"
    digest = encoder.save(path)
    loaded = Encoder.load(path)
    assert loaded.meta["arrays_sha256"] == digest and loaded.meta["version"] == "test"
    assert all(np.allclose(loaded.params[k], encoder.params[k], atol=1e-6) for k in encoder.params)
    with pytest.raises(ArtefactError, match="not readable"):
        Encoder.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ArtefactError, match="not a state-embedding model"):
        Encoder.load(tmp_path / "junk.npz")
    tampered = dict(loaded.params)
    tampered["metrics.W1"] = tampered["metrics.W1"] + 1.0
    arrays = {k: v.astype(np.float32) for k, v in tampered.items()}
    with np.load(path) as z:
        arrays["__manifest__"] = z["__manifest__"]
    np.savez(tmp_path / "tampered.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(ArtefactError, match="sha256"):
        Encoder.load(tmp_path / "tampered.npz")
    big = tmp_path / "big.npz"
    with big.open("wb") as f:
        f.truncate(MAX_ARTEFACT_BYTES + 1)
    with pytest.raises(ArtefactError, match="limit"):
        Encoder.load(big)


def test_robust_z_has_floors_and_no_evidence_is_zero() -> None:
    tl, base = TemplateLookup(), Baseline(min_windows=2)
    for k in range(6):
        base.add(featurise(telemetry(k, k + 6.0, seed=k), tl))
    healthy = base.standardise(featurise(telemetry(10, 16.0, seed=99), tl), None)
    slow = base.standardise(featurise(telemetry(10, 16.0, seed=99, delay={"store": 0.4}), tl), None)
    assert np.abs(healthy.raw_z["traces"]).max() < 6
    store = slow.services.index("store")
    assert slow.raw_z["traces"][store, 6] > 10  # hop_p95: the time callers lose reaching store
    assert np.isfinite(slow.x["metrics"]).all() and np.isfinite(slow.x["logs"]).all()


def test_new_log_templates_are_counted_and_embedded() -> None:
    tl, base = TemplateLookup(), Baseline(min_windows=2)
    for k in range(4):
        base.add(featurise(telemetry(k, k + 6.0, seed=k), tl))
    std = base.standardise(featurise(telemetry(10, 16.0, seed=5, failing="store"), tl), HashingEmbedder())
    store = std.services.index("store")
    assert std.x["logs"][store, 3] > 0  # one new template
    assert np.isclose(np.linalg.norm(std.x["logs"][store, 4:]), 1.0)
    assert not std.x["logs"][std.services.index("auth"), 4:].any()


def test_the_walk_settles_on_the_deepest_shifted_service() -> None:
    services = ["frontend", "api", "store", "auth"]
    edges = [
        Edge("frontend", "api", 1, 0, 1, 1),
        Edge("api", "store", 1, 0, 1, 1),
        Edge("frontend", "auth", 1, 0, 1, 1),
    ]
    shift = np.asarray([5.0, 5.0, 6.0, 0.2])  # every caller of store shows the failure too
    pr = walk_rank(services, shift, edges)
    assert services[int(np.argmax(pr))] == "store"
    assert np.isclose(pr.sum(), 1.0)


def test_logistic_head_and_kmeans() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    y = np.asarray([0] * 50 + [1] * 50, dtype=float)
    w, b = logistic_fit(x, y)
    assert ((x @ w + b > 0) == (y > 0)).mean() > 0.95
    c = kmeans(x, 2, np.random.default_rng(1))
    assert sorted(np.round(c[:, 0]).tolist()) == [-2.0, 2.0]


def test_fast_nanmedian_matches_numpy() -> None:
    import warnings

    from stratus.embedding.baseline import nanmedian

    rng = np.random.default_rng(0)
    for _ in range(100):
        a = rng.normal(size=(int(rng.integers(1, 9)), 4))
        a[rng.random(a.shape) < 0.3] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(a, axis=0)
        assert np.allclose(nanmedian(a), expected, equal_nan=True)
