"""The int8 LiteRT backend: parameter sets of a ``.tflite`` model and its engines.

Parameter sets are the int8 weights and int32 biases of the weight operators
(:mod:`~hsiseu.faults.litert.sets`; 56 for the paper's U-Net), plus the other constants with
``include_other_constants``. Engines: ``fast`` (delayed start, only the faulty operator rebuilt
or flipped in place, fault dropping, memo; see ``litert.fast``) and ``reference`` (flipped bytes,
new interpreter per fault); both run the kernels named by ``kernels`` (the config's
``quantization.kernels``) and give identical outcomes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.litert.fast import FastEngine
from hsiseu.faults.litert.reference import ReferenceEngine
from hsiseu.faults.litert.sets import int8_parameter_sets, tensor_values
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.shared import check_fault_sets
from hsiseu.quantization.interpreter import DEFAULT_KERNELS, check_kernels

__all__ = ["TFLiteBackend", "ENGINES"]

ENGINES = ("fast", "reference")


class TFLiteBackend:
    """An int8 ``.tflite`` model on fixed test images, injectable through any engine."""

    def __init__(self, content: bytes, x: np.ndarray, *, kernels: str = DEFAULT_KERNELS, engine: str = "fast",
                 include_other_constants: bool = False) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown int8 fault-injection engine {engine!r}; expected one of {ENGINES}")
        self.kernels = check_kernels(kernels)
        self.content = bytes(content)
        self.tensor_sets = int8_parameter_sets(self.content, include_other_constants=include_other_constants)
        self._by_name = {s.pset.name: s for s in self.tensor_sets}
        self.engine_name = engine
        engines = {"reference": ReferenceEngine, "fast": FastEngine}
        self.engine: FastEngine | ReferenceEngine = engines[engine](self.content, x, self.tensor_sets, kernels=kernels)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], x: np.ndarray, **kwargs) -> "TFLiteBackend":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .tflite model")
        return cls(path.read_bytes(), x, **kwargs)

    def parameter_sets(self) -> list[ParameterSet]:
        return [s.pset for s in self.tensor_sets]

    def values(self, name: str) -> np.ndarray:
        if name not in self._by_name:
            raise KeyError(f"no parameter set {name!r} (known: {sorted(self._by_name)[:6]}...)")
        return tensor_values(self.content, self._by_name[name].tensor)

    def golden(self) -> np.ndarray:
        return self.engine.classes

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        check_fault_sets(faults, self._by_name)
        return self.engine.run(faults)
