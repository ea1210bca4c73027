"""The float Keras backend: the fast engine gives the naive loop's outcome for every fault, on the
study's U-Net and on other Keras models; shortcuts that do not reproduce the cache fall back."""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
import pytest

from hsiseu.runtime import configure_tensorflow

configure_tensorflow(1, 0)

from hsiseu.faults import campaign, faultlist  # noqa: E402
from hsiseu.faults.keras.backend import KerasBackend  # noqa: E402
from hsiseu.faults.keras import compiled  # noqa: E402
from hsiseu.faults.keras.copies import ChainCopies, side_by_side  # noqa: E402
from hsiseu.faults.keras.classmap import DECIDED_MARGIN, classes_and_decided, decision, nonfinite_rows  # noqa: E402
from hsiseu.faults.keras.dense import DenseDownstream  # noqa: E402
from hsiseu.faults.keras.fast import CompiledEngine, classes_op  # noqa: E402
from hsiseu.faults.keras.partial import PartialBatches, smaller_batches  # noqa: E402
from hsiseu.faults.keras.graph import UnsupportedModel, keeps_pixels  # noqa: E402
from hsiseu.faults.keras.logits import LogitTail  # noqa: E402
from hsiseu.faults.keras.paths import PIXELS, WHOLE, PathTimes  # noqa: E402
from hsiseu.faults.keras.pixels import PixelTail  # noqa: E402
from hsiseu.faults.keras.softmax import SoftmaxApart, row_length  # noqa: E402
from hsiseu.faults.outcomes import classes_from_scores, outcome_of  # noqa: E402
from hsiseu.faults.shared import MemoWorth  # noqa: E402
from hsiseu.model import build_unet  # noqa: E402

from conftest import Interrupted, StopsAfter  # noqa: E402

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


def residual_classifier(seed: int = 0):
    """Not a U-Net: fused ReLU, a residual Add, depthwise and transposed convolutions, BatchNorm,
    pooling, a skip Concatenate, Flatten and global pooling into a Dense classifier head."""
    L = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_relu")(inp)
    b = L.Conv2D(6, 3, padding="same", name="conv_lin")(a)
    r = L.Activation("relu", name="res_act")(L.Add(name="residual")([a, b]))
    d = L.DepthwiseConv2D(3, padding="same", name="depthwise")(r)
    d = L.BatchNormalization(name="bn")(d)
    p = L.MaxPooling2D(2, name="pool")(L.Activation("tanh", name="tanh")(d))
    u = L.Conv2DTranspose(4, 2, strides=2, name="up")(p)
    m = L.Conv2D(4, 1, name="mix")(L.Concatenate(name="skip")([u, a]))
    flat = L.Dense(8, activation="relu", name="dense_flat")(L.Flatten(name="flatten")(m))
    pooled = L.Dense(8, activation="relu", name="dense_gap")(L.GlobalAveragePooling2D(name="gap")(m))
    out = L.Dense(4, activation="softmax", name="head")(L.Add(name="join")([flat, pooled]))
    model = keras.Model(inp, out, name="residual_classifier")
    bn = model.get_layer("bn")
    rng = np.random.default_rng(seed)
    bn.gamma.assign(rng.uniform(0.6, 1.6, 6).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 6).astype(np.float32))
    return model


