"""The contract between the fault model and a number format.

Everything under ``hsiseu.faults`` except the backend modules is format-agnostic: it sees
parameter sets, their values, the fault-free class map and per-fault predictions. A backend
(``keras_backend`` for float Keras models; an int8 LiteRT backend plugs in the same way)
implements :class:`Backend`; :func:`open_backend` picks one by stage and imports it lazily so
that sampling, merging and figures never import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.paramsets import ParameterSet

__all__ = ["Backend", "open_backend", "BACKEND_OF_STAGE", "check_fault_sets"]


class Backend(Protocol):
    """A model under fault injection, bound to the test images it is evaluated on."""

    def parameter_sets(self) -> list[ParameterSet]:
        """The injectable tensors, in graph order, with stable names."""

    def values(self, name: str) -> np.ndarray:
        """The stored (fault-free) values of one set, flat, in its own dtype."""

    def golden(self) -> np.ndarray:
        """Fault-free class map (N, H, W) uint8, from ``outcomes.classes_from_scores``."""

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        """One prediction per fault, in order; the model is fault-free again afterwards."""


def check_fault_sets(faults: Sequence[Fault], known: Container[str]) -> None:
    """A fault naming a set the model lacks comes from a fault list made for another model:
    stop before injecting anything rather than mid-shard."""
    for f in faults:
        if f.set not in known:
            raise KeyError(f"fault {f.fault}: no parameter set {f.set!r} in this model")


#: Which backend module serves a stage.
BACKEND_OF_STAGE: dict[str, str] = {"original": "keras", "pruned": "keras", "quantized": "tflite"}


def open_backend(
    stage: str, model_path: str | os.PathLike[str], x: np.ndarray, options: Mapping[str, Any]
) -> Backend:
    """The backend for ``stage``'s model file on test images ``x``; ``options`` is the config's
    ``faults`` section (engine, batch size, BN moving statistics)."""
    kind = BACKEND_OF_STAGE.get(stage)
    if kind == "keras":
        from hsiseu.faults.keras_backend import KerasBackend

        return KerasBackend.from_file(
            model_path,
            x,
            engine=str(options.get("engine", "fast")),
            batch_size=int(options.get("batch_size", 8)),
            include_moving_stats=bool(options.get("include_bn_moving_stats", False)),
            image_chunk=options.get("image_chunk"),
        )
    if kind == "tflite":
        from hsiseu.faults.tflite_backend import TFLiteBackend

        return TFLiteBackend.from_file(
            model_path,
            x,
            engine=str(options.get("engine", "fast")),
            include_other_constants=bool(options.get("include_int8_constants", False)),
        )
    raise ValueError(
        f"no fault-injection backend for stage {stage!r} (known: {sorted(BACKEND_OF_STAGE)})"
    )
