"""The float Keras backend: both engines give the same outcome for every fault; shards resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.training import configure_tensorflow

configure_tensorflow(1, 0)

from hsiseu.faults import campaign, faultlist  # noqa: E402
from hsiseu.faults.engine_fast import FastEngine  # noqa: E402
from hsiseu.faults.keras_backend import KerasBackend  # noqa: E402
from hsiseu.faults.outcomes import outcome_of  # noqa: E402
from hsiseu.model import build_unet  # noqa: E402

BITS = [31, 30, 29, 27, 23, 22, 12, 0]


def tiny_model(af: str, seed: int = 0):
    """A tiny U-Net with trained-looking BN statistics: gammas around 1 (so that bit 30 makes
    NaN and inf), non-zero betas, means and variances."""
    model = build_unet(height=16, width=32, bands=3, n_classes=5, af=af, pools=2, base_filters=4, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.startswith("bn_"):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.6, 1.6, c).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
        elif layer.name.startswith(("cnv_", "tcnv_")):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape[0]).astype(np.float32))
    return model


def images(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 16, 32, 3), dtype=np.float32)


def sample(backend, per_cell: int = 2, seed: int = 0):
    frame = faultlist.generate(backend.parameter_sets(), sampling={"fixed_n": per_cell}, bits=BITS, seed=seed)
    return frame, faultlist.faults_of(frame)


def outcomes(backend, faults, labelled):
    golden = backend.golden()
    return [outcome_of(golden, p, labelled) for p in backend.run(faults)]


@pytest.mark.parametrize("af", ["relu", "sigmoid", "hard_sigmoid"])
def test_fast_engine_gives_the_reference_outcome_for_every_fault(af):
    model, x = tiny_model(af), images()
    ref = KerasBackend(model, x, engine="reference", include_moving_stats=True)
    fast = KerasBackend(model, x, engine="fast", batch_size=5, include_moving_stats=True)
    assert np.array_equal(ref.golden(), fast.golden())
    kinds = {s.kind for s in ref.parameter_sets()}
    assert kinds == {"kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"}
    frame, faults = sample(ref)
    labelled = np.ones(ref.golden().shape, bool)
    a, b = outcomes(ref, faults, labelled), outcomes(fast, faults, labelled)
    mismatched = [(f, x, y) for f, x, y in zip(faults, a, b) if x != y]
    assert not mismatched, mismatched[:3]
    # the sample does exercise the hard cases
    assert any(o["nonfinite"] for o in a), "no fault made the output NaN/inf"
    assert any(not o["changed"] for o in a) and any(o["error_rate"] > 50 for o in a)
    assert fast.engine.stats["masked_in_faulty_layer"] > 0
    # and the model is fault-free again afterwards
    assert np.array_equal(ref.golden(), KerasBackend(model, x, engine="reference").golden())


def test_fast_engine_fallbacks_are_exact_when_shortcut_checks_fail():
    """Were slicing or batching not bit-exact on some CPU, the engine computes whole tensors at
    the fault-free shapes instead; force that path and compare with the reference."""
    model, x = tiny_model("relu", seed=3), images(2)
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast", batch_size=4)
    engine: FastEngine = fast.engine
    refused = []
    engine._holds = lambda key, compute, expected: refused.append(key[0]) or False
    _, faults = sample(ref, per_cell=1, seed=5)
    labelled = np.ones(ref.golden().shape, bool)
    assert outcomes(ref, faults, labelled) == outcomes(fast, faults, labelled)
    assert {"conv_slice", "bias_slice", "bn_slice", "channel", "batch"} <= set(refused)


def test_image_chunks_give_the_reference_outcomes_and_bound_the_cache():
    """Chunks of 2 of 3 images (uneven): the cache holds one chunk, outcomes are unchanged."""
    model, x = tiny_model("relu", seed=1), images(3)
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast", batch_size=6, image_chunk=2)
    engine: FastEngine = fast.engine
    assert engine.chunks == [(0, 2), (2, 3)]
    assert np.array_equal(ref.golden(), fast.golden())
    _, faults = sample(ref, per_cell=1, seed=2)
    labelled = np.ones(ref.golden().shape, bool)
    assert outcomes(ref, faults, labelled) == outcomes(fast, faults, labelled)
    assert max(v.shape[0] for v in engine.cache.values()) <= 2
    assert engine.stats["chunk_loads"] == 2  # one cache build per chunk and run call


def test_image_chunking_is_refused_exactly_when_chunk_results_differ(monkeypatch):
    """Were a kernel's bits to depend on the batch size, the start-up check refuses chunking
    and the engine works on the whole batch: still the reference outcomes."""
    real = FastEngine._holds
    monkeypatch.setattr(FastEngine, "_holds",
                        lambda self, key, compute, expected: key[0] != "chunk" and real(self, key, compute, expected))
    model, x = tiny_model("relu", seed=1), images(3)
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast", batch_size=6, image_chunk=1)
    assert fast.engine.chunks == [(0, 3)]
    _, faults = sample(ref, per_cell=1, seed=4)
    labelled = np.ones(ref.golden().shape, bool)
    assert outcomes(ref, faults, labelled) == outcomes(fast, faults, labelled)


def test_faults_that_turn_a_tensor_to_nan_share_one_downstream_run():
    """Exponent-MSB flips of values in (1, 2) make NaN; once a fault's live tensors are all
    bitwise equal to another's, its downstream is reused -- and outcomes stay the reference's."""
    model, x = tiny_model("relu"), images()
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast", batch_size=8)
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 4}, bits=[30], seed=0)
    faults = faultlist.faults_of(frame)
    labelled = np.ones(ref.golden().shape, bool)
    a = outcomes(ref, faults, labelled)
    assert a == outcomes(fast, faults, labelled)
    assert fast.engine.stats["nan_memo_hits"] > 0
    assert sum(o["nonfinite"] for o in a) > fast.engine.stats["nan_memo_hits"]
    # a second pass is answered from the memo without running the downstream again
    runs = fast.engine.stats["full_node_runs"]
    assert a == outcomes(fast, faults, labelled)
    assert fast.engine.stats["full_node_runs"] == runs


def test_memo_stays_within_its_byte_bound():
    model, x = tiny_model("sigmoid"), images(2)
    fast = KerasBackend(model, x, engine="fast", batch_size=4)
    engine: FastEngine = fast.engine
    engine.memo_bytes = 3 * x.shape[0] * x.shape[1] * x.shape[2]  # three class maps
    _, faults = sample(fast, per_cell=1, seed=6)
    list(fast.run(faults))
    assert 0 < engine._memo_nbytes <= engine.memo_bytes
    assert sum(p.classes.nbytes for p in engine._memo.values() if p.classes is not None) == engine._memo_nbytes


def test_executor_matches_keras_predictions():
    model, x = tiny_model("sigmoid"), images()
    backend = KerasBackend(model, x, engine="reference")
    keras_out = np.asarray(model(x, training=False))
    np.testing.assert_allclose(backend.engine.scores, keras_out, rtol=1e-4, atol=1e-6)


class Interrupted(Exception):
    pass


class StopsAfter:
    """The real backend, interrupted after ``limit`` predictions (as a killed job would be)."""

    def __init__(self, backend, limit: int | None):
        self.backend, self.limit, self.served = backend, limit, 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def run(self, faults):
        for pred in self.backend.run(faults):
            if self.limit is not None and self.served >= self.limit:
                raise Interrupted
            self.served += 1
            yield pred


def test_killed_shard_resumes_without_losing_or_repeating_a_fault(tmp_path):
    model, x = tiny_model("hard_sigmoid"), images(2)
    labels = np.zeros((2, 16, 32), np.uint8)
    labels[:, :4] = 255
    backend = KerasBackend(model, x, engine="fast", batch_size=4)
    faults_csv = tmp_path / "faults.csv"
    campaign.write_fault_list(backend, sampling={"fixed_n": 1}, bits=[31, 30, 22], seed=0,
                              out_faults=faults_csv, out_sets=tmp_path / "sets.csv")
    n_shard = len(faultlist.shard_of(faultlist.read(faults_csv), 1, 2))
    kwargs = dict(faults_path=faults_csv, labels=labels, shard=1, n_shards=2, chunk_size=10, progress=False)
    out = tmp_path / "shards" / "1-of-2.csv"
    with pytest.raises(Interrupted):
        campaign.run_shard(StopsAfter(backend, 25), out=out, **kwargs)
    assert not out.exists()
    assert len(list((out.parent / f".{out.name}.chunks").glob("0*.csv"))) == 2
    resumed = StopsAfter(backend, None)
    result = campaign.run_shard(resumed, out=out, **kwargs)
    assert resumed.served == n_shard - 20  # the two finished chunks are not run again
    reference = campaign.run_shard(KerasBackend(model, x, engine="reference"), out=tmp_path / "ref.csv", **kwargs)
    pd.testing.assert_frame_equal(result, reference)
    assert result["fault"].is_unique and len(result) == n_shard
    assert not (out.parent / f".{out.name}.chunks").exists()
    # merging both shards covers the list exactly once; a missing shard is an error
    other = campaign.run_shard(backend, out=tmp_path / "shards" / "0-of-2.csv", **{**kwargs, "shard": 0})
    merged = campaign.merge_shards([tmp_path / "shards" / "0-of-2.csv", out], faults_path=faults_csv,
                                   sets_path=tmp_path / "sets.csv", out_outcomes=tmp_path / "o.csv",
                                   out_cells=tmp_path / "c.csv")
    assert len(merged) == len(other) + n_shard
    cells = pd.read_csv(tmp_path / "c.csv")
    assert set(cells["bit"]) == {31, 30, 22} and (cells["n"] == 1).all()
    with pytest.raises(ValueError, match="missing"):
        campaign.merge_shards([out], faults_path=faults_csv, sets_path=tmp_path / "sets.csv",
                              out_outcomes=tmp_path / "o2.csv", out_cells=tmp_path / "c2.csv")
