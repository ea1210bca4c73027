"""Running an int8 model, or slices of it, on the campaign's test images with the chosen kernels.

Every interpreter comes from :func:`hsiseu.quantization.interpreter.make_interpreter` with the
config's ``quantization.kernels``, for fault-free and faulty runs alike, so that their outputs
are comparable bit for bit. The test images are quantized once, by the model's own input
quantization.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hsiseu.faults.bitflip import flip_at, flip_bits
from hsiseu.quantization.graph import tensor_data
from hsiseu.quantization.interpreter import make_interpreter, quantize_input
from hsiseu.quantization.slices import Slice, Slicer

__all__ = ["Part", "quantized_images", "full_run", "set_inputs", "flip_in_place"]


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


def set_inputs(interp, values: Mapping[int, np.ndarray]) -> None:
    for t, v in values.items():
        interp.set_tensor(t, v)


def flip_in_place(interp, tensor: int, index: int, bit: int) -> None:
    """Flip one bit of a tensor inside a live interpreter, through its buffer (no view is kept:
    the interpreter refuses to run while one exists). Flipping again restores it. Reaches the
    computation only with kernels that read the tensor at every invoke (``packs_weights``)."""
    view = interp.tensor(tensor)().reshape(-1)
    view[index] = flip_bits(view[index : index + 1], bit)[0]
    del view


class Part:
    """Operators ``[start, stop)`` of a model as a live interpreter (all test images as one
    batch), with the inputs it reads from outside set to their fault-free values."""

    def __init__(self, slicer: Slicer, start: int, stop: int, batch: int, kernels: str,
                 inputs: Mapping[int, np.ndarray], outputs=None) -> None:
        self.content: bytes
        self.io: Slice
        self.content, self.io = slicer.submodel(start, stop, batch=batch, outputs=outputs)
        self.kernels = kernels
        self._where: dict[int, tuple[int, np.dtype, int]] = {}
        self.interp = make_interpreter(self.content, kernels=kernels)
        self.inputs = {t: inputs[t] for t in self.io.inputs}
        set_inputs(self.interp, self.inputs)

    def flipped(self, tensor: int, index: int, bit: int) -> bytearray:
        """The slice's bytes with one bit of a constant flipped (where it lies is found once)."""
        if tensor not in self._where:
            buf = bytearray(self.content)
            view = tensor_data(buf, tensor).reshape(-1)
            offset = view.ctypes.data - np.frombuffer(buf, dtype=np.uint8).ctypes.data
            self._where[tensor] = (offset, view.dtype, view.size)
            del view
        offset, dtype, count = self._where[tensor]
        buf = bytearray(self.content)
        flip_at(np.frombuffer(buf, dtype=dtype, count=count, offset=offset), index, bit)
        return buf

    def run(self, interp=None, changed: Mapping[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """Outputs of the slice (copies) with some inputs changed for this call only; ``interp``
        is another interpreter of the same slice (built from flipped bytes)."""
        if interp is None:
            interp = self.interp
        else:
            set_inputs(interp, self.inputs)
        if changed:
            set_inputs(interp, changed)
        interp.invoke()
        out = {t: interp.get_tensor(t).copy() for t in self.io.outputs}
        if changed and interp is self.interp:
            set_inputs(interp, {t: self.inputs[t] for t in changed})
        return out
