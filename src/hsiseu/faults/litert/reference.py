"""The int8 reference engine: the flip is made in the model file's bytes, then a new interpreter.

Per fault: copy the flatbuffer, flip the bit in the constant buffer (a writable view of
``Buffers(i).DataAsNumpy()`` on a bytearray), build an interpreter from ``model_content`` and run
every test image. Nothing is cached between faults, so no kernel can hold a stale copy of a
weight (XNNPACK's packing, TRANSPOSE_CONV's transposed weights): slow, and the definition the fast
engine is proven against.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.bitflip import flip_at
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.litert.execution import full_run, quantized_images
from hsiseu.faults.litert.sets import TensorSet
from hsiseu.faults.outcomes import Prediction, classes_from_scores
from hsiseu.faults.shared import prediction_from_scores
from hsiseu.quantization.graph import tensor_data
from hsiseu.quantization.interpreter import make_interpreter

__all__ = ["ReferenceEngine", "flipped_model"]


def flipped_model(content: bytes, tensor: int, index: int, bit: int) -> bytearray:
    """A copy of the model bytes with one bit of one constant tensor flipped."""
    buf = bytearray(content)
    flip_at(tensor_data(buf, tensor), index, bit)
    return buf


class ReferenceEngine:
    def __init__(self, content: bytes, x: np.ndarray, sets: Sequence[TensorSet], *, kernels: str) -> None:
        self.content = bytes(content)
        self.kernels = kernels
        interp = make_interpreter(self.content, kernels=kernels)
        self.xq = quantized_images(interp, x)
        self.scores = full_run(interp, self.xq)
        self.classes = classes_from_scores(self.scores)
        self.tensor_of = {s.pset.name: s.tensor for s in sets}

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        for fault in faults:
            model = flipped_model(self.content, self.tensor_of[fault.set], fault.index, fault.bit)
            out = full_run(make_interpreter(model, kernels=self.kernels), self.xq)
            yield prediction_from_scores(out)
