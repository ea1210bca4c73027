"""The model's closing softmax, run only on the pixels whose logits leave the class open.

A segmentation net ends in a softmax over the classes, and the outcome of a fault is the class
map (and whether any score is non-finite). Where a pixel's logits are finite and the highest
leads the next by :data:`~hsiseu.faults.keras.classmap.DECIDED_MARGIN` relative, the softmax's
arg-max is the logits' and its scores are finite, so the engines take the class map from the
logits and send only the other pixels (ties, NaN, inf: about 1 % of the pixels a fault changes
on the default ReLU model) through the softmax layer's own call. On TensorFlow's CPU kernels the
softmax over five classes costs about 4x the class map, and every downstream call paid it for
every pixel of faults x images.

The margin's argument (a max-shifted softmax accurate to a few ulps) is checked on the backend
before it is used: probe logits of every magnitude up to float32's largest, half of them with
the runner-up just past the margin, must get the logits' class and finite scores from the
softmax layer, or the engines run the softmax whole. And as everywhere in the engines, a row
length is trusted only once cached fault-free logits through it give the cached scores bit for
bit.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.classmap import DECIDED_MARGIN, classes_and_decided, classes_op, is_softmax, nonfinite_rows
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.shared import same_array_bits

__all__ = ["SHORTEST_ROW", "SoftmaxApart", "next_rung", "row_length", "rows_reproduce", "rung_at_least"]

#: The shortest row compiled: shorter batches are padded, so that few lengths are traced.
SHORTEST_ROW = 256


def next_rung(n: int) -> int:
    """The next of 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of two and their midpoints): the
    ladder of compiled shapes, a few per octave."""
    if n == 1:
        return 2
    return n * 3 // 2 if n & (n - 1) == 0 else n // 3 * 4


def rung_at_least(n: int, start: int = 1) -> int:
    """The first rung of the ladder from ``start`` (:func:`next_rung`) that holds ``n``."""
    rung = start
    while rung < n:
        rung = next_rung(rung)
    return rung


def row_length(pixels: int) -> int:
    """The compiled row length for ``pixels`` pixels: the next of 256, 384, 512, 768, 1024, ...
    (:func:`next_rung`), so that padding wastes a fifth of a call at most on average while a
    campaign traces a few lengths."""
    return rung_at_least(pixels, SHORTEST_ROW)


def rows_reproduce(run, source: np.ndarray, target: np.ndarray, length: int) -> bool:
    """Whether ``run`` (a device row of ``length`` vectors -> a row of outputs) takes
    fault-free vectors of ``source`` spread over the images to those of ``target`` at the same
    pixels bit for bit: how a compiled row length earns trust (kernels may pick other code for
    other shapes)."""
    vectors = source.reshape(-1, source.shape[-1])
    at = np.linspace(0, len(vectors) - 1, length).round().astype(np.int64)
    out = compiled.to_host(run(compiled.to_device(vectors[at])))
    return same_array_bits(out, target.reshape(len(vectors), -1)[at])


class SoftmaxApart:
    """The closing softmax of a model whose output layer is one; ``host`` gives a cached
    fault-free tensor of the loaded images by layer name."""

    def __init__(self, graph: LayerGraph, host) -> None:
        node = graph.nodes[graph.output]
        self.layer = node.layer
        self.logits = node.inputs[0]  # the layer whose output the softmax takes
        self.output = graph.output
        self.rank = len(self.layer.output.shape)
        self.host = host
        self._fns: dict[int, Any] = {}
        self.trusted: dict[int, bool] = {}
        self._agrees: bool | None = None

    @classmethod
    def of(cls, graph: LayerGraph, host) -> SoftmaxApart | None:
        """One for ``graph`` when its output layer is a softmax over the last axis alone, taking
        one input; else None."""
        node = graph.nodes[graph.output]
        return cls(graph, host) if is_softmax(node.layer) and len(node.inputs) == 1 else None

    def _fn(self, length: int):
        """Compiled: a row of ``length`` logit vectors through the softmax layer's own call to
        their classes, non-finite flags and scores."""
        if length not in self._fns:
            layer, lead = self.layer, (1,) * (self.rank - 2)

            def run(rows):
                classes = int(rows.shape[-1])
                scores = keras.ops.reshape(layer(keras.ops.reshape(rows, lead + (length, classes))), (length, classes))
                return classes_op(scores), nonfinite_rows(scores), scores

            self._fns[length] = compiled.compile_fn(run)
        return self._fns[length]

    @property
    def agrees(self) -> bool:
        """Whether this backend's softmax gives every row the logits decide the logits' class
        and finite scores, on the probe logits (checked once)."""
        if self._agrees is None:
            logits = probe_logits(int(self.layer.output.shape[-1]), SHORTEST_ROW)
            decide = compiled.compile_fn(classes_and_decided)
            want, decided = (compiled.to_host(a) for a in decide(compiled.to_device(logits)))
            got, nonfinite, _ = (compiled.to_host(a) for a in self._fn(SHORTEST_ROW)(compiled.to_device(logits)))
            self._agrees = (bool(decided.any()) and bool(np.array_equal(got[decided], want[decided]))
                            and not bool(nonfinite[decided].any()))
        return self._agrees

    def _trust(self, length: int) -> bool:
        if length not in self.trusted:
            self.trusted[length] = rows_reproduce(lambda rows: self._fn(length)(rows)[2], self.host(self.logits),
                                                  self.host(self.output), length)
        return self.trusted[length]

    def run(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Classes and non-finite flags of logit rows (pixels x classes) the logits leave open;
        None when their row length does not reproduce the cache."""
        length = row_length(len(rows))
        if not self._trust(length):
            return None
        padded = np.empty((length, rows.shape[1]), rows.dtype)
        padded[:len(rows)] = rows
        padded[len(rows):] = self.host(self.logits).reshape(-1, rows.shape[1])[0]
        classes, nonfinite, _ = self._fn(length)(compiled.to_device(padded))
        return compiled.to_host(classes)[:len(rows)], compiled.to_host(nonfinite)[:len(rows)]

    def resolve(self, classes: np.ndarray, decided: np.ndarray, logits) -> tuple[np.ndarray, np.ndarray] | None:
        """The class map and per-pixel non-finite flags, from the logits' class map where they
        decide and from the softmax elsewhere (``logits``: a callable giving the logit rows of
        ``~decided`` pixels, fetched only when there are any); None when a length is untrusted."""
        nonfinite = np.zeros(decided.shape, bool)
        if decided.all():
            return classes, nonfinite
        opened = ~decided
        got = self.run(logits(opened))
        if got is None:
            return None
        classes = np.array(classes)
        classes[opened], nonfinite[opened] = got
        return classes, nonfinite


def probe_logits(classes: int, rows: int) -> np.ndarray:
    """Logit rows of magnitudes from 1e-3 to float32's largest, half of them with the
    runner-up just past :data:`DECIDED_MARGIN` (the closest a decided row comes to a tie)."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(1e-3, 3e38, 8).repeat(-(-rows // 8))[:rows]
    z = rng.uniform(-1.0, 1.0, (rows, classes)) * scales[:, None]
    close = np.arange(rows) % 2 == 0
    if classes > 1:
        top = z.max(axis=1)
        runner = np.where(z == top[:, None], -np.inf, z).argmax(axis=1)
        near = top - 1.5 * DECIDED_MARGIN * (1.0 + np.abs(top))
        z[close, runner[close]] = near[close]
    return np.clip(z, -3.4e38, 3.4e38).astype(np.float32)