def images(n: int = 3, seed: int = 1, shape=(16, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def sample(backend, per_cell: int = 2, seed: int = 0, bits=BITS):
    frame = faultlist.generate(backend.parameter_sets(), sampling={"fixed_n": per_cell}, bits=bits, seed=seed)
    return frame, faultlist.faults_of(frame)


def outcomes(backend, faults, labelled=None):
    golden = backend.golden()
    labelled = np.ones(golden.shape, bool) if labelled is None else labelled
    return [outcome_of(golden, p, labelled) for p in backend.run(faults)]


@pytest.mark.parametrize("af", ["relu", "sigmoid", "hard_sigmoid"])
def test_fast_engine_gives_the_naive_loops_outcome_for_every_fault(af):
    model, x = tiny_model(af), images()
    ref = KerasBackend(model, x, engine="reference", include_moving_stats=True)
    fast = KerasBackend(model, x, engine="fast", memory_mb=0.5, include_moving_stats=True)
    assert np.array_equal(ref.golden(), fast.golden())
    kinds = {s.kind for s in ref.parameter_sets()}
    assert kinds == {"kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"}
    _, faults = sample(ref)
    a, b = outcomes(ref, faults), outcomes(fast, faults)
    mismatched = [(f, x, y) for f, x, y in zip(faults, a, b) if x != y]
    assert not mismatched, mismatched[:3]
    # the sample does exercise the hard cases, and every shortcut
    assert any(o["nonfinite"] for o in a), "no fault made the output NaN/inf"
    assert any(not o["changed"] for o in a) and any(o["error_rate"] > 50 for o in a)
    stats = fast.engine.stats
    assert stats["dropped_at_chain_end"] > 0 and stats["memo_hits"] > 0
    assert stats["downstream_faults"] > stats["downstream_runs"] > 0  # batched
    assert stats["pixel_downstream_faults"] > stats["pixel_downstream_runs"] > 0  # the last ends' changed pixels
    assert not any(k.startswith("reference_") for k in stats), dict(stats)
    # and the model is fault-free again afterwards
    assert np.array_equal(ref.golden(), KerasBackend(model, x, engine="reference").golden())


def test_fast_engine_runs_a_residual_classifier_exactly():
    model, x = residual_classifier(), images(4, shape=(8, 8, 3))
    ref = KerasBackend(model, x, engine="reference", include_moving_stats=True)
    fast = KerasBackend(model, x, engine="fast", include_moving_stats=True)
    assert ref.golden().shape == (4,)
    layers = {s.layer for s in ref.parameter_sets()}
    assert layers == {"conv_relu", "conv_lin", "depthwise", "bn", "up", "mix", "dense_flat", "dense_gap", "head"}
    _, faults = sample(ref, per_cell=3, bits=[31, 30, 26, 22, 10, 0])
    a, b = outcomes(ref, faults), outcomes(fast, faults)
    assert a == b
    assert any(o["changed"] for o in a) and any(not o["changed"] for o in a)
    ends = {fast.engine.plan(s.name).end for s in ref.parameter_sets()}
    assert "pool" in ends  # depthwise -> BN -> tanh -> pooling is one channel chain


def test_layers_the_engines_cannot_run_are_refused_by_name():
    L = keras.layers
    inner = keras.Sequential([L.Dense(3)], name="inner_block")
    inp = keras.Input((4,))
    nested = keras.Model(inp, L.Dense(2)(inner(inp)))
    with pytest.raises(UnsupportedModel, match="inner_block"):
        KerasBackend(nested, np.zeros((1, 4), np.float32))
    shared = L.Dense(4, name="shared_dense")
    inp = keras.Input((4,))
    twice = keras.Model(inp, shared(shared(inp)))
    with pytest.raises(UnsupportedModel, match="shared_dense"):
        KerasBackend(twice, np.zeros((1, 4), np.float32))


def test_class_map_in_graph_follows_the_nan_rule_of_the_numpy_one():
    nan, inf = np.nan, np.inf
    scores = np.array([[1, 3, 3, 0], [nan, 9, 0, 0], [inf, inf, 0, 1], [-inf, -inf, -inf, -inf],
                       [0, -0.0, 0, 0], [2, inf, nan, 1], [-1, -2, -0.5, -0.5]], np.float32)
    got = keras.ops.convert_to_numpy(classes_op(keras.ops.convert_to_tensor(scores)))
    assert got.dtype == np.uint8
    assert got.tolist() == classes_from_scores(scores).tolist() == [1, 4, 0, 0, 0, 4, 2]


def test_image_chunks_give_the_reference_outcomes_and_bound_the_cache():
    """Chunks of 2 of 3 images (uneven): the cache holds one chunk, outcomes are unchanged."""
    model, x = tiny_model("relu", seed=1), images(3)
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast", image_chunk=2)
    engine: CompiledEngine = fast.engine
    assert engine.images.chunks == [(0, 2), (2, 3)]
    assert np.array_equal(ref.golden(), fast.golden())
    _, faults = sample(ref, per_cell=1, seed=2)
    assert outcomes(ref, faults) == outcomes(fast, faults)
    assert max(int(v.shape[0]) for v in engine.images.cache.values()) <= 2


def test_shapes_that_do_not_reproduce_the_cache_fall_back_exactly(monkeypatch):
    """Were a kernel's bits to depend on the batch size, the engine takes smaller batches down to
    one fault per call (the reference's shapes); a chain that does not reproduce the cache
    sends its faults to the reference loop. Outcomes stay the reference's either way."""
    model, x = tiny_model("sigmoid", seed=3), images(2)
    ref = KerasBackend(model, x, engine="reference")
    _, faults = sample(ref, per_cell=1, seed=5)
    want = outcomes(ref, faults)
    real = DenseDownstream._reproduces
    monkeypatch.setattr(DenseDownstream, "_reproduces", lambda self, plan, k: k == 1 and real(self, plan, k))
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    assert fast.engine.stats["downstream_batch_refused"] > 0
    st = fast.engine.stats
    assert st["downstream_faults"] - st["pixel_downstream_faults"] == st["downstream_runs"] - st["pixel_downstream_runs"]
    real_copies = ChainCopies.__call__  # every chain call, one copy or several side by side
    monkeypatch.setattr(ChainCopies, "__call__", lambda self, flips, x: real_copies(self, flips, x) + 1.0)
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    assert fast.engine.stats["reference_untrusted_chain"] == len(faults)


def test_the_largest_batch_that_reproduces_the_cache_is_found_below_the_budget(monkeypatch):
    """Batch sizes reproduce the cache in no order (on an AMD EPYC's pruned model 3, 4, 6, 12,
    16 did and 2, 5, 8, 11, 23 did not): where only 3 faults per call would, the engine finds
    them, where halving from the budget would have ended at one."""
    model, x = tiny_model("relu", seed=2), images(2)
    ref = KerasBackend(model, x, engine="reference")
    _, faults = sample(ref, per_cell=1, seed=6, bits=[30, 23, 22])
    real = DenseDownstream._reproduces
    monkeypatch.setattr(DenseDownstream, "_reproduces", lambda self, plan, k: k in (1, 3) and real(self, plan, k))
    fast = KerasBackend(model, x, engine="fast", memory_mb=0.5)
    assert outcomes(fast, faults) == outcomes(ref, faults)
    engine = fast.engine
    plans = {p.layer: p for p in map(engine.plan, {f.set for f in faults}) if p is not None}
    whole = [p for p in plans.values() if engine.pixel_tail(p.end) is None]
    assert whole and all(engine.dense.budget(p) > 3 for p in whole)
    assert {engine.dense.size(p) for p in whole} == {3}
    assert smaller_batches(23) == [16, 12, 8, 6, 4, 3, 2, 1] and smaller_batches(1) == []


class NoPrice(dict):
    """Rung prices that record every compile as free, so that every rung is bought at once."""

    def __setitem__(self, key, seconds):
        super().__setitem__(key, 0.0)


def test_a_partial_batch_takes_a_smaller_rung_once_its_padding_has_paid_for_the_compile(monkeypatch):
    """Ski rental: a last batch of 2 runs padded to the end's batch size, renting the rung of 2,
    until the padding paid reaches what the end's first compile took; then that rung is bought
    (compiled and checked), and one that does not reproduce the cache passes the rent on to the
    next. Bought at once, rungs waste fewer slots for the same outcomes."""
    model, x = tiny_model("relu", seed=2), images(2)
    ref = KerasBackend(model, x, engine="reference")
    _, faults = sample(ref, per_cell=1, seed=6, bits=[30, 23, 22])
    engine = KerasBackend(model, x, engine="fast", memory_mb=0.5).engine
    plan = next(p for p in map(engine.plan, sorted({f.set for f in faults}))
                if p is not None and engine.pixel_tail(p.end) is None)
    k, end = engine.dense.size(plan), (plan.end, plan.rule is not None, engine.images.n)
    prices, rent = engine.dense.partial.price, engine.dense.partial.rent
    assert k > 4 and prices[end] > 0
    assert engine.dense.fitted(plan, k) == (k, None) and engine.dense.fitted(plan, 2) == (k, 2)
    real = DenseDownstream._reproduces
    monkeypatch.setattr(DenseDownstream, "_reproduces", lambda self, plan, r: r != 2 and real(self, plan, r))
    rent[(end, 2)] = prices[end]
    assert engine.dense.fitted(plan, 2) == (k, 3)  # 2 bought and refused: 3 rents now
    rent[(end, 3)] = prices[end]
    assert engine.dense.fitted(plan, 2) == (3, None) and engine.dense.fitted(plan, 3) == (3, None)
    assert engine.dense.fitted(plan, 4) == (k, 4) and engine.stats["downstream_rungs_bought"] == 2
    monkeypatch.undo()

    want, padded = outcomes(ref, faults), {}
    for free in (False, True):
        fast = KerasBackend(model, x, engine="fast", memory_mb=0.5)
        fast.engine.images._pass = {0: math.inf}  # no partial batch by the reference loop
        if free:
            fast.engine.dense.partial.price = NoPrice()
        assert outcomes(fast, faults) == want
        padded[free] = fast.engine.stats["padded_downstream_slots"]
        assert (fast.engine.stats["downstream_rungs_bought"] > 0) == free
    assert padded[True] < padded[False]


@pytest.mark.parametrize("price", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("batches", [1, 3, 10, 200])
def test_ski_rental_pays_at_most_twice_the_better_choice_in_hindsight(price, batches):
    """A run of partial batches of 2 at an end whose full call of 16 takes 1 s and whose rung of
    2 takes 2/16 of it, bought for ``price`` (its compile and check): what the rental pays,
    padding plus the price once bought, is at most twice the cheaper of never buying and buying
    at once, plus one batch's padding (the rent is looked at before each batch: a batch whose
    padding alone costs more than the compile is paid in full), however many batches come."""
    partial, bought, paid = PartialBatches(), set(), 0.0
    partial.price["end"] = price
    partial.ran("end", 16, None, 1.0, full=True)  # the end's first full call

    def buy(r):
        nonlocal paid
        paid += price
        bought.add(r)
        return True

    for _ in range(batches):
        size, renting = partial.size("end", 2, 16, lambda r: True if r in bought else None, buy)
        took = 1.0 if size == 16 else 2 / 16
        paid += took
        partial.ran("end", 16, renting, took, full=size == 16)
    hindsight = min(batches * 1.0, price + batches * 2 / 16)
    padding = 1.0 - 2 / 16
    assert paid <= 2 * hindsight + padding + 1e-9
    assert bool(bought) == ((batches - 1) * padding >= price)  # bought once the padding paid its price


def test_a_partial_batch_goes_to_the_reference_loop_where_its_passes_cost_less_than_a_padded_call():
    """A state or two left over at an early chain end would pay for a whole padded call; the
    reference loop answers them for a pass each, compiled already and exact by definition. The
    choice follows the two measured times (here set: a free pass, then a prohibitive one)."""
    model, x = tiny_model("relu", seed=2), images(2)
    ref = KerasBackend(model, x, engine="reference")
    _, faults = sample(ref, per_cell=1, seed=6, bits=[30, 23, 22])
    want, by_reference = outcomes(ref, faults), {}
    for pass_seconds in (0.0, math.inf):
        fast = KerasBackend(model, x, engine="fast", memory_mb=0.5)
        fast.engine.images._pass = {0: pass_seconds}
        assert outcomes(fast, faults) == want
        by_reference[pass_seconds] = fast.engine.stats["partial_states_by_reference"]
        assert not any(k.startswith("reference_") for k in fast.engine.stats)
    assert by_reference[0.0] > 0 and by_reference[math.inf] == 0


def test_batches_of_a_channel_chain_run_side_by_side_in_one_wider_call(monkeypatch):
    """The faults of a chain (a convolution, its BatchNorm and activation; the 1x1 classifier),
    a batch per distinct-channel set, share one call of a copy of the chain with several times
    its channels, once fault-free copies reproduce the cache; a width that does not (here
    perturbed by one ulp) runs one call per batch; outcomes are the reference's either way.
    Only convolutions, dense layers and BatchNorm with the channel on every weight's last axis
    run side by side."""
    L = keras.layers

    def called(layer, shape=(8, 8, 4)):
        layer(keras.Input(shape))
        return layer

    for layer in (L.Conv2D(4, 1), L.Dense(3), L.Conv1D(2, 3, use_bias=False), L.BatchNormalization()):
        assert side_by_side(called(layer, (8, 4) if isinstance(layer, L.Conv1D) else (8, 8, 4))), layer
    for layer in (L.Conv2DTranspose(4, 2), L.DepthwiseConv2D(3), L.Conv2D(4, 1, groups=2),
                  L.Conv2D(4, 1, activation="softmax"), L.BatchNormalization(axis=1)):
        assert not side_by_side(called(layer)), layer
    model, x = tiny_model("sigmoid", seed=3), images(2)
    ref = KerasBackend(model, x, engine="reference", include_moving_stats=True)
    layers = ("cnv_out", "cnv_3", "bn_3")
    sets = [s.name for s in ref.parameter_sets() if s.layer in layers]
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 12}, bits=[31, 30, 29, 22, 5], seed=8)
    faults = [f for f in faultlist.faults_of(frame) if f.set in sets]
    want = outcomes(ref, faults)
    fast = KerasBackend(model, x, engine="fast", include_moving_stats=True)
    assert outcomes(fast, faults) == want
    st = fast.engine.stats
    assert st["chain_batches_side_by_side"] > st["chain_runs"] > 0
    assert {fast.engine.plan(f.set).layer for f in faults} == set(layers)
    assert all(fast.engine.chains.copies_per_call(fast.engine.plan(f.set)) > 1 for f in faults)
    real = ChainCopies.__call__
    monkeypatch.setattr(ChainCopies, "__call__", lambda self, flips, x: real(self, flips, x) if self.k == 1
                        else np.nextafter(real(self, flips, x), np.inf))
    fast = KerasBackend(model, x, engine="fast", include_moving_stats=True)
    assert outcomes(fast, faults) == want
    assert fast.engine.stats["chain_batches_side_by_side"] == 0 and fast.engine.stats["chain_runs"] > st["chain_runs"]


def test_changed_pixels_only_where_no_later_layer_mixes_pixels(monkeypatch):
    """The tiny U-Net's last decoder activation and 1x1 classifier run only their changed
    pixels (the classifier's one logit at a time); a row length that does not reproduce the
    cache sends its faults to the whole-tensor downstream, with the same outcomes."""
    model, x = tiny_model("relu", seed=2), images(2)
    graph = KerasBackend(model, x, engine="fast").engine.graph
    last_act = [n for n in graph.order if n.startswith("act_")][-1]
    assert graph.tail_keeps_pixels("cnv_out") and graph.tail_keeps_pixels(last_act)
    assert not graph.tail_keeps_pixels("cnv_1") and not graph.tail_keeps_pixels(graph.input)
    classifier = residual_classifier()
    other = KerasBackend(classifier, images(2, shape=(8, 8, 3)), engine="fast").engine.graph
    assert other.tail_keeps_pixels("head") and not other.tail_keeps_pixels("dense_flat")  # Add reads a skip
    L = keras.layers
    assert keeps_pixels(classifier.get_layer("mix")) and not keeps_pixels(classifier.get_layer("conv_lin"))
    strided = L.Conv2D(2, 1, strides=2)
    strided.build((None, 8, 8, 3))
    assert not keeps_pixels(strided) and not keeps_pixels(classifier.get_layer("pool"))

    ref = KerasBackend(model, x, engine="reference")
    sets = [s.name for s in ref.parameter_sets() if s.layer in ("cnv_out", last_act.replace("act_", "cnv_"))]
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 6}, bits=[31, 30, 26, 20, 3], seed=4)
    faults = [f for f in faultlist.faults_of(frame) if f.set in sets]
    want = outcomes(ref, faults)
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    assert fast.engine.stats["pixel_downstream_faults"] > 0
    assert isinstance(fast.engine.pixel_tail("cnv_out"), LogitTail)
    assert isinstance(fast.engine.pixel_tail(last_act), PixelTail)
    # the first batch measured both paths; either, taken for every later batch, gives the outcomes
    assert fast.engine._path_times[last_act].measured
    for path in (PIXELS, WHOLE):
        monkeypatch.setattr(PathTimes, "choose", lambda self, changed, whole, path=path: path)
        assert outcomes(KerasBackend(model, x, engine="fast"), faults) == want
    monkeypatch.setattr(PixelTail, "_trust", lambda self, length: False)
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    # the last activation's rows are refused; the logits' decision calls no layer: still by pixels
    st = fast.engine.stats
    assert st["pixel_rows_untrusted"] > 0 and 0 < st["pixel_downstream_faults"] < st["downstream_faults"]


