"""Running an int8 model (or a slice of it) on the campaign's test images.

Every interpreter comes from :func:`hsiseu.quantization.interpreter.make_interpreter` (LiteRT's
builtin kernels, no default delegate), for fault-free and faulty runs alike, so that their
outputs are comparable bit for bit. The test images are quantized once, by the model's own input
quantization.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hsiseu.faults.bitflip import flip_bits
from hsiseu.quantization.interpreter import make_interpreter, quantize_input

__all__ = ["quantized_images", "full_run", "activation_cache", "set_inputs", "flip_in_place"]


def quantized_images(interp, x: np.ndarray) -> np.ndarray:
    """Float test images (N, H, W, B) as the model's int8 input, quantized once."""
    detail = interp.get_input_details()[0]
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(detail["shape"][1:]):
        raise ValueError(f"test images of shape {x.shape} do not fit the model input {tuple(detail['shape'])}")
    return quantize_input(x, detail)


def full_run(interp, xq: np.ndarray) -> np.ndarray:
    """Model output for int8 images, one batch-1 invoke per image: (N, ..., n_classes)."""
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    outs = []
    for i in range(len(xq)):
        interp.set_tensor(inp, xq[i : i + 1])
        interp.invoke()
        outs.append(interp.get_tensor(out).copy())
    return np.concatenate(outs, axis=0)


def activation_cache(content: bytes, xq: np.ndarray, tensors: set[int]) -> dict[int, np.ndarray]:
    """Fault-free values of ``tensors`` (activations), stacked over the images, and the model
    output under the key ``-1``."""
    interp = make_interpreter(content, preserve_all_tensors=True)
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    parts: dict[int, list[np.ndarray]] = {t: [] for t in (*tensors, -1)}
    for i in range(len(xq)):
        interp.set_tensor(inp, xq[i : i + 1])
        interp.invoke()
        for t in tensors:
            parts[t].append(interp.get_tensor(t).copy())
        parts[-1].append(interp.get_tensor(out).copy())
    return {t: np.concatenate(v, axis=0) for t, v in parts.items()}


def set_inputs(interp, values: Mapping[int, np.ndarray]) -> None:
    for t, v in values.items():
        interp.set_tensor(t, v)


def flip_in_place(interp, tensor: int, index: int, bit: int) -> None:
    """Flip one bit of a tensor inside a live interpreter, through its buffer (no view is kept:
    the interpreter refuses to run while one exists). Flipping again restores it."""
    view = interp.tensor(tensor)().reshape(-1)
    view[index] = flip_bits(view[index : index + 1], bit)[0]
    del view
