"""Bias correction removes the mean output shift that int8 rounding leaves in each layer."""

from __future__ import annotations

import numpy as np
import pytest

from hsiseu.model import build_unet
from hsiseu.quantization.convert import convert_float, quantize_int8
from hsiseu.quantization.graph import check_integer_only, op_counts, operators
from hsiseu.quantization.recovery import bias_correction, layer_name


@pytest.fixture(scope="module")
def sigmoid_models():
    model = build_unet(height=32, width=64, bands=25, n_classes=5, af="sigmoid", pools=2, base_filters=4, seed=3)
    calib = np.random.default_rng(5).random((4, 32, 64, 25), dtype=np.float32)
    return convert_float(model), quantize_int8(model, calib), calib


def _total_shift(records):
    return sum(r["mean_abs_shift"] / r["output_scale"] for r in records if "skipped" not in r)


@pytest.mark.parametrize("kernels", ["xnnpack", "builtin"])
def test_second_pass_finds_almost_no_shift_left(sigmoid_models, kernels):
    """Under XNNPACK too, whose delegate keeps a layer's output to itself: read as a slice's output."""
    ref, int8, calib = sigmoid_models
    corrected, first = bias_correction(ref, int8, calib, kernels=kernels)
    _, second = bias_correction(ref, corrected, calib, kernels=kernels)
    assert _total_shift(first) > 0
    # Measured in output LSBs, what is left after one pass is a small fraction of what was there.
    assert _total_shift(second) < 0.25 * _total_shift(first)


def test_corrected_model_keeps_its_graph_and_changes_only_bias_bytes(sigmoid_models):
    from hsiseu.quantization.graph import tensor_data
    from hsiseu.quantization.recovery import BIAS_INPUT

    ref, int8, calib = sigmoid_models
    corrected, records = bias_correction(ref, int8, calib, kernels="xnnpack")
    check_integer_only(corrected)
    assert op_counts(corrected) == op_counts(int8)
    assert len(corrected) == len(int8)
    buf = bytearray(int8)
    base = np.frombuffer(buf, np.uint8).ctypes.data
    bias_bytes = set()
    for op in operators(buf):
        k = BIAS_INPUT.get(op.name)
        if k is not None and len(op.inputs) > k and op.inputs[k] >= 0:
            view = tensor_data(buf, op.inputs[k])
            start = view.ctypes.data - base
            bias_bytes.update(range(start, start + view.nbytes))
    changed = np.flatnonzero(np.frombuffer(corrected, np.uint8) != np.frombuffer(int8, np.uint8))
    assert changed.size > 0
    assert set(changed.tolist()) <= bias_bytes
    assert {"cnv_1", "cnv_out"} <= {r["layer"] for r in records}


def test_layer_names_come_from_the_keras_layers():
    assert layer_name("functional_1/unet_relu_1/act_12_1/Relu;foo") == "act_12"
    assert layer_name("functional_1/unet_sigmoid_1/cnv_out_1/convolution1") == "cnv_out"
    assert layer_name("functional_1/unet_sigmoid_1/tcnv_2_1/conv_transpose1") == "tcnv_2"


def test_bias_correction_needs_calibration_images(sigmoid_models):
    ref, int8, _ = sigmoid_models
    with pytest.raises(ValueError, match="calibration"):
        bias_correction(ref, int8, np.zeros((0, 32, 64, 25), np.float32), kernels="xnnpack")
