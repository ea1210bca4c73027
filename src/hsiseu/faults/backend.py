"""The contract between the fault model and a number format.

Everything under ``hsiseu.faults`` outside ``keras/`` and ``litert/`` is format-agnostic: it sees
parameter sets, their values, the fault-free class map and per-fault predictions. A backend
implements :class:`Backend`; :mod:`hsiseu.faults.registry` opens one by stage. This module holds
the protocol only, so that a backend can import it without importing the registry (and with it
every other backend).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.paramsets import ParameterSet

__all__ = ["Backend"]


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
