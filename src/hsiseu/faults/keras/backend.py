"""The float Keras backend: parameter sets of any functional Keras model and its two engines.

Parameter sets are the model's trainable weights in graph order (for the study's U-Net: conv and
transposed-conv kernels and biases, BN gamma and beta; 100 for the paper's model), named
``<layer>/<weight>``; with ``include_moving_stats`` the BN moving mean and variance follow each
BN's gamma and beta. Engines: ``reference`` (the naive loop: flip, assign, compiled model call,
restore) and ``fast`` (compiled delayed start, one channel, batching, dropping; identical outcomes).
``image_chunk`` bounds how many test images one model call (and the fast engine's cache) holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.fast import CompiledEngine
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.reference import NaiveLoop
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.shared import check_fault_sets

log = logging.getLogger(__name__)

__all__ = ["KerasBackend", "ENGINES", "injectable_variables"]

ENGINES = ("fast", "reference")
_MOVING = ("moving_mean", "moving_variance")


def injectable_variables(graph: LayerGraph, include_moving_stats: bool = False) -> dict[str, "keras.Variable"]:
    """Set name -> variable of the parameter sets: trainable float weights in graph order, plus
    BN moving statistics when asked."""
    return {name: var for name, _, var in graph.weights()
            if (var.trainable or (include_moving_stats and var.name in _MOVING)) and np.dtype(var.dtype).kind == "f"}


class KerasBackend:
    """A float Keras model on fixed test images, injectable through either engine."""

    def __init__(self, model, x: np.ndarray, *, engine: str = "fast", memory_mb: float = 32,
                 include_moving_stats: bool = False, image_chunk: int | None = None, max_batch: int = 64) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown fault-injection engine {engine!r}; expected one of {ENGINES}")
        compiled.exact_graphs()
        graph = LayerGraph(model)
        self.engine_name = engine
        self.device = compiled.device_name()
        variables = injectable_variables(graph, include_moving_stats)
        self._sets = [ParameterSet(name=name, kind=var.name, layer=name.split("/", 1)[0],
                                   shape=tuple(int(d) for d in var.shape), dtype=str(np.dtype(var.dtype)))
                      for name, var in variables.items()]
        self._names = set(variables)
        self.reference = NaiveLoop(model, x, variables, image_chunk=image_chunk)
        if engine == "fast":
            self.engine: CompiledEngine | NaiveLoop = CompiledEngine(model, x, reference=self.reference,
                                                                     memory_mb=memory_mb, max_batch=max_batch)
        else:
            self.engine = self.reference
        log.info("float fault injection: engine %s on %s", engine, self.device)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], x: np.ndarray, **kwargs) -> "KerasBackend":
        import keras

        return cls(keras.saving.load_model(path, compile=False), x, **kwargs)

    def parameter_sets(self) -> list[ParameterSet]:
        return list(self._sets)

    def values(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(f"no parameter set {name!r} (known: {sorted(self._names)[:6]}...)")
        return self.reference.stored[name].reshape(-1).copy()

    def golden(self) -> np.ndarray:
        return self.reference.classes

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        check_fault_sets(faults, self._names)
        return self.engine.run(faults)