def test_one_logit_at_a_time_gives_the_softmax_class():
    """A classifier whose logits tie exactly (classes 0 and 1), nearly (class 2, inside the
    margin) and overflow (bias 1.5: bit 30 makes inf): every fault of the classifier, each
    changing one logit per pixel, has the reference's outcome; the softmax decides the ties."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((4, 8, 3))
    logits = keras.layers.Conv2D(5, 1, name="logits")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax(name="scores")(logits))
    kernel = rng.normal(0, 1, (1, 1, 3, 5)).astype(np.float32)
    kernel[..., 1] = kernel[..., 0]
    kernel[..., 2] = kernel[..., 0] * np.float32(1 + 2.0 ** -12)
    model.get_layer("logits").set_weights([kernel, np.full(5, 1.5, np.float32)])
    x = rng.normal(0, 1, (2, 4, 8, 3)).astype(np.float32)
    ref = KerasBackend(model, x, engine="reference")
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 15}, bits=[31, 30, 29, 23, 22, 10, 0], seed=1)
    faults = faultlist.faults_of(frame)
    assert len(faults) == 20 * 7  # every value, every bit
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == outcomes(ref, faults)
    st = fast.engine.stats
    assert isinstance(fast.engine.pixel_tail("logits"), LogitTail)
    assert st["pixel_downstream_faults"] == st["downstream_faults"] > 0
    assert 0 < st["softmax_pixels"] < st["logit_pixels"]


def test_logits_decide_the_softmax_class_only_past_the_margin():
    """Near-ties at every magnitude, exact ties, NaN and inf: a row the logits decide has the
    class and a finite score through Keras's own softmax; an undecided one is every row with a
    non-finite logit or a tie."""
    rng = np.random.default_rng(3)
    rows = []
    for scale in np.geomspace(1e-6, 1e38, 45):
        z = rng.normal(0, 1, (400, 5)) * scale
        top = z.max(axis=1, keepdims=True)
        lead = rng.choice([0.0, 0.5, 1.0, 1.01, 2.0, 10.0], (400, 1)) * DECIDED_MARGIN * (1 + np.abs(top))
        z[:, 1:2] = top - lead  # the runner-up from a tie to far behind
        rows.append(np.clip(z, -3.4e38, 3.4e38))
    z = np.concatenate(rows).astype(np.float32)
    z[::97, 2] = np.nan
    z[1::89, 3] = np.inf
    z[2::83, 4] = -np.inf
    ops = keras.ops
    classes, decided = (ops.convert_to_numpy(a) for a in classes_and_decided(ops.convert_to_tensor(z)))
    scores = keras.activations.softmax(ops.convert_to_tensor(z))
    want = ops.convert_to_numpy(classes_op(scores))
    finite = np.isfinite(ops.convert_to_numpy(scores)).all(axis=1)
    assert 0.3 < decided.mean() < 0.95
    assert np.array_equal(classes[decided], want[decided]) and finite[decided].all()
    assert not decided[~np.isfinite(z).all(axis=1)].any()
    s = np.sort(z, axis=1)
    assert not decided[s[:, -1] == s[:, -2]].any()


def test_softmax_apart_gives_the_outcomes_of_the_whole_softmax(monkeypatch):
    """The tiny U-Net's closing softmax runs only on the pixels the logits leave open, after
    changed pixels and after whole tensors alike; with the probe of the backend's softmax
    failing, the softmax runs whole; outcomes are the reference's either way."""
    model, x = tiny_model("sigmoid", seed=4), images(2)
    bias = model.get_layer("cnv_out").bias
    bias.assign(np.full(bias.shape, 1.5, np.float32))  # in [1, 2): bit 30 makes it inf
    ref = KerasBackend(model, x, engine="reference")
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 3}, bits=[31, 30, 29, 22, 10], seed=6)
    faults = faultlist.faults_of(frame)
    want = outcomes(ref, faults)
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    st = fast.engine.stats
    assert fast.engine.pixel_tail("cnv_out").split and st["pixel_downstream_faults"] > 0
    assert st["downstream_faults"] > st["pixel_downstream_faults"]  # whole tensors too
    assert 0 < st["softmax_pixels"] < st["logit_pixels"] / 4  # bit 30 makes inf logits
    monkeypatch.setattr(SoftmaxApart, "agrees", property(lambda self: False))
    fast = KerasBackend(model, x, engine="fast")
    assert outcomes(fast, faults) == want
    assert not fast.engine.pixel_tail("cnv_out").split and fast.engine.stats["logit_pixels"] == 0


