"""Full-int8 conversion: integer-only graphs, the interpreter agrees with the float model, and bad
inputs stop with errors that say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from hsiseu.model import build_unet, predict_classes
from hsiseu.quantization.convert import QuantizationError, convert_float, quantize_int8
from hsiseu.quantization.graph import (
    NotIntegerOnlyError,
    check_integer_only,
    op_counts,
    operators,
    tensor_data,
)
from hsiseu.quantization.interpreter import KERNELS, make_interpreter, quantize_input, tflite_predictor

RNG = np.random.default_rng(0)
CALIB = RNG.random((4, 32, 64, 25), dtype=np.float32)


def tiny_unet(af: str, seed: int = 1):
    return build_unet(height=32, width=64, bands=25, n_classes=5, af=af, pools=2, base_filters=4, seed=seed)


@pytest.fixture(scope="module")
def int8_models():
    return {af: quantize_int8(tiny_unet(af), CALIB) for af in ("relu", "sigmoid", "hard_sigmoid")}


def test_quantized_model_is_integer_only_with_int8_weights_int32_biases_and_int8_io(int8_models):
    content = int8_models["relu"]
    check_integer_only(content)
    interp = make_interpreter(content, kernels="xnnpack")
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    convs = [op for op in operators(content) if op.name == "CONV_2D"]
    assert convs and all(op.input_types == ("INT8", "INT8", "INT32") for op in convs)
    # Batch fixed at 1: no run-time shape arithmetic around TRANSPOSE_CONV.
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(op_counts(content))


def test_op_lists_show_how_each_activation_is_lowered(int8_models):
    ops = {af: op_counts(c) for af, c in int8_models.items()}
    n_blocks = 4 * 2 + 2  # 3x3 conv blocks of a 2-level U-Net
    assert ops["sigmoid"]["LOGISTIC"] == n_blocks  # int8 sigmoid kernel
    assert "LOGISTIC" not in ops["relu"] and "LOGISTIC" not in ops["hard_sigmoid"]
    # Hard sigmoid = relu6(x + 3) / 6: +3 folded into the bias, RELU6 fused into the conv, and the
    # 1/6 a MUL (or folded into the next conv): no op of its own beyond MUL.
    assert set(ops["hard_sigmoid"]) - set(ops["relu"]) <= {"MUL"}
    assert ops["hard_sigmoid"].get("MUL", 0) >= 1
    for counts in ops.values():
        assert counts["CONV_2D"] == n_blocks + 1 and counts["TRANSPOSE_CONV"] == 2


def test_float_tflite_is_rejected_by_the_integer_only_check():
    with pytest.raises(NotIntegerOnlyError, match=r"CONV_2D.*FLOAT32"):
        check_integer_only(convert_float(tiny_unet("relu")))


def test_op_without_int8_kernel_fails_conversion_naming_the_op():
    import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.Lambda(lambda t: keras.ops.sin(t))(x)
    model = keras.Model(inp, keras.layers.Conv2D(2, 1)(x), name="has_sin")
    with pytest.raises((NotIntegerOnlyError, QuantizationError), match=r"has_sin.*SIN"):
        quantize_int8(model, RNG.random((4, 8, 8, 3), dtype=np.float32))


@pytest.mark.parametrize(
    "samples, needle",
    [
        (np.zeros((0, 32, 64, 25), np.float32), "non-empty"),
        (np.zeros((2, 32, 32, 25), np.float32), "expects"),
        (np.full((2, 32, 64, 25), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_representative_data_is_refused(samples, needle):
    with pytest.raises(ValueError, match=needle):
        quantize_int8(tiny_unet("relu"), samples)


@pytest.mark.parametrize("kernels", KERNELS)
def test_edited_biases_reach_the_model_under_either_kernels(int8_models, kernels):
    from ai_edge_litert.interpreter import OpResolverType

    assert KERNELS["builtin"] == OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    assert KERNELS["xnnpack"] == OpResolverType.AUTO  # what Interpreter() uses when not told
    content = bytearray(int8_models["relu"])
    out = make_interpreter(content, kernels=kernels).get_output_details()[0]["index"]

    def logits(model_bytes):
        interp = make_interpreter(model_bytes, kernels=kernels)
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
        interp.invoke()
        return interp.get_tensor(out).copy()

    before = logits(content)
    last = [op for op in operators(content) if op.name == "CONV_2D"][-1]
    bias = tensor_data(content, last.inputs[2])
    bias[0] += 2**20  # a large push to class 0 in the final 1x1 conv
    after = logits(content)
    assert not np.array_equal(before, after)
    assert (np.argmax(after, -1) == 0).mean() > (np.argmax(before, -1) == 0).mean()


def easy_data(n: int, seed: int):
    """Pixels whose class is the brightest of the first five bands, by a clear margin."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=(n, 32, 64)).astype(np.uint8)
    x = rng.uniform(0.0, 0.4, size=(n, 32, 64, 25)).astype(np.float32)
    np.put_along_axis(x, y[..., None].astype(np.intp), 1.0, axis=-1)
    return x, y


