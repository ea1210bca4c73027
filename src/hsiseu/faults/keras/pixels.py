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
pixel vectors spread over the images, run through it, reproduce the cached fault-free logits
(the scores, where the softmax does not run apart: :mod:`hsiseu.faults.keras.softmax`) bit for
bit; a length that does not sends its faults to the general downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.classmap import decision
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.softmax import SoftmaxApart, row_length, rows_reproduce

__all__ = ["PixelTail"]


def _fill_rows(out: np.ndarray, vectors: np.ndarray, c: int | None, state: np.ndarray, at: np.ndarray) -> None:
    """The changed pixels' channel vectors into ``out``: fault-free (``vectors``, pixels x C)
    but for channel ``c``, or the whole state's when ``c`` is None."""
    if c is None:
        np.take(state.reshape(len(vectors), -1), at, axis=0, out=out)
        return
    np.take(vectors, at, axis=0, out=out)
    out[:, c] = state.reshape(-1)[at]


class PixelTail:
    """The layers after ``end``, called one after another on rows of pixel vectors; a closing
    softmax (``apart``, when the backend's agrees with the margin) runs only on the rows whose
    logits leave the class open."""

    def __init__(self, graph: LayerGraph, end: str, values_of, host, apart: SoftmaxApart | None) -> None:
        self.end = end
        self.host = host  # a cached fault-free tensor of the loaded images, by layer name
        names = graph.descendants(end)
        # the layers one by one, each its own call (a functional sub-model would insist on the
        # images' height and width): the tail is a chain of single-input layers
        self.layers = [graph.nodes[d].layer for d in names]
        self.output = names[-1] if names else end
        self.apart = apart if apart is not None and names and names[-1] == apart.output else None
        self.variables = [v for layer in self.layers for v in layer.weights]
        self.values = values_of(self.variables)
        self.rank = len(graph.nodes[end].layer.output.shape)
        self._fns: dict[int, Any] = {}
        self.trusted: dict[int, bool] = {}

    @property
    def split(self) -> bool:
        """Whether the closing softmax runs apart."""
        return self.apart is not None and self.apart.agrees

    def _fn(self, length: int):
        """Compiled: a row of ``length`` vectors at ``end`` through the layers (their own
        calls) to the last layer's output (length, C), or its input, the logits, with the
        softmax apart."""
        if length not in self._fns:
            variables, lead = self.variables, (1,) * (self.rank - 2)
            layers = self.layers[:-1] if self.split else self.layers

            def run(values, rows):
                y = keras.ops.reshape(rows, lead + (length, int(rows.shape[-1])))
                with compiled.stateless(variables, values):
                    for layer in layers:
                        y = layer(y, training=False)
                return keras.ops.reshape(y, (length, int(y.shape[-1])))

            self._fns[length] = compiled.compile_fn(run)
        return self._fns[length]

    def _trust(self, length: int) -> bool:
        """Fault-free vectors spread over the images, through a row of ``length``, must give the
        cached logits (the output, without the softmax apart) bit for bit (kernels may pick
        other code for other shapes)."""
        if length not in self.trusted:
            self.trusted[length] = rows_reproduce(lambda rows: self._fn(length)(self.values, rows),
                                                  self.host(self.end),
                                                  self.host(self.apart.logits if self.split else self.output), length)
        return self.trusted[length]

    def outputs(self, rows: np.ndarray) -> np.ndarray:
        """The layers' own outputs (the logits, with the softmax apart) for host rows of
        vectors at ``end``, through a compiled row length."""
        length = row_length(len(rows))
        padded = np.empty((length, rows.shape[1]), rows.dtype)
        padded[:len(rows)] = rows
        padded[len(rows):] = rows[0]  # a real vector, not zeros, as :meth:`run` pads
        return compiled.to_host(self._fn(length)(self.values, compiled.to_device(padded)))[:len(rows)]

    def run(self, gold_classes: np.ndarray, gold_nonfinite: bool,
            states: Sequence[tuple[int | None, np.ndarray, np.ndarray]]
            ) -> tuple[list[tuple[np.ndarray, bool]], int, int, int] | None:
        """Per faulty state (channel or None for all, the state, the pixels where it differs
        from the fault-free tensor at ``end``), its class map and whether any score is
        non-finite; with the row length run, the changed pixels in it and those the softmax
        took. None when a length is not trusted. ``gold_classes`` / ``gold_nonfinite`` are the
        fault-free outputs of the loaded images."""
        gold = self.host(self.end)
        masks = [m for _, _, m in states]
        counts = [int(m.sum()) for m in masks]
        total = sum(counts)
        length = row_length(total)
        if not self._trust(length):
            return None
        vectors = gold.reshape(-1, gold.shape[-1])
        rows = np.empty((length, vectors.shape[1]), vectors.dtype)
        at = 0
        for (c, s, m), p in zip(states, counts):
            _fill_rows(rows[at:at + p], vectors, c, s, np.flatnonzero(m))
            at += p
        rows[at:] = vectors[0]
        last = self._fn(length)(self.values, compiled.to_device(rows))
        classes, flag = decision(self.split)(last)
        classes, flag = compiled.to_host(classes)[:total], compiled.to_host(flag)[:total]
        opened = 0
        if self.split:
            opened = int(total - flag.sum())
            resolved = self.apart.resolve(classes, flag, lambda m: compiled.to_host(last)[:total][m])
            if resolved is None:
                return None
            classes, nonfinite = resolved
        else:
            nonfinite = flag
        out, at = [], 0
        for m, p in zip(masks, counts):
            cls = gold_classes.copy()
            cls[m] = classes[at:at + p]
            out.append((cls, gold_nonfinite or bool(nonfinite[at:at + p].any())))
            at += p
        return out, length, total, opened
