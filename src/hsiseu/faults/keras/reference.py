"""The reference engine: the loop a user writes, and the definition every other engine meets.

Per fault: flip the bit of the stored value, ``variable.assign`` the flipped tensor, call the
model compiled once (``compiled.model_caller``: ``tf.function(model.__call__)`` on TensorFlow)
on the test images (``image_chunk`` at a time, when set), take the class map with the NaN rule,
restore the variable. The outcome is therefore Keras's own computation of the faulty model,
whatever its layers are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.bitflip import flip_at
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras import compiled
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.shared import prediction_from_scores

__all__ = ["NaiveLoop", "image_chunks"]


def image_chunks(n: int, chunk: int | None) -> list[tuple[int, int]]:
    """[start, stop) rows of each model call over ``n`` test images."""
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"image_chunk must be >= 1 or None, got {chunk!r}")
    step = n if chunk is None else min(int(chunk), n)
    return [(a, min(a + step, n)) for a in range(0, n, max(step, 1))]


class NaiveLoop:
    """Flip, assign, call the compiled model, restore."""

    def __init__(self, model: keras.Model, x: np.ndarray, variables: Mapping[str, keras.Variable], *,
                 image_chunk: int | None = None, call: Callable[[Any], Any] | None = None) -> None:
        """``call`` replaces the compiled model call (the benchmark's ``model.predict`` row)."""
        self.variables = dict(variables)
        self.stored = {name: np.array(v.numpy(), copy=True) for name, v in self.variables.items()}
        self.call = compiled.model_caller(model) if call is None else call
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.chunks = image_chunks(len(x), image_chunk)
        self.x = [compiled.to_device(x[a:b]) for a, b in self.chunks]
        self.scores = self.scores_of()
        self.golden = prediction_from_scores(self.scores)
        self.classes = self.golden.classes

    def scores_of(self, chunks: Sequence[int] | None = None) -> np.ndarray:
        """The model's scores on all test images, or on the listed image chunks, with the
        variables as they are now."""
        ids = range(len(self.chunks)) if chunks is None else chunks
        return np.concatenate([compiled.to_host(self.call(self.x[i])) for i in ids])

    def one(self, fault: Fault, chunks: Sequence[int] | None = None) -> Prediction:
        """The prediction for one fault, on all test images or on the listed image chunks."""
        var, stored = self.variables[fault.set], self.stored[fault.set]
        faulty = stored.copy()
        flip_at(faulty, fault.index, fault.bit)
        var.assign(faulty)
        try:
            return prediction_from_scores(self.scores_of(chunks))
        finally:
            var.assign(stored)

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        for fault in faults:
            yield self.one(fault)
