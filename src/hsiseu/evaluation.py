"""Confusion matrices of a model over a streamed split.

Training (validation each epoch), pruning (sensitivity) and quantization all score models the
same way; this is that one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from hsiseu.metrics import confusion_matrix
from hsiseu.model import predict_classes

Predictor = Callable[[np.ndarray], np.ndarray]


def keras_predictor(model) -> Predictor:
    """Class map of a Keras model for one whole batch."""
    return lambda x: predict_classes(model, x, batch_size=max(len(x), 1))


def compiled_predictor(model) -> Predictor:
    """Class map of ``model`` through one traced graph, for a model scored many times with only
    its weights changed (variables, which a trace reads live): every epoch's validation, every
    masked layer of the sensitivity analysis. The eager per-layer dispatch of ``model(x)`` costs
    several times the arithmetic on a small U-Net; a trace costs about as much as a few eager
    calls, so a model scored once keeps :func:`keras_predictor`."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def classes(x):
        return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

    return lambda x: classes(x).numpy().astype(np.uint8)


def confusion_over(predict: Predictor, batches: Iterable[tuple], n_classes: int) -> np.ndarray:
    """Sum of per-batch confusion matrices, so that no split is held in memory at once."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for x, y in batches:
        cm += confusion_matrix(np.asarray(y), predict(np.asarray(x)), n_classes)
    return cm
