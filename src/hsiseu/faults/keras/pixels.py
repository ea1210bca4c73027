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
from hsiseu.faults.keras.classmap import DECIDED_MARGIN, classes_and_decided, classes_op, is_softmax
from hsiseu.faults.keras.graph import LayerGraph

__all__ = ["PixelTail", "row_length"]

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


def _fill_rows(out: np.ndarray, vectors: np.ndarray, c: int | None, state: np.ndarray, at: np.ndarray) -> None:
    """The changed pixels' channel vectors into ``out``: fault-free (``vectors``, pixels x C)
    but for channel ``c``, or the whole state's when ``c`` is None."""
    if c is None:
        np.take(state.reshape(len(vectors), -1), at, axis=0, out=out)
        return
    np.take(vectors, at, axis=0, out=out)
    out[:, c] = state.reshape(-1)[at]


class PixelTail:
    """The layers after ``end``, called one after another on rows of pixel vectors. A last
    softmax over the classes runs only on the rows whose logits leave the class open
    (:func:`classes_and_decided`): on the default U-Net the softmax is half the tail's time and
    decides a class that the logits already decide for nearly every pixel."""

    def __init__(self, graph: LayerGraph, end: str, values_of, host) -> None:
        self.end = end
        self.host = host  # a cached fault-free tensor of the loaded images, by layer name
        names = graph.descendants(end)
        # the layers one by one, each its own call (a functional sub-model would insist on the
        # images' height and width): the tail is a chain of single-input layers
        self.layers = [graph.nodes[d].layer for d in names]
        self.output = names[-1] if names else end
        self.logits = graph.nodes[names[-1]].inputs[0] if names and is_softmax(self.layers[-1]) else None
        self.variables = [v for layer in self.layers for v in layer.weights]
        self.values = values_of(self.variables)
        self.rank = len(graph.nodes[end].layer.output.shape)
        self._fns: dict[tuple[str, int], Any] = {}
        self.trusted: dict[tuple[str, int], bool] = {}
        self._split: bool | None = None  # whether the softmax runs apart: probed once

    def _compiled(self, kind: str, length: int, body):
        """``body`` (rows as the layers expect them -> outputs) compiled once per kind and
        length, taking a row of ``length`` vectors."""
        if (kind, length) not in self._fns:
            lead, variables = (1,) * (self.rank - 2), self.variables

            def run(values, rows):
                y = keras.ops.reshape(rows, lead + (length, int(rows.shape[-1])))
                with compiled.stateless(variables, values):
                    return body(y, length)

            self._fns[kind, length] = compiled.compile_fn(run)
        return self._fns[kind, length]

    def _rows_fn(self, length: int):
        """Compiled: a row of ``length`` vectors at ``end`` to their classes (length,), a flag
        (length,) and the last layer's input or output (length, C): with the softmax apart the
        flag says which rows the logits decide, else which have a non-finite score."""
        layers = self.layers[:-1] if self.split else self.layers

        def body(y, n):
            for layer in layers:
                y = layer(y, training=False)
            y = keras.ops.reshape(y, (n, int(y.shape[-1])))
            if self.split:
                return (*classes_and_decided(y), y)
            return classes_op(y), _nonfinite(y), y

        return self._compiled("rows", length, body)

    def _softmax_fn(self, length: int):
        """Compiled: a row of ``length`` logit vectors through the softmax layer's own call to
        their classes, non-finite flags and scores."""
        softmax = self.layers[-1]

        def body(y, n):
            scores = keras.ops.reshape(softmax(y, training=False), (n, int(y.shape[-1])))
            return classes_op(scores), _nonfinite(scores), scores

        return self._compiled("softmax", length, body)

    @property
    def split(self) -> bool:
        """Whether the last softmax runs apart: the tail ends in one, and on probe logits of
        every magnitude up to float32's largest, with runner-ups just past the margin, the
        softmax gives every decided row the logits' class and a finite score (the margin's
        argument assumes a max-shifted softmax accurate to a few ulps; this backend's is
        checked, not assumed)."""
        if self._split is None:
            self._split = self.logits is not None and self._softmax_agrees()
        return self._split

    def _softmax_agrees(self) -> bool:
        n = int(self.host(self.output).shape[-1])
        logits = _probe_logits(n, SHORTEST_ROW)
        decide = compiled.compile_fn(lambda z: classes_and_decided(z))
        want, decided = (compiled.to_host(a) for a in decide(compiled.to_device(logits)))
        got, nonfinite, _ = self._softmax_fn(SHORTEST_ROW)([], compiled.to_device(logits))
        got, nonfinite = compiled.to_host(got), compiled.to_host(nonfinite)
        return bool(decided.any()) and bool(np.array_equal(got[decided], want[decided])) \
            and not bool(nonfinite[decided].any())

    def _trust(self, kind: str, length: int) -> bool:
        """Fault-free vectors spread over the images, through a row of ``length``, must give the
        cached tensor bit for bit (kernels may pick other code for other shapes): for the rows,
        the end's vectors to the softmax's input (or the output); for the softmax, those to the
        output."""
        if (kind, length) not in self.trusted:
            src = self.end if kind == "rows" else self.logits
            dst = (self.logits if self.split else self.output) if kind == "rows" else self.output
            vectors = self.host(src).reshape(-1, self.host(src).shape[-1])
            at = np.linspace(0, len(vectors) - 1, length).round().astype(np.int64)
            fn = self._rows_fn(length) if kind == "rows" else self._softmax_fn(length)
            _, _, out = fn(self.values if kind == "rows" else [], compiled.to_device(vectors[at]))
            want = self.host(dst).reshape(len(vectors), -1)[at]
            self.trusted[kind, length] = bool(np.array_equal(compiled.to_host(out).view(np.uint32),
                                                             want.view(np.uint32)))
        return self.trusted[kind, length]

    def _through_softmax(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Classes and non-finite flags of logit rows the logits leave open; None when their row
        length is not trusted."""
        length = row_length(len(logits))
        if not self._trust("softmax", length):
            return None
        rows = np.empty((length, logits.shape[1]), logits.dtype)
        rows[:len(logits)] = logits
        rows[len(logits):] = self.host(self.logits).reshape(-1, logits.shape[1])[0]
        classes, nonfinite, _ = self._softmax_fn(length)([], compiled.to_device(rows))
        return compiled.to_host(classes)[:len(logits)], compiled.to_host(nonfinite)[:len(logits)]

    def run(self, gold_classes: np.ndarray, gold_nonfinite: bool,
            states: Sequence[tuple[int | None, np.ndarray, np.ndarray]]
            ) -> tuple[list[tuple[np.ndarray, bool]], int, int] | None:
        """Per faulty state (channel or None for all, the state, the pixels where it differs
        from the fault-free tensor at ``end``), its class map and whether any score is
        non-finite; with the row length run and the rows the softmax took. None when a length
        is not trusted. ``gold_classes`` / ``gold_nonfinite`` are the fault-free outputs of the
        loaded images."""
        gold = self.host(self.end)
        masks = [m for _, _, m in states]
        counts = [int(m.sum()) for m in masks]
        total = sum(counts)
        length = row_length(total)
        if not self._trust("rows", length):
            return None
        vectors = gold.reshape(-1, gold.shape[-1])
        rows = np.empty((length, vectors.shape[1]), vectors.dtype)
        at = 0
        for (c, s, m), p in zip(states, counts):
            _fill_rows(rows[at:at + p], vectors, c, s, np.flatnonzero(m))
            at += p
        rows[at:] = vectors[0]
        classes, flag, last = self._rows_fn(length)(self.values, compiled.to_device(rows))
        classes, flag = np.array(compiled.to_host(classes)[:total]), compiled.to_host(flag)[:total]
        undecided = np.flatnonzero(~flag) if self.split else np.empty(0, np.int64)
        nonfinite = np.zeros(total, bool) if self.split else flag
        if len(undecided):
            opened = self._through_softmax(compiled.to_host(last)[undecided])
            if opened is None:
                return None
            classes[undecided], nonfinite[undecided] = opened
        out, at = [], 0
        for m, p in zip(masks, counts):
            cls = gold_classes.copy()
            cls[m] = classes[at:at + p]
            out.append((cls, gold_nonfinite or bool(nonfinite[at:at + p].any())))
            at += p
        return out, length, len(undecided)


def _nonfinite(scores: Any) -> Any:
    ops = keras.ops
    return ops.logical_not(ops.all(ops.isfinite(scores), axis=-1))


def _probe_logits(classes: int, rows: int) -> np.ndarray:
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
