"""The reference engine: what TensorFI2 does, through the shared executor.

Per fault: flip the stored value in place, run the whole model on all test images, restore.
Slow by design; it is the definition the fast engine is proven against.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.bitflip import flip_bit
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras_executor import LayerGraph
from hsiseu.faults.outcomes import Prediction, classes_from_scores

__all__ = ["ReferenceEngine"]


class ReferenceEngine:
    def __init__(self, graph: LayerGraph, x: np.ndarray) -> None:
        self.graph = graph
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.scores = graph.forward(self.x)[graph.output]
        self.classes = classes_from_scores(self.scores)

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        for fault in faults:
            flat = self.graph.params[fault.set].reshape(-1)  # a view: the flip is in place
            original = flat[fault.index].copy()
            flat[fault.index] = flip_bit(original, fault.bit, flat.dtype)
            try:
                out = self.graph.forward(self.x)[self.graph.output]
            finally:
                flat[fault.index] = original
            yield Prediction(classes_from_scores(out), not bool(np.isfinite(out).all()))
