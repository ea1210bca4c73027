"""The classifier bound: a move it allows keeps the pixel's class through Keras's own classifier
and softmax; it is tight enough to matter; a backend that rounds coarser is refused; and the
fast engine with it gives the reference loop's outcome for every fault."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hsiseu.runtime import configure_tensorflow

configure_tensorflow(1, 0)

from hsiseu.faults import faultlist  # noqa: E402
from hsiseu.faults.keras import bound as bound_module  # noqa: E402
from hsiseu.faults.keras.backend import KerasBackend  # noqa: E402
from hsiseu.faults.keras.bound import ClassifierBound, moved, pointwise_affine, safe_moves, windows  # noqa: E402
from hsiseu.faults.keras.classmap import classes_and_decided, classes_op  # noqa: E402

from test_faults_engines import images, outcomes, tiny_model  # noqa: E402

CHANNELS, CLASSES = 8, 5


def classifier(seed: int = 0) -> keras.layers.Conv2D:
    """A 1x1 classifier whose class 1 nearly ties class 0 (columns equal to 2^-12)."""
    rng = np.random.default_rng(seed)
    layer = keras.layers.Conv2D(CLASSES, 1)
    layer.build((None, 1, None, CHANNELS))
    kernel = rng.normal(0, 1, (1, 1, CHANNELS, CLASSES)).astype(np.float32)
    kernel[..., 1] = kernel[..., 0] * np.float32(1 + 2.0 ** -12)
    layer.set_weights([kernel, rng.normal(0, 0.5, CLASSES).astype(np.float32)])
    return layer


def weights_of(layer) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's kernel as (C, classes) and its bias."""
    kernel, bias = layer.get_weights()
    return kernel.reshape(-1, CLASSES), bias


def logits_of(layer, rows: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(rows[None, None])).reshape(len(rows), CLASSES)


def fault_free_rows(seed: int = 1, n: int = 3000) -> np.ndarray:
    """Activations of every magnitude from 1e-3 to 1e6, a third of them zero (a ReLU's)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (n, CHANNELS)) * np.geomspace(1e-3, 1e6, n)[:, None]
    a[rng.random(a.shape) < 1 / 3] = 0
    return a.astype(np.float32)


def decide(layer, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Through the layer's own call and Keras's softmax: classes, finite scores, and whether
    the logits decide."""
    z = logits_of(layer, rows)
    scores = keras.activations.softmax(keras.ops.convert_to_tensor(z))
    classes = keras.ops.convert_to_numpy(classes_op(scores))
    finite = np.isfinite(keras.ops.convert_to_numpy(scores)).all(axis=1)
    decided = keras.ops.convert_to_numpy(classes_and_decided(keras.ops.convert_to_tensor(z))[1])
    return classes, finite, decided