def test_fused_class_maps_are_the_plain_ones_and_fall_back_where_xla_cannot_compile():
    """The fused decision gives the unfused graph's classes and flags on NaN, inf and ties; a
    function XLA refuses runs as a plain compiled one."""
    import tensorflow as tf

    z = np.random.default_rng(2).normal(0, 1, (300, 5)).astype(np.float32)
    z[::7, 1] = z[::7, 0]
    z[::11, 2], z[::13, 3], z[::17, 4] = np.nan, np.inf, -np.inf
    t = keras.ops.convert_to_tensor(z)
    for logits, plain in ((True, classes_and_decided), (False, lambda s: (classes_op(s), nonfinite_rows(s)))):
        got = [compiled.to_host(a) for a in decision(logits)(t)]
        want = [keras.ops.convert_to_numpy(a) for a in plain(t)]
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
    refused = compiled.compile_fused(lambda a: tf.numpy_function(lambda v: v * 2, [a], tf.float32, stateful=False))
    assert np.array_equal(compiled.to_host(refused(tf.constant([1.0, 2.0]))), [2.0, 4.0])


def test_row_lengths_pad_little_and_stay_few():
    lengths = [row_length(p) for p in range(1, 70_000)]
    assert all(p <= n for p, n in zip(range(1, 70_000), lengths)) and lengths == sorted(lengths)
    assert all(n <= 1.5 * p for p, n in zip(range(256, 70_000), lengths[255:]))
    assert len(set(lengths)) <= 2 * 9 + 1  # two per octave from 256 up


