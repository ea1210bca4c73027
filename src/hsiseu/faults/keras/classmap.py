"""The class map taken where the scores are: on the device, inside the engines' compiled calls,
so that only uint8 class maps come back to the host."""

from __future__ import annotations

import functools
from typing import Any

import keras

from hsiseu.faults.keras import compiled

__all__ = ["DECIDED_MARGIN", "classes_op", "classes_and_decided", "decision", "is_softmax", "nonfinite_rows"]

#: A pixel's arg-max over logits is the arg-max over their softmax when its highest logit leads
#: the next by more than this times (1 + |highest|): the softmax's exp and division are accurate
#: to a few ulps (~1e-7 relative, also on the log-sum-exp form, whose error grows with the
#: logits' magnitude), three orders of magnitude inside the lead.
DECIDED_MARGIN = 2.0 ** -10


def _scan(scores: Any, decide: bool):
    """One pass over the classes (class-major): the highest score and its lowest class, then
    for a class map whether any score is NaN, or for a decision the second highest and the sum
    (finite only if every score is: a NaN or an inf makes it NaN or inf, an overflow errs on the
    safe side).

    One class at a time over the class-major scores rather than reductions over the last axis:
    TensorFlow's CPU reductions over a short innermost axis (5 classes) cost about 5x this, and
    the class map is taken for every fault of every downstream call. A strict ``>`` keeps the
    lowest of tied classes; a NaN never compares greater."""
    ops = keras.ops
    by_class = ops.moveaxis(scores, -1, 0)
    best, first = by_class[0], ops.zeros(ops.shape(by_class[0]), dtype="int32")
    if decide:
        second, total = ops.full(ops.shape(best), float("-inf"), dtype=best.dtype), best
    else:
        nan = ops.isnan(best)
    for j in range(1, int(scores.shape[-1])):
        value = by_class[j]
        higher = ops.greater(value, best)
        if decide:
            second = ops.maximum(second, ops.minimum(value, best))
            total = ops.add(total, value)
        else:
            nan = ops.logical_or(nan, ops.isnan(value))
        best = ops.where(higher, value, best)
        first = ops.where(higher, j, first)
    return best, first, ((second, total) if decide else nan)


def classes_op(scores: Any) -> Any:
    """``outcomes.classes_from_scores`` in ``keras.ops`` (arg-max, ties to the lowest class,
    +inf wins, a pixel with a NaN gets class ``n_classes``), so the class map is taken where
    the scores are."""
    ops = keras.ops
    _, first, nan = _scan(scores, False)
    return ops.cast(ops.where(nan, int(scores.shape[-1]), first), "uint8")


def nonfinite_rows(scores: Any) -> Any:
    """Per row (all axes but the last), whether any score is NaN or inf."""
    ops = keras.ops
    return ops.logical_not(ops.all(ops.isfinite(scores), axis=-1))


def classes_and_decided(logits: Any) -> tuple[Any, Any]:
    """Per pixel whether the class map of its softmax is that of its logits (every logit
    finite and the highest ahead of the next by :data:`DECIDED_MARGIN` relative), and that
    class; the class of an undecided pixel is meaningless (the softmax decides it). A decided
    pixel's softmax is finite (the softmax shifts by the maximum) and has the same unique
    arg-max, so only the undecided pixels need the softmax itself, which costs TensorFlow's CPU
    kernels 4x the class map over five classes."""
    ops = keras.ops
    best, first, (second, total) = _scan(logits, True)
    lead = ops.subtract(best, second)
    decided = ops.logical_and(ops.isfinite(total), ops.greater(lead, DECIDED_MARGIN * (1.0 + ops.abs(best))))
    return ops.cast(first, "uint8"), decided


def _classes_and_nonfinite(scores: Any) -> tuple[Any, Any]:
    return classes_op(scores), nonfinite_rows(scores)


@functools.cache
def decision(logits: bool):
    """Compiled and fused (once per kind, shared by every downstream, so that each shape
    compiles once): scores (..., C) to per-row classes and a flag, from the logits
    (:func:`classes_and_decided`: the flag says which rows they decide) or from the scores
    (:func:`classes_op`, the flag says which rows have a non-finite score). Fused because the
    class-by-class scan is a dozen elementwise ops per class: one pass over memory (about 3x
    faster on TensorFlow's CPU kernels) instead of one per op; comparisons and selections
    round nothing."""
    return compiled.compile_fused(classes_and_decided if logits else _classes_and_nonfinite)


def is_softmax(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a softmax over the last axis and nothing else (the ``Softmax``
    layer, or an ``Activation`` of Keras's own softmax)."""
    L = keras.layers
    if isinstance(layer, L.Softmax):
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return list(axes) in ([-1], [len(layer.input.shape) - 1])
    return isinstance(layer, L.Activation) and layer.activation is keras.activations.softmax