def easy_model():
    """Conv (reads the first five bands) -> ReLU -> 1x1 conv -> softmax, weights set by hand."""
    import keras

    inp = keras.Input((32, 64, 25))
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="pick")(inp)
    out = keras.layers.Activation("softmax")(keras.layers.Conv2D(5, 1, name="scale")(h))
    model = keras.Model(inp, out, name="easy")
    pick = np.zeros((3, 3, 25, 5), np.float32)
    pick[1, 1, :5, :5] = np.eye(5)
    model.get_layer("pick").set_weights([pick, np.full(5, -0.2, np.float32)])
    model.get_layer("scale").set_weights([8 * np.eye(5, dtype=np.float32)[None, None], np.zeros(5, np.float32)])
    return model


def test_int8_evaluation_matches_the_float_model_on_easy_data():
    from hsiseu.evaluation import keras_predictor
    from hsiseu.quantization.pipeline import compare_predictors

    model = easy_model()
    calib, _ = easy_data(4, seed=1)
    x, y = easy_data(3, seed=2)
    predict = tflite_predictor(make_interpreter(quantize_int8(model, calib), kernels="xnnpack"))
    assert np.array_equal(predict_classes(model, x), y)  # the float model is right everywhere
    res = compare_predictors(keras_predictor(model), predict, [(x[:2], y[:2]), (x[2:], y[2:])], 5)
    assert res["agreement"] == 100.0
    np.testing.assert_array_equal(res["candidate_cm"], res["reference_cm"])
    assert res["candidate_cm"].sum() == y.size


def test_agreement_counts_pixels_where_the_predictors_differ():
    from hsiseu.quantization.pipeline import compare_predictors

    x, y = easy_data(1, seed=3)
    flip_one = lambda xs: np.where(np.arange(y.size).reshape(y.shape) == 0, (y + 1) % 5, y)  # noqa: E731
    res = compare_predictors(lambda xs: y.copy(), flip_one, [(x, y)], 5)
    assert res["agreement"] == pytest.approx(100.0 * (y.size - 1) / y.size)
    assert np.trace(res["reference_cm"]) == y.size and np.trace(res["candidate_cm"]) == y.size - 1


def test_int8_predictor_rejects_images_of_the_wrong_size(int8_models):
    predict = tflite_predictor(make_interpreter(int8_models["relu"], kernels="xnnpack"))
    with pytest.raises(ValueError, match="does not match"):
        predict(np.zeros((1, 16, 64, 25), np.float32))


def test_deduplicated_constants_get_a_buffer_each_and_outputs_stay_equal():
    from hsiseu.quantization.graph import shared_buffers, unshare_buffers

    # Untrained: the converter stores equal (zero) biases once.
    raw = quantize_int8(tiny_unet("sigmoid"), CALIB, unshare=False)
    assert shared_buffers(raw)
    fixed = unshare_buffers(raw)
    assert not shared_buffers(fixed)
    x = RNG.random((1, 32, 64, 25), dtype=np.float32)
    outs = []
    for content in (raw, fixed):
        interp = make_interpreter(content, kernels="xnnpack")
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], quantize_input(x, detail))
        interp.invoke()
        outs.append(interp.get_tensor(interp.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_quantized_model_has_no_shared_parameter_buffers(int8_models):
    from hsiseu.quantization.graph import shared_buffers

    assert all(not shared_buffers(c) for c in int8_models.values())


def test_the_schema_offers_exactly_the_kernels_the_interpreter_knows():
    import yaml

    from conftest import REPO
    from hsiseu.quantization.interpreter import DEFAULT_KERNELS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    kernels = schema["properties"]["quantization"]["properties"]["kernels"]
    assert sorted(kernels["enum"]) == sorted(KERNELS) and kernels["default"] == DEFAULT_KERNELS
    for name in ("config.yaml", "paper.yaml"):
        assert yaml.safe_load((REPO / "config" / name).read_text())["quantization"]["kernels"] == DEFAULT_KERNELS