def test_memory_budget_sizes_the_batch():
    model, x = tiny_model("relu"), images(2)
    small = KerasBackend(model, x, engine="fast", memory_mb=0.25).engine
    large = KerasBackend(model, x, engine="fast", memory_mb=64).engine
    plan = small.plan("cnv_1/kernel")
    assert 1 <= small.dense.budget(plan) < large.dense.budget(plan) <= large.max_batch


def test_equal_faulty_channels_share_one_downstream_run(monkeypatch):
    """Exponent-MSB flips of values in (1, 2) make NaN: equal faulty channels run downstream
    once, and a second pass is answered from the memo alone."""
    model, x = tiny_model("relu"), images()
    ref = KerasBackend(model, x, engine="reference")
    fast = KerasBackend(model, x, engine="fast")
    _, faults = sample(ref, per_cell=4, bits=[30])
    a = outcomes(ref, faults)
    assert a == outcomes(fast, faults)
    assert fast.engine.stats["memo_hits"] > 0 and sum(o["nonfinite"] for o in a) > 0
    runs = fast.engine.stats["downstream_runs"]
    assert a == outcomes(fast, faults)
    assert fast.engine.stats["downstream_runs"] == runs
    monkeypatch.setattr(MemoWorth, "pays", lambda self: False)  # where hashing does not pay
    unkeyed = KerasBackend(model, x, engine="fast")
    assert outcomes(unkeyed, faults) == a and unkeyed.engine.stats["memo_hits"] == 0


