"""Dependency groups and channel surgery: the slim model is the masked model, only smaller."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hsiseu.model import AFS, build_unet, complexity
from hsiseu.pruning.groups import find_groups, prunable_groups
from hsiseu.pruning.surgery import (
    channels_to_remove,
    l1_norms,
    layer_flops,
    masked,
    n_removed,
    pruned_complexity,
    slim_model,
)

def _np(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


SIZES = [(1, 2), (2, 4), (3, 3)]  # (pools, base_filters); 3 is odd on purpose


def _model(af: str, pools: int, base: int, seed: int = 0) -> keras.Model:
    """A U-Net whose BatchNorms have non-trivial statistics, as after training (fresh ones are
    identity-like and would hide a mis-sliced BN)."""
    model = build_unet(height=16, width=32, bands=5, n_classes=5, af=af, pools=pools, base_filters=base, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(1.0, 0.5, gamma.shape).astype("float32"),
                    rng.normal(0.0, 0.5, beta.shape).astype("float32"),
                    rng.normal(0.0, 0.5, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )
    return model


def _random_removal(model, groups, rng, fraction=None):
    removal = {}
    for g in groups:
        n = int(rng.integers(0, g.channels)) if fraction is None else n_removed(fraction, g.channels)
        if n:
            removal[g.producer] = np.sort(rng.choice(g.channels, size=n, replace=False))
    return removal


def test_final_classifier_is_never_prunable_and_every_other_conv_is():
    model = _model("relu", 2, 4)
    groups = {g.producer: g for g in find_groups(model)}
    assert not groups["cnv_out"].prunable
    assert {name for name, g in groups.items() if g.prunable} == set(groups) - {"cnv_out"}


def test_concatenate_maps_channels_by_offset():
    model = _model("relu", 2, 4)
    groups = {g.producer: g for g in find_groups(model)}
    # cat_1 = [act_4 (skip, 8 channels), tcnv_1 (8)] feeds cnv_7: the skip at 0, the upsampled at 8.
    assert [(c.layer, c.offset) for c in groups["cnv_4"].consumers] == [("cnv_5", 0), ("cnv_7", 0)]
    assert [(c.layer, c.offset) for c in groups["tcnv_1"].consumers] == [("cnv_7", 8)]
    assert [(s.layer, s.offset) for s in groups["cnv_4"].per_channel] == [("bn_4", 0)]
    assert groups["tcnv_1"].per_channel == ()


def test_unsupported_layer_blocks_the_group_with_a_reason():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(inputs)
    added = keras.layers.Add(name="add")([a, b])
    out = keras.layers.Conv2D(2, 1, name="head")(added)
    groups = {g.producer: g for g in find_groups(keras.Model(inputs, out))}
    assert "Add" in groups["a"].blocked and "Add" in groups["b"].blocked
    assert "model output" in groups["head"].blocked


@pytest.mark.parametrize("af", AFS)
@pytest.mark.parametrize("pools, base", SIZES)
def test_slim_model_matches_masked_model(af, pools, base):
    model = _model(af, pools, base, seed=pools)
    groups = prunable_groups(model)
    rng = np.random.default_rng(pools * 10 + base)
    removal = _random_removal(model, groups, rng)
    assert removal, "the random removal should remove something"
    x = rng.normal(size=(2, 16, 32, 5)).astype("float32")
    slim = slim_model(model, groups, removal)
    with masked(model, groups, removal):
        y_masked = _np(model(x, training=False))
    y_slim = _np(slim(x, training=False))
    assert np.max(np.abs(y_masked - y_slim)) < 1e-5
    # ... and pruning changed the function (the check would be vacuous otherwise).
    assert np.max(np.abs(_np(model(x, training=False)) - y_slim)) > 1e-4


@pytest.mark.parametrize("af", AFS)
def test_zeroing_only_the_producer_is_not_enough_for_bounded_activations(af):
    """AF(BN(0)) != 0: a removed channel still feeds its consumers unless they are zeroed too."""
    model = _model(af, 1, 2)
    groups = prunable_groups(model)
    g = groups[0]
    removal = {g.producer: np.array([0])}
    x = np.random.default_rng(1).normal(size=(1, 16, 32, 5)).astype("float32")
    slim = slim_model(model, groups, removal)
    layer = model.get_layer(g.producer)
    saved = layer.get_weights()
    kernel, bias = (w.copy() for w in saved)
    kernel[..., 0], bias[0] = 0.0, 0.0
    layer.set_weights([kernel, bias])
    y_producer_only = _np(model(x, training=False))
    layer.set_weights(saved)
    assert np.max(np.abs(y_producer_only - _np(slim(x, training=False)))) > 1e-4


@pytest.mark.parametrize("pools, base", SIZES)
def test_slim_model_is_smaller_and_its_cost_is_predicted_exactly(pools, base):
    model = _model("sigmoid", pools, base)
    groups = prunable_groups(model)
    assert sum(layer_flops(model).values()) == complexity(model).flops
    removal = _random_removal(model, groups, np.random.default_rng(3), fraction=0.5)
    slim = slim_model(model, groups, removal)
    before, after = complexity(model), complexity(slim)
    assert after.params < before.params and after.flops < before.flops
    assert pruned_complexity(model, groups, removal) == after
    assert pruned_complexity(model, groups, {}) == before
    for g in groups:
        assert slim.get_layer(g.producer).filters == g.channels - len(removal.get(g.producer, ()))


def test_slim_model_survives_save_and_load(tmp_path):
    model = _model("hard_sigmoid", 2, 4)
    groups = prunable_groups(model)
    slim = slim_model(model, groups, _random_removal(model, groups, np.random.default_rng(5), fraction=0.5))
    slim.save(tmp_path / "slim.keras")
    loaded = keras.saving.load_model(tmp_path / "slim.keras")
    x = np.random.default_rng(0).normal(size=(1, 16, 32, 5)).astype("float32")
    np.testing.assert_array_equal(_np(loaded(x)), _np(slim(x)))
    assert complexity(loaded) == complexity(slim)


def test_channels_are_chosen_by_smallest_l1_norm():
    model = _model("relu", 1, 4)
    g = prunable_groups(model)[0]
    kernel, bias = model.get_layer(g.producer).get_weights()
    kernel[...] = 1.0
    kernel[..., 2] = 0.01
    kernel[..., 0] = 0.1
    model.get_layer(g.producer).set_weights([kernel, bias])
    np.testing.assert_allclose(l1_norms(model, g.producer), np.abs(kernel).sum(axis=(0, 1, 2)))
    assert channels_to_remove(model, g, 2).tolist() == [0, 2]
    # Conv2DTranspose keeps its output channels on axis 2.
    tg = next(gr for gr in prunable_groups(_model("relu", 1, 4)) if gr.producer.startswith("tcnv"))
    tk = model.get_layer(tg.producer).get_weights()[0]
    np.testing.assert_allclose(l1_norms(model, tg.producer), np.abs(tk).sum(axis=(0, 1, 3)))


def test_masking_is_undone_after_the_block():
    model = _model("sigmoid", 1, 4)
    groups = prunable_groups(model)
    before = [w.copy() for w in model.get_weights()]
    with masked(model, groups, {groups[0].producer: np.array([1, 2])}):
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_removing_every_channel_or_a_blocked_group_is_refused():
    model = _model("relu", 1, 2)
    groups = find_groups(model)
    first = groups[0]
    with pytest.raises(ValueError, match="no channels"):
        slim_model(model, groups, {first.producer: np.arange(first.channels)})
    with pytest.raises(ValueError, match="not prunable"):
        slim_model(model, groups, {"cnv_out": np.array([0])})
    assert n_removed(0.9, 4) == 3 and n_removed(0.99, 4) == 3 and n_removed(0.1, 8) == 0
