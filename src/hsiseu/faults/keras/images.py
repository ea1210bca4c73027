"""The fault-free activations the fast engine starts every fault from: every layer's output for
one chunk of the test images at a time, on the device, and on the host as asked.

Why one chunk at a time: memory stays bounded at paper scale (``image_chunk``). Why checked: the
cache stands in for the reference loop's fault-free pass in every comparison the engine makes,
so it must reproduce the reference's scores bit for bit; a chunk where it does not runs its
faults through the reference loop (:attr:`LoadedImages.exact`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.paths import wall_seconds
from hsiseu.faults.keras.reference import NaiveLoop
from hsiseu.faults.shared import same_array_bits

log = logging.getLogger(__name__)

__all__ = ["LoadedImages", "channel_major"]

T = TypeVar("T")


def channel_major(a: np.ndarray) -> np.ndarray:
    """(C, N, ...) contiguous: each channel's values in one block, to compare and hash whole."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


class LoadedImages:
    """The cache of the loaded image chunk (``cache``: layer name -> device tensor), with
    ``values`` the model variables' stored values on the device, in ``model.variables`` order."""

    def __init__(self, model: keras.Model, graph: LayerGraph, x: np.ndarray, reference: NaiveLoop,
                 values: Sequence[Any]) -> None:
        self.graph, self.reference, self.values = graph, reference, list(values)
        self._names = graph.computed()
        every = keras.Model(model.inputs, [graph.nodes[n].layer.output for n in self._names])
        self._every = compiled.compile_fn(compiled.with_values(every, list(model.variables)))
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.chunks: list[tuple[int, int]] = reference.chunks
        self.classes: np.ndarray = reference.classes
        self.chunk: int | None = None
        self.n = len(x)  # images loaded
        self.cache: dict[str, Any] = {}
        self._derived: dict[Hashable, Any] = {}
        self._exact: dict[int, bool] = {}
        self._pass: dict[int, float] = {}  # per chunk: the reference loop's fastest fault-free pass
        self._gold_nonfinite: dict[int, bool] = {}
        self.load(0)

    def load(self, i: int) -> None:
        """Cache the fault-free activations of image chunk ``i`` (one compiled call), and check
        that they reproduce the reference loop's scores for those images bit for bit."""
        if self.chunk == i:
            return
        a, b = self.chunks[i]
        x_dev = compiled.to_device(self.x[a:b])
        self.cache = dict(zip(self._names, self._every(self.values, x_dev)))
        self.cache[self.graph.input] = x_dev
        self._derived = {}
        self.chunk, self.n = i, b - a
        if i not in self._exact:
            want = np.asarray(self.reference.scores[a:b], np.float32)
            self._exact[i] = same_array_bits(self.host(self.graph.output), want)
            if not self._exact[i]:
                log.warning("cached fault-free scores of images %d..%d differ from the reference loop's: "
                            "their faults run through the reference loop", a, b - 1)

    @property
    def exact(self) -> bool:
        """Whether the loaded chunk's cache reproduces the reference loop's scores."""
        return self._exact[self.chunk]

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """A value computed from the loaded chunk, once per load (``make()`` the first time)."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def host(self, name: str) -> np.ndarray:
        """Layer ``name``'s fault-free output on the host."""
        return self.derived(name, lambda: compiled.to_host(self.cache[name]))

    def channel_major(self, name: str) -> np.ndarray:
        """Layer ``name``'s fault-free output as (C, N, ...), each channel's values in one block."""
        return self.derived(("channel-major", name), lambda: channel_major(self.host(name)))

    def states(self, name: str, c: np.ndarray, channels: bool) -> np.ndarray:
        """Fault-free states at layer ``name`` for ``len(c)`` faults, (K, N, ...): channels
        ``c`` where ``channels``, else copies of the whole output."""
        if channels:
            return self.channel_major(name)[c]
        return np.repeat(self.host(name)[None], len(c), axis=0)

    def gold_classes(self) -> np.ndarray:
        a, b = self.chunks[self.chunk]
        return self.classes[a:b]

    def gold_nonfinite(self) -> bool:
        """Whether any fault-free score of the loaded chunk is NaN or infinite."""
        if self.chunk not in self._gold_nonfinite:
            self._gold_nonfinite[self.chunk] = not bool(np.isfinite(self.host(self.graph.output)).all())
        return self._gold_nonfinite[self.chunk]

    def reference_pass(self) -> float:
        """Seconds of the reference loop's fastest fault-free pass over the loaded images."""
        if self.chunk not in self._pass:
            self._pass[self.chunk] = min(wall_seconds(lambda: self.reference.scores_of([self.chunk])) for _ in range(2))
        return self._pass[self.chunk]
