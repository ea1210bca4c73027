"""Accuracy recovery after quantization: sequential empirical bias correction.

Rounding weights to int8 shifts each layer's mean output (the error E[(W_q - W) x] is not zero
per channel), and the shifts add up through the network; a saturating activation such as the
sigmoid then sits at a different operating point. Bias correction (Nagel et al., "Data-free
quantization", empirical variant) removes that shift layer by layer:

for each convolution in execution order, run the float ``.tflite`` (the same graph, same fusions
and tensor names, in float32) and the current int8 model on the calibration images, take per
output channel ``delta_c = mean(float_out - dequantized int8_out)``, and add
``round(delta_c / bias_scale_c)`` to that layer's int32 bias in the flatbuffer. The next layer is
measured on the corrected model, so corrections do not double-count upstream shifts. The bias
scales (input scale x weight scale) stay as the converter chose them: this is "shift the float
bias, then re-quantize the bias" with the quantization grid held fixed.

The int8 outputs are measured with the kernels the model will run on (``kernels``, the config's
``quantization.kernels``), read as the output of the slice of operators up to the layer (the
XNNPACK delegate does not write intermediate tensors back); the float model's are read with the
builtin kernels, whose intermediate tensors are kept.

Where the activation is fused into the convolution (ReLU, and hard sigmoid's RELU6), the output
is clipped; positions where the int8 output sits at a clip level (-128 or 127) carry no
information about the pre-activation shift and are left out of the mean.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from tqdm import tqdm

from hsiseu.quantization.graph import operators, tensor_data, tensor_scales
from hsiseu.quantization.interpreter import dequantize, make_interpreter, quantize_input
from hsiseu.quantization.slices import Slicer

log = logging.getLogger(__name__)

__all__ = ["BIAS_INPUT", "bias_correction", "layer_name"]

#: Operator -> position of its bias among its inputs.
BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_LAYER = re.compile(r"(?:^|/)(t?cnv_(?:\d+|out)|act_\d+)(?:_\d+)?/")


def layer_name(tensor_name: str) -> str:
    """The Keras layer a converted tensor came from (``cnv_3``, ``act_3``, ``tcnv_1``...)."""
    m = _LAYER.search(tensor_name)
    return m.group(1) if m else tensor_name


def _run(interp, x: np.ndarray, tensor: int, quantized: bool) -> np.ndarray:
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], quantize_input(x, detail) if quantized else x.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(tensor)


def bias_correction(
    float_tflite: bytes, int8_tflite: bytes, calibration: np.ndarray, *, kernels: str
) -> tuple[bytes, list[dict]]:
    """The int8 model with corrected biases, and one record per layer (shift applied, in LSB and
    in output units, before and after)."""
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError(f"bias correction needs calibration images (N, H, W, bands), got {calibration.shape}")
    buf = bytearray(int8_tflite)
    ref = make_interpreter(float_tflite, kernels="builtin", preserve_all_tensors=True)
    ref_index = {d["name"]: d["index"] for d in ref.get_tensor_details()}
    batch = int(ref.get_input_details()[0]["shape"][0])
    records = []
    ops = [op for op in operators(buf) if op.name in BIAS_INPUT]
    for op in tqdm(ops, desc="bias correction", unit="layer"):
        k = BIAS_INPUT[op.name]
        record = {"layer": layer_name(op.output_name), "op": op.name}
        if len(op.inputs) <= k or op.inputs[k] < 0:
            records.append(dict(record, skipped="no bias tensor"))
            continue
        if op.output_name not in ref_index:
            records.append(dict(record, skipped="no float counterpart of the output tensor"))
            continue
        prefix, _ = Slicer(buf).submodel(0, op.index + 1, batch=batch, outputs=[op.outputs[0]])
        q = make_interpreter(prefix, kernels=kernels)
        out_detail = next(d for d in q.get_tensor_details() if d["index"] == op.outputs[0])
        channels = int(out_detail["shape"][-1])
        sums = np.zeros(channels)
        counts = np.zeros(channels)
        for start in range(0, len(calibration) - batch + 1, batch):
            x = calibration[start : start + batch]
            f = _run(ref, x, ref_index[op.output_name], quantized=False).astype(np.float64)
            qi = _run(q, x, op.outputs[0], quantized=True)
            inside = (qi > -128) & (qi < 127)
            diff = np.where(inside, f - dequantize(qi, out_detail), 0.0)
            sums += diff.reshape(-1, channels).sum(axis=0)
            counts += inside.reshape(-1, channels).sum(axis=0)
        delta = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        bias = tensor_data(buf, op.inputs[k])
        scales = np.broadcast_to(tensor_scales(buf, op.inputs[k]), bias.shape)
        shift = np.round(delta / scales)
        new = np.clip(bias.astype(np.int64) + shift.astype(np.int64), np.iinfo(np.int32).min, np.iinfo(np.int32).max)
        bias[...] = new.astype(np.int32)
        records.append(
            dict(
                record,
                mean_abs_shift=float(np.mean(np.abs(delta))),
                max_abs_shift=float(np.max(np.abs(delta))),
                mean_abs_shift_lsb=float(np.mean(np.abs(shift))),
                output_scale=float(out_detail["quantization"][0]),
            )
        )
        log.info("%s: mean |shift| %.4g (%.1f bias LSB)", record["layer"], records[-1]["mean_abs_shift"],
                 records[-1]["mean_abs_shift_lsb"])
    return bytes(buf), records
