"""Downstream of the logits themselves: a fault changes one logit of a pixel, and its class is
decided against the fault-free others.

Where a chain end is the closing softmax's input (a segmentation net's 1x1 classifier), a fault
in output channel c changes logit c of some pixels and no other value. With the softmax apart
(:mod:`~hsiseu.faults.keras.softmax`), a pixel's class needs only its highest logit, the
runner-up and whether all are finite, and of those the fault-free other logits' share is the
same for every fault of channel c: their highest (lowest class among ties), runner-up and
finiteness are taken once per image chunk, and a batch of faults costs one fused call that
compares each fault's new logit channel with them, image-wide, instead of logit vectors of the
changed pixels gathered on the host and scanned class by class (on the default U-Net that took
half of the classifier's time per fault). The decision keeps the margin of
:func:`~hsiseu.faults.keras.classmap.classes_and_decided` on the same highest and runner-up
(those of the multiset of all logits), so a decided pixel has the softmax's class; the changed
pixels it leaves open go through the softmax layer's own call with their whole logit vector,
and a state that is not one channel's through :class:`~hsiseu.faults.keras.pixels.PixelTail`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.classmap import DECIDED_MARGIN
from hsiseu.faults.keras.pixels import PixelTail
from hsiseu.faults.keras.softmax import SoftmaxApart

__all__ = ["LogitTail", "others_of"]


def others_of(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class c and pixel (C, P) of ``logits`` (P x C), over the other classes: the highest
    logit, its lowest class, the runner-up (the multiset's second: -inf with fewer than two
    others) and whether all are finite."""
    pixels, classes = logits.shape
    best = np.full((classes, pixels), -np.inf, np.float32)
    second = np.full((classes, pixels), -np.inf, np.float32)
    first = np.zeros((classes, pixels), np.int32)
    finite = np.ones((classes, pixels), bool)
    for c in range(classes):
        rest = [j for j in range(classes) if j != c]
        if not rest:
            continue
        others = logits[:, rest]
        at = np.argmax(np.where(np.isnan(others), -np.inf, others), axis=1)  # the lowest of ties
        best[c] = others[np.arange(pixels), at]
        first[c] = np.asarray(rest, np.int32)[at]
        if len(rest) > 1:
            second[c] = np.sort(others, axis=1)[:, -2]
        finite[c] = np.isfinite(others).all(axis=1)
    return best, second, first, finite


class LogitTail:
    """The downstream of the logits (``rows`` runs what is not one channel's state, and serves
    the whole-vector checks); ``host`` gives a cached fault-free tensor by layer name."""

    def __init__(self, rows: PixelTail, apart: SoftmaxApart, host) -> None:
        self.rows = rows
        self.apart = apart
        self.host = host
        self.end = rows.end
        self._others: tuple[np.ndarray, list[Any]] | None = None
        self._fns: dict[int, Any] = {}

    @property
    def split(self) -> bool:
        return self.rows.split

    def _others_now(self) -> list[Any]:
        """The others of the loaded chunk's fault-free logits, on the device (C, P) each."""
        logits = self.host(self.end)
        if self._others is None or self._others[0] is not logits:
            parts = others_of(logits.reshape(-1, logits.shape[-1]))
            self._others = (logits, [compiled.to_device(p) for p in parts])
        return self._others[1]

    def _fn(self, k: int):
        """Compiled (fused: a dozen elementwise comparisons, no layer's arithmetic): K faults'
        new logits (K, P) of classes ``c`` (K,), changed at ``changed`` (K, P), to their class
        maps, the fault-free one's where unchanged (K, P), and where the softmax must decide
        (K, P: changed, and the logits leave the class open)."""
        if k not in self._fns:
            def decide(others, gold_classes, v, c, changed):
                ops = keras.ops
                best, second, first, finite = (ops.take(o, c, axis=0) for o in others)
                column = ops.expand_dims(c, 1)
                higher = ops.logical_or(ops.greater(v, best),
                                        ops.logical_and(ops.equal(v, best), ops.less(column, first)))
                top = ops.maximum(v, best)
                runner = ops.maximum(second, ops.minimum(v, best))
                lead = ops.greater(ops.subtract(top, runner), DECIDED_MARGIN * (1.0 + ops.abs(top)))
                decided = ops.logical_and(ops.logical_and(finite, ops.isfinite(v)), lead)
                classes = ops.cast(ops.where(higher, column, first), "uint8")
                return (ops.where(ops.logical_and(changed, decided), classes, gold_classes),
                        ops.logical_and(changed, ops.logical_not(decided)))

            self._fns[k] = compiled.compile_fused(decide)
        return self._fns[k]

    def run(self, gold_classes: np.ndarray, gold_nonfinite: bool,
            states: Sequence[tuple[int | None, np.ndarray, np.ndarray]]):
        """As :meth:`PixelTail.run`; the length run is faults (padded to a power of two) x
        pixels."""
        if not self.split or any(c is None for c, _, _ in states):
            return self.rows.run(gold_classes, gold_nonfinite, states)
        n, k, pixels = len(states), 1 << (len(states) - 1).bit_length(), gold_classes.size
        v = np.empty((k, pixels), np.float32)
        changed = np.zeros((k, pixels), bool)
        c = np.zeros(k, np.int32)
        for r, (ch, s, m) in enumerate(states):
            v[r], changed[r], c[r] = s.reshape(-1), m.reshape(-1), ch
        v[n:] = v[0]
        classes, opened = self._fn(k)(self._others_now(), compiled.to_device(gold_classes.reshape(-1)),
                                      *(compiled.to_device(a) for a in (v, c, changed)))
        classes, opened = np.array(compiled.to_host(classes)[:n]), compiled.to_host(opened)[:n]
        nonfinite = np.zeros(n, bool)
        at = np.flatnonzero(opened)
        if len(at):
            fault, pixel = np.divmod(at, pixels)
            rows = self.host(self.end).reshape(pixels, -1)[pixel]
            rows[np.arange(len(at)), c[fault]] = v[fault, pixel]
            got = self.apart.run(rows)
            if got is None:
                return None
            classes.reshape(-1)[at] = got[0]
            nonfinite[fault[got[1]]] = True
        shape = gold_classes.shape
        return ([(classes[r].reshape(shape), gold_nonfinite or bool(nonfinite[r])) for r in range(n)],
                k * pixels, int(changed.sum()), len(at))