def move(a: np.ndarray, c: int, delta: np.ndarray, safe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with channel c moved by ``delta`` in float32, and where the engine finds the
    move inside the bound's window (or no move at all)."""
    b = a.copy()
    b[:, c] = (a[:, c].astype(np.float64) + delta).astype(np.float32)
    differs = b[:, c].view(np.uint32) != a[:, c].view(np.uint32)
    outside = moved(b[:, c][None], differs[None], windows(safe, np.ascontiguousarray(a.T)), np.array([c]))[0]
    return b, ~outside


def test_windows_compare_moves_exactly():
    """A float32 value inside the window is less than the threshold away in exact arithmetic,
    at every magnitude and right at the window's ends."""
    rng = np.random.default_rng(4)
    gold = (rng.normal(0, 1, (1, 20000)) * np.geomspace(1e-30, 1e30, 20000)).astype(np.float32)
    safe = (np.abs(gold) * rng.uniform(1e-8, 2, gold.shape)).astype(np.float32)
    lo, hi = windows(safe, gold)
    up, down = np.float32(np.inf), np.float32(-np.inf)
    for v in (lo, hi, np.nextafter(lo, down), np.nextafter(hi, up), np.nextafter(lo, up), np.nextafter(hi, down)):
        inside = (v > lo) & (v < hi)
        exact = np.abs(v.astype(np.float64) - gold.astype(np.float64)) < safe.astype(np.float64)
        assert not (inside & ~exact).any()
    assert ((np.nextafter(lo, up) > lo) & (np.nextafter(lo, up) < hi)).mean() > 0.99  # the ends are tight


def test_every_move_the_bound_allows_keeps_the_class_through_the_layers_own_calls():
    layer, a = classifier(), fault_free_rows()
    classes, finite, _ = decide(layer, a)
    kernel, bias = weights_of(layer)
    safe = safe_moves(kernel, bias, a, logits_of(layer, a), classes)
    assert safe.shape == (CHANNELS, len(a)) and safe.dtype == np.float32
    assert (safe > 0).mean() > 0.9  # near-ties and the tie rows are the rest
    rng = np.random.default_rng(2)
    checked = 0
    for c in range(CHANNELS):
        for scale in (1 - 2.0 ** -20, 0.5, rng.uniform(0, 1, len(a))):
            for sign in (1.0, -1.0):
                b, inside = move(a, c, sign * scale * safe[c].astype(np.float64), safe)
                inside &= safe[c] > 0  # an empty window claims nothing (the pixel did not move)
                got, ok, decided = decide(layer, b)
                assert np.array_equal(got[inside], classes[inside])
                assert ok[inside].all() and decided[inside].all()
                checked += int(inside.sum())
    assert checked > 0.9 * CHANNELS * 6 * len(a)


def test_the_bound_is_tight_a_few_times_past_it_a_move_turns_the_class():
    """Four times past the threshold, one of the two signs of the move leaves most pixels
    undecided or of another class: the bound gives up little, and the test above can fail."""
    layer, a = classifier(), fault_free_rows()
    classes, _, _ = decide(layer, a)
    kernel, bias = weights_of(layer)
    safe = safe_moves(kernel, bias, a, logits_of(layer, a), classes)
    turned, total = 0, 0
    for c in range(CHANNELS):
        live = safe[c] > 0
        either = np.zeros(len(a), bool)
        for sign in (1.0, -1.0):
            b, _ = move(a, c, sign * 4 * safe[c].astype(np.float64), safe)
            got, _, decided = decide(layer, b)
            either |= (got != classes) | ~decided
        turned += int((either & live).sum())
        total += int(live.sum())
    assert turned > 0.9 * total


def test_a_backend_that_rounds_coarser_than_float32_is_refused():
    layer = classifier()
    kernel, bias = weights_of(layer)
    bound = ClassifierBound(kernel, bias, "logits")
    assert bound.rounds_as_float32(lambda rows: logits_of(layer, rows))

    def coarser(drop_bits: int):
        def run(rows):
            z = logits_of(layer, rows)
            return (z.view(np.uint32) & np.uint32((0xFFFFFFFF << drop_bits) & 0xFFFFFFFF)).view(np.float32)
        return run

    assert not bound.rounds_as_float32(coarser(13))  # TF32's 10-bit mantissa
    assert not bound.rounds_as_float32(coarser(16))  # bfloat16's


def test_only_a_pointwise_affine_float32_layer_is_bounded():
    L = keras.layers
    assert pointwise_affine(L.Conv2D(5, 1)) and pointwise_affine(L.Dense(5))
    assert not pointwise_affine(L.Conv2D(5, 1, activation="relu"))
    assert not pointwise_affine(L.Conv2D(5, 3))
    assert not pointwise_affine(L.Conv2D(5, 1, dilation_rate=2))
    assert not pointwise_affine(L.Dense(5, activation="softmax"))
    assert not pointwise_affine(L.Dense(5, dtype="float16"))


def _last_chain_faults(backend):
    """Every value and bit of the layers whose chain ends at the classifier's input."""
    engine = backend.engine
    end = engine.graph.nodes["cnv_out"].inputs[0]
    frame = faultlist.generate(backend.parameter_sets(), sampling={"fixed_n": 10},
                               bits=[31, 30, 29, 28, 26, 23, 22, 16, 8, 0], seed=3)
    faults = faultlist.faults_of(frame)
    return end, [f for f in faults if (p := engine.plan(f.set)) is not None and p.end == end]


@pytest.mark.parametrize("af", ["relu", "sigmoid"])
def test_engine_with_the_bound_gives_the_reference_outcomes(af, monkeypatch):
    model, x = tiny_model(af), images()
    ref = KerasBackend(model, x, engine="reference", include_moving_stats=True)
    fast = KerasBackend(model, x, engine="fast", memory_mb=0.5, include_moving_stats=True)
    end, faults = _last_chain_faults(fast)
    assert len(faults) > 100
    want = outcomes(ref, faults)
    assert outcomes(fast, faults) == want
    st = fast.engine.stats
    assert fast.engine.safe_windows(end) is not None
    assert st["kept_by_bound"] > 0 and st["pixels_kept_by_bound"] > 0
    assert st["pixel_downstream_faults"] > 0  # and the rest still ran
    # a bound 10^4 times too loose gives other outcomes: the comparison above can fail
    loose = KerasBackend(model, x, engine="fast", memory_mb=0.5, include_moving_stats=True)
    real = bound_module.safe_moves
    monkeypatch.setattr(bound_module, "safe_moves", lambda *a: real(*a) * np.float32(1e4))
    assert outcomes(loose, faults) != want


def test_cached_logits_that_stray_past_float32_rounding_allow_no_move():
    layer, a = classifier(), fault_free_rows()
    classes, _, _ = decide(layer, a)
    kernel, bias = weights_of(layer)
    z = logits_of(layer, a)
    assert (safe_moves(kernel, bias, a, z, classes) > 0).any()
    coarse = (z.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # bfloat16's mantissa
    assert not (safe_moves(kernel, bias, a, coarse, classes) > 0).any()
