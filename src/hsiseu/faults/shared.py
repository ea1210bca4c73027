"""What every backend's engines need alike: the "unchanged" answer, a bounded memo, the
fault-set check and predictions from raw scores.

Kept here, in the format-agnostic core, so that the float and the int8 engines share one
definition of each (an engine that proved a fault harmless answers :data:`UNCHANGED`, never a
copy of the fault-free class map).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.outcomes import Prediction, classes_from_scores

__all__ = ["UNCHANGED", "Memo", "MemoWorth", "bits_differ", "check_fault_sets", "prediction_from_scores", "same_bits",
           "same_array_bits", "state_digest"]

#: The answer for a fault whose model output was proven bitwise equal to the fault-free one.
UNCHANGED = Prediction(None, False)

V = TypeVar("V")


def bits_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two arrays differ bit for bit (-0.0 != 0.0, NaN payloads count): "unchanged" means
    these bits, not a float comparison."""
    ua = a.view(np.uint32) if a.dtype.itemsize == 4 else a
    ub = b.view(np.uint32) if b.dtype.itemsize == 4 else b
    return ua != ub


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row (first axis), whether every value is bitwise equal."""
    return ~bits_differ(a, b).reshape(a.shape[0], -1).any(axis=1)


def same_array_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays have the same shape and bits: how a compiled function earns trust."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and not bits_differ(a, b).any()


def prediction_from_scores(scores: np.ndarray) -> Prediction:
    """The class map of raw model scores with the NaN rule, and whether any score is non-finite."""
    scores = np.asarray(scores)
    nonfinite = scores.dtype.kind == "f" and not bool(np.isfinite(scores).all())
    return Prediction(classes_from_scores(scores), nonfinite)


def state_digest(*arrays: np.ndarray) -> bytes:
    """A memo key for faulty states: 16 bytes of SHA-256 over their bytes (collisions out of
    reach, unlike a 64-bit hash). SHA-256 because CPUs hash it in hardware (SHA-NI): on the
    default U-Net's 64 KiB chain-end channels 2.4x faster than BLAKE2b, and every fault that
    reaches a downstream run is hashed."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a))
    return h.digest()[:16]


def check_fault_sets(faults: Sequence[Fault], known: Container[str]) -> None:
    """A fault naming a set the model lacks comes from a fault list made for another model:
    stop before injecting anything rather than mid-shard."""
    for f in faults:
        if f.set not in known:
            raise KeyError(f"fault {f.fault}: no parameter set {f.set!r} in this model")


class Memo(Generic[V]):
    """A least-recently-used map bounded in entries and, optionally, in bytes of the values
    (``nbytes`` tells what a value weighs): equal faulty states share one downstream run without
    the memo growing with the campaign."""

    def __init__(self, size: int, max_bytes: int | None = None,
                 nbytes: Callable[[V], int] = lambda v: 0) -> None:
        if size < 0:
            raise ValueError(f"memo size must be >= 0, got {size}")
        self.size, self.max_bytes, self._nbytes = int(size), max_bytes, nbytes
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V) -> None:
        if key in self._items:
            self._items.move_to_end(key)
            return
        self._items[key] = value
        self._bytes += self._nbytes(value)
        while self._items and (len(self._items) > self.size
                               or (self.max_bytes is not None and self._bytes > self.max_bytes)):
            _, old = self._items.popitem(last=False)
            self._bytes -= self._nbytes(old)

    def get_or(self, key: Hashable, make: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


class MemoWorth:
    """Whether keying faulty states for a memo pays at one place of a model (a chain end):
    hashing costs every state, a hit saves one downstream run. Where the downstream is cheap
    (the logits' decision after a 1x1 classifier: about 0.15 ms a fault, hashing its 64 KiB
    state 0.05 ms) and states rarely repeat (3 hits in 416 there), the hashes cost more than the
    hits save; after ``trial`` hashed states the measured saving (hits x the downstream's time
    per state, from :meth:`ran`) is compared with the measured hashing time, once. Outcomes do
    not depend on it."""

    def __init__(self, trial: int = 256) -> None:
        self.trial = int(trial)
        self.hashed = self.hits = self.states_run = 0
        self.hash_seconds = self.downstream_seconds = 0.0
        self.verdict: bool | None = None

    def ran(self, seconds: float, states: int) -> None:
        """A downstream run of ``states`` states took ``seconds``."""
        self.downstream_seconds += seconds
        self.states_run += states

    def pays(self) -> bool:
        """Whether to key the next state."""
        if self.verdict is None and self.hashed >= self.trial:
            per_state = self.downstream_seconds / max(self.states_run, 1)
            self.verdict = self.hits * per_state >= self.hash_seconds
        return self.verdict is not False
