"""The class map taken where the scores are: on the device, inside the engines' compiled calls,
so that only uint8 class maps come back to the host."""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["classes_op"]


def classes_op(scores: Any) -> Any:
    """``outcomes.classes_from_scores`` in ``keras.ops`` (arg-max, ties to the lowest class,
    +inf wins, a pixel with a NaN gets class ``n_classes``), so the class map is taken where
    the scores are.

    One class at a time over the class-major scores rather than reductions over the last axis:
    TensorFlow's CPU reductions over a short innermost axis (5 classes) cost about 5x this, and
    the class map is taken for every fault of every downstream call. A strict ``>`` keeps the
    lowest of tied classes; a NaN never compares greater, and its pixel is overridden."""
    ops = keras.ops
    n = int(scores.shape[-1])
    by_class = ops.moveaxis(scores, -1, 0)
    best, first = by_class[0], ops.zeros(ops.shape(by_class[0]), dtype="int32")
    nan = ops.isnan(best)
    for j in range(1, n):
        value = by_class[j]
        higher = ops.greater(value, best)
        best = ops.where(higher, value, best)
        first = ops.where(higher, j, first)
        nan = ops.logical_or(nan, ops.isnan(value))
    return ops.cast(ops.where(nan, n, first), "uint8")
