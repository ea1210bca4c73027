"""The float Keras backend: parameter sets of a Keras model and its two engines.

Parameter sets are the model's trainable variables in graph order (conv / transposed-conv
kernels and biases, BN gamma and beta: 100 for the paper's U-Net), named ``<layer>/<role>``;
with ``include_moving_stats`` the BN moving mean and variance follow each BN's gamma and beta.
``image_chunk`` bounds the fast engine's cache to that many test images at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.backend import check_fault_sets
from hsiseu.faults.engine_fast import FastEngine
from hsiseu.faults.engine_reference import ReferenceEngine
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras_executor import LayerGraph
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.paramsets import ParameterSet

__all__ = ["KerasBackend", "ENGINES"]

ENGINES = ("fast", "reference")
_MOVING = ("moving_mean", "moving_variance")


class KerasBackend:
    """A float Keras model on fixed test images, injectable through either engine."""

    def __init__(self, model, x: np.ndarray, *, engine: str = "fast", batch_size: int = 8,
                 include_moving_stats: bool = False, image_chunk: int | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown fault-injection engine {engine!r}; expected one of {ENGINES}")
        self.graph = LayerGraph(model)
        self.include_moving_stats = include_moving_stats
        self.engine_name = engine
        if engine == "fast":
            self.engine: FastEngine | ReferenceEngine = FastEngine(self.graph, x, batch_size=batch_size,
                                                                   image_chunk=image_chunk)
        else:
            self.engine = ReferenceEngine(self.graph, x)
        self._sets = [
            ParameterSet(name=name, kind=self.graph.role_of[name], layer=self.graph.layer_of[name],
                         shape=tuple(int(d) for d in values.shape), dtype=str(values.dtype))
            for name, values in self.graph.params.items()
            if include_moving_stats or self.graph.role_of[name] not in _MOVING
        ]
        self._names = {s.name for s in self._sets}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], x: np.ndarray, **kwargs) -> "KerasBackend":
        import keras

        return cls(keras.saving.load_model(path, compile=False), x, **kwargs)

    def parameter_sets(self) -> list[ParameterSet]:
        return list(self._sets)

    def values(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(f"no parameter set {name!r} (known: {sorted(self._names)[:6]}...)")
        return self.graph.params[name].reshape(-1).copy()

    def golden(self) -> np.ndarray:
        return self.engine.classes

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        check_fault_sets(faults, self._names)
        return self.engine.run(faults)