def test_killed_shard_resumes_without_losing_or_repeating_a_fault(tmp_path):
    model, x = tiny_model("hard_sigmoid"), images(2)
    labels = np.zeros((2, 16, 32), np.uint8)
    labels[:, :4] = 255
    backend = KerasBackend(model, x, engine="fast")
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


def test_benchmark_profile_times_a_pass_from_every_chain_end(capsys):
    """The per-chain-end table of ``hsiseu faults-benchmark``: every chain end the sample reaches,
    with one naive-shaped pass from it timed, and the pass ceiling."""
    import time

    from hsiseu.faults.keras.benchmark import _pass_from, _profile, flop_shares

    model, x = tiny_model("relu"), images(2)
    fast = KerasBackend(model, x, engine="fast")
    _, faults = sample(fast, per_cell=2, bits=[30, 22])
    t0 = time.perf_counter()
    list(fast.run(faults))
    total = time.perf_counter() - t0
    engine = fast.engine
    _profile(engine, faults, total, flop_shares(engine.graph, faults), naive=total / len(faults))
    out = capsys.readouterr().out
    ends = {engine.plan(f.set).end for f in faults}
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.split() and line.split()[0] in ends}
    assert set(rows) == ends and "pass ms" in out.splitlines()[0]
    assert "pass ceiling of the sample" in out
    assert all(float(row[-1]) > 0 for row in rows.values()) and _pass_from(engine, "cnv_out") > 0
