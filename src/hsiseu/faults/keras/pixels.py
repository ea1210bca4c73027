"""Downstream of a chain end after which no layer mixes pixels: recompute only the pixels a
fault changed.

Past a segmentation net's last spatial layer, every remaining layer (a 1x1 convolution, a dense
layer, BatchNorm, an activation, the softmax over classes) computes each output pixel from the
same input pixel alone. A faulty state there changes the output only where it differs from the
fault-free state: on the default U-Net half of the pixels or fewer (a kernel weight multiplies an
input channel that ReLU zeroed elsewhere). Running the whole downstream over every pixel of
faults x images, as the general path does, spends most of a late chain end's time on softmax and
class maps of pixels that did not change. Here the changed pixels' channel vectors of a batch of
faults are laid side by side as one row of pixels, run through the same layers (their own
``call``) in one compiled call, and their classes written over the fault-free class map.

Exactness is checked as everywhere in the engine: a row length is trusted only once fault-free
pixel vectors spread over the images, run through it, reproduce the cached fault-free scores
bit for bit; a length that does not sends its faults to the general downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.classmap import classes_op
from hsiseu.faults.keras.graph import LayerGraph

__all__ = ["PixelTail", "changed_pixels", "row_length"]

#: The shortest row compiled: shorter batches are padded, so that few lengths are traced.
SHORTEST_ROW = 256


def row_length(pixels: int) -> int:
    """The compiled row length for ``pixels`` changed pixels: the next of 256, 384, 512, 768,
    1024, ... (powers of two and their midpoints), so that padding wastes a fifth of a call at
    most on average while a campaign traces a few lengths per chain end."""
    n = SHORTEST_ROW
    while n < pixels:
        n = n * 3 // 2 if n & (n - 1) == 0 else n // 3 * 4
    return n


def changed_pixels(gold: np.ndarray, c: int | None, state: np.ndarray) -> np.ndarray:
    """Where a faulty state differs bitwise from the fault-free tensor ``gold`` (N, ..., C):
    its channel ``c`` (``state`` shaped as one channel), or any channel when ``c`` is None."""
    g = gold[..., c] if c is not None else gold
    diff = g.view(np.uint32) != state.view(np.uint32)
    return diff if c is not None else diff.any(axis=-1)


def _fill_rows(out: np.ndarray, vectors: np.ndarray, c: int | None, state: np.ndarray, at: np.ndarray) -> None:
    """The changed pixels' channel vectors into ``out``: fault-free (``vectors``, pixels x C)
    but for channel ``c``, or the whole state's when ``c`` is None."""
    if c is None:
        np.take(state.reshape(len(vectors), -1), at, axis=0, out=out)
        return
    np.take(vectors, at, axis=0, out=out)
    out[:, c] = state.reshape(-1)[at]


class PixelTail:
    """The layers after ``end``, called one after another on rows of pixel vectors."""

    def __init__(self, graph: LayerGraph, end: str, values_of) -> None:
        self.end = end
        # the layers one by one, each its own call (a functional sub-model would insist on the
        # images' height and width): the tail is a chain of single-input layers
        self.layers = [graph.nodes[d].layer for d in graph.descendants(end)]
        self.variables = [v for layer in self.layers for v in layer.weights]
        self.values = values_of(self.variables)
        self.rank = len(graph.nodes[end].layer.output.shape)
        self._fns: dict[int, Any] = {}
        self.trusted: dict[int, bool] = {}

    def _fn(self, length: int):
        """Compiled: a row of ``length`` pixel vectors (length, C) to their classes (length,),
        non-finite flags (length,) and scores (length, classes)."""
        if length not in self._fns:
            layers, variables, lead = self.layers, self.variables, (1,) * (self.rank - 2)

            def run(values, rows):
                ops = keras.ops
                y = ops.reshape(rows, lead + (length, int(rows.shape[-1])))
                with compiled.stateless(variables, values):
                    for layer in layers:
                        y = layer(y, training=False)
                scores = ops.reshape(y, (length, int(y.shape[-1])))
                nonfinite = ops.logical_not(ops.all(ops.isfinite(scores), axis=-1))
                return classes_op(scores), nonfinite, scores

            self._fns[length] = compiled.compile_fn(run)
        return self._fns[length]

    def _trust(self, length: int, gold: np.ndarray, gold_scores: np.ndarray) -> bool:
        """Fault-free pixel vectors spread over the images, through a row of ``length``, must
        give the cached scores bit for bit (kernels may pick other code for other shapes)."""
        if length not in self.trusted:
            vectors = gold.reshape(-1, gold.shape[-1])
            at = np.linspace(0, len(vectors) - 1, length).round().astype(np.int64)
            _, _, scores = self._fn(length)(self.values, compiled.to_device(vectors[at]))
            want = gold_scores.reshape(len(vectors), -1)[at]
            self.trusted[length] = bool(np.array_equal(compiled.to_host(scores).view(np.uint32), want.view(np.uint32)))
        return self.trusted[length]

    def run(self, gold: np.ndarray, gold_scores: np.ndarray, gold_classes: np.ndarray, gold_nonfinite: bool,
            states: Sequence[tuple[int | None, np.ndarray]]) -> tuple[list[tuple[np.ndarray, bool]], int] | None:
        """Per faulty state (channel or None, state), its class map and whether any score is
        non-finite; with the row length run. None when that length is not trusted.
        ``gold`` is the fault-free tensor at ``end``, ``gold_scores`` / ``gold_classes`` /
        ``gold_nonfinite`` the fault-free outputs, all of the loaded images."""
        masks = [changed_pixels(gold, c, s) for c, s in states]
        counts = [int(m.sum()) for m in masks]
        length = row_length(sum(counts))
        if not self._trust(length, gold, gold_scores):
            return None
        vectors = gold.reshape(-1, gold.shape[-1])
        rows = np.empty((length, vectors.shape[1]), vectors.dtype)
        at = 0
        for (c, s), m, p in zip(states, masks, counts):
            _fill_rows(rows[at:at + p], vectors, c, s, np.flatnonzero(m))
            at += p
        rows[at:] = vectors[0]
        classes, nonfinite, _ = self._fn(length)(self.values, compiled.to_device(rows))
        classes, nonfinite = compiled.to_host(classes), compiled.to_host(nonfinite)
        out, at = [], 0
        for m, p in zip(masks, counts):
            cls = gold_classes.copy()
            cls[m] = classes[at:at + p]
            out.append((cls, gold_nonfinite or bool(nonfinite[at:at + p].any())))
            at += p
        return out, length
