"""The U-Net's structure, names, cost counter and inference helper."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

from hsiseu.model import AFS, Complexity, build_unet, complexity, predict_classes

TINY = dict(height=4, width=4, bands=3, n_classes=2, pools=1, base_filters=2)


def _tiny(af: str = "relu", seed: int | None = 0) -> keras.Model:
    return build_unet(af=af, seed=seed, **TINY)


@pytest.fixture(scope="module")
def paper_model() -> keras.Model:
    # Big (31 M params): built once, never run on data.
    return build_unet(height=192, width=384, bands=25, n_classes=5, af="relu")


def test_paper_config_has_paper_params_flops_and_100_trainable_variables(paper_model):
    c = complexity(paper_model)
    assert c.params_m == pytest.approx(31.13, abs=0.01)  # DESIGN: 31.125 M
    assert 34.5 <= c.gflops <= 34.6
    assert c.gflops == pytest.approx(34.53, abs=0.01)  # DESIGN: 34.53 GFLOPs
    assert c.params == paper_model.count_params()
    # 28 convs (22 3x3, 5 transposed, 1 output) x (kernel, bias) + 22 BN x (gamma, beta)
    assert len(paper_model.trainable_variables) == 100


def test_paper_config_filter_counts_follow_the_paper(paper_model):
    enc = [paper_model.get_layer(f"cnv_{i}").filters for i in range(1, 13)]
    assert enc == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    dec = [paper_model.get_layer(f"cnv_{i}").filters for i in range(13, 23)]
    assert dec == [512, 512, 256, 256, 128, 128, 64, 64, 32, 32]
    assert [paper_model.get_layer(f"tcnv_{l}").filters for l in range(1, 6)] == [
        512,
        256,
        128,
        64,
        32,
    ]
    assert paper_model.output.shape == (None, 192, 384, 5)


def test_layer_names_are_stable_and_in_graph_order():
    model = build_unet(height=16, width=16, bands=3, n_classes=4, af="sigmoid", pools=3, seed=0)
    assert model.name == "unet_sigmoid"
    names = [layer.name for layer in model.layers]
    expected = {"input", "cnv_out", "softmax"}
    expected |= {f"{p}_{i}" for p in ("cnv", "bn", "act") for i in range(1, 15)}
    expected |= {f"{p}_{l}" for p in ("pool", "tcnv", "cat") for l in range(1, 4)}
    assert set(names) == expected
    assert names[0] == "input" and names[-2:] == ["cnv_out", "softmax"]
    conv_order = [n for n in names if n.startswith("cnv_") and n != "cnv_out"]
    assert conv_order == [f"cnv_{i}" for i in range(1, 15)]
    # Each conv block is conv -> bn -> act with the same index.
    for i in range(1, 15):
        assert model.get_layer(f"bn_{i}").input is model.get_layer(f"cnv_{i}").output
        assert model.get_layer(f"act_{i}").input is model.get_layer(f"bn_{i}").output
    # tcnv_1 is the deepest decoder level: it reads the base (act_8) and its concat takes the
    # deepest encoder skip (act_6) first.
    assert model.get_layer("tcnv_1").input is model.get_layer("act_8").output
    cat1 = model.get_layer("cat_1").input
    assert cat1[0] is model.get_layer("act_6").output
    assert cat1[1] is model.get_layer("tcnv_1").output
    cat3 = model.get_layer("cat_3").input
    assert cat3[0] is model.get_layer("act_2").output
    assert model.get_layer("pool_1").input is model.get_layer("act_2").output
    assert model.get_layer("cnv_out").kernel_size == (1, 1)


def test_complexity_matches_hand_count_for_tiny_model():
    # 4x4x3 input, pools 1, base 2 filters, 2 classes. (params, MACs) per layer:
    #   cnv_1 3->2 @4x4: 9*3*2+2 = 56,  16*9*3*2 = 864;  bn_1: 4*2 = 8
    #   cnv_2 2->2 @4x4: 9*2*2+2 = 38,  16*9*2*2 = 576;  bn_2: 8
    #   cnv_3 2->4 @2x2: 9*2*4+4 = 76,   4*9*2*4 = 288;  bn_3: 16
    #   cnv_4 4->4 @2x2: 9*4*4+4 = 148,  4*9*4*4 = 576;  bn_4: 16
    #   tcnv_1 4->2, 2x2 on 2x2 input: 2*2*4*2+2 = 34,  4*4*4*2 = 128
    #   cnv_5 4->2 @4x4: 9*4*2+2 = 74, 16*9*4*2 = 1152;  bn_5: 8
    #   cnv_6 2->2 @4x4: 38, 576;  bn_6: 8
    #   cnv_out 1x1 2->2 @4x4: 2*2+2 = 6, 16*2*2 = 64
    model = _tiny()
    c = complexity(model)
    assert c == Complexity(params=534, flops=2 * 4224)
    assert c.params == model.count_params()
    assert c.params_m == pytest.approx(534e-6)
    assert c.gflops == pytest.approx(8448e-9)


def test_complexity_follows_non_uniform_filters_of_a_rebuilt_model():
    # What pruning does: edit filters in the config, rebuild with Model.from_config.
    config = copy.deepcopy(_tiny().get_config())
    for layer in config["layers"]:
        layer.pop("build_config", None)
        if layer["config"]["name"] == "cnv_1":
            layer["config"]["filters"] = 1
    slim = keras.Model.from_config(config)
    # cnv_1 3->1: 28 params, 16*9*3*1 = 432 MACs (was 56, 864); bn_1: 4 (was 8)
    # cnv_2 1->2: 20 params, 16*9*1*2 = 288 MACs (was 38, 576)
    c = complexity(slim)
    assert c.params == 534 - 28 - 4 - 18 == slim.count_params()
    assert c.flops == 2 * (4224 - 432 - 288)


def test_complexity_divides_grouped_convolutions_and_accepts_fixed_batch():
    inp = keras.Input(batch_shape=(2, 8, 8, 4))
    out = keras.layers.Conv2D(6, 3, padding="valid", groups=2)(inp)
    c = complexity(keras.Model(inp, out))
    # 6x6 output, 3x3 kernel, 4/2 input channels per group, 6 filters
    assert c.flops == 2 * 6 * 6 * 9 * 2 * 6
    assert c.params == 9 * 2 * 6 + 6


@pytest.mark.parametrize("af", AFS)
def test_each_activation_builds_and_outputs_probabilities(af):
    model = _tiny(af)
    assert model.name == f"unet_{af}"
    assert model.get_layer("act_1").get_config()["activation"] == af
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 4, 4, 2)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    # The logits layer is reachable on its own.
    assert model.get_layer("softmax").input is model.get_layer("cnv_out").output


def test_same_seed_gives_same_weights_and_layers_get_distinct_seeds():
    a, b, c = _tiny(seed=7), _tiny(seed=7), _tiny(seed=8)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(
        a.get_layer("cnv_1").get_weights()[0],
        c.get_layer("cnv_1").get_weights()[0],
    )
    # cnv_2 and cnv_6 have the same kernel shape; a shared seed would make them equal.
    k2 = a.get_layer("cnv_2").get_weights()[0]
    k6 = a.get_layer("cnv_6").get_weights()[0]
    assert k2.shape == k6.shape and not np.array_equal(k2, k6)


def test_config_round_trip_keeps_names_and_seeded_weights():
    model = _tiny(seed=3)
    rebuilt = keras.Model.from_config(model.get_config())
    assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
    for w0, w1 in zip(model.get_weights(), rebuilt.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_hard_sigmoid_layer_is_keras3_relu6_form():
    model = _tiny("hard_sigmoid")
    probe = keras.Model(
        model.input, [model.get_layer("bn_1").output, model.get_layer("act_1").output]
    )
    x = 10 * np.random.default_rng(1).normal(size=(4, 4, 4, 3)).astype(np.float32)
    pre, post = (keras.ops.convert_to_numpy(t) for t in probe(x, training=False))
    # The probe must cover both saturated ends and the linear part.
    assert pre.min() < -3 and pre.max() > 3 and np.any(np.abs(pre) < 2.5)
    np.testing.assert_allclose(post, np.clip(pre + 3, 0, 6) / 6, rtol=1e-6, atol=1e-7)
    keras2 = np.clip(0.2 * pre + 0.5, 0, 1)
    assert not np.allclose(post, keras2, atol=1e-3)


def test_unknown_activation_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="tanhh"):
        build_unet(height=32, width=32, bands=3, n_classes=2, af="tanhh")


@pytest.mark.parametrize(("height", "width", "bad"), [(100, 64, "height=100"), (64, 48, "width=48")])
def test_size_not_divisible_by_2_pow_pools_raises_value_error_naming_it(height, width, bad):
    with pytest.raises(ValueError, match=bad):
        build_unet(height=height, width=width, bands=3, n_classes=2, af="relu", pools=5)


def test_predict_classes_returns_uint8_argmax_map_in_batches():
    model = _tiny(seed=1)
    x = np.random.default_rng(2).normal(size=(5, 4, 4, 3)).astype(np.float32)
    y = predict_classes(model, x, batch_size=2)  # 2 + 2 + 1
    assert y.shape == (5, 4, 4) and y.dtype == np.uint8
    expected = np.argmax(keras.ops.convert_to_numpy(model(x, training=False)), axis=-1)
    np.testing.assert_array_equal(y, expected)
    assert predict_classes(model, x[:0]).shape == (0, 4, 4)
