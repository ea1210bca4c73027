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


def confusion_over(predict: Predictor, batches: Iterable[tuple], n_classes: int) -> np.ndarray:
    """Sum of per-batch confusion matrices, so that no split is held in memory at once."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for x, y in batches:
        cm += confusion_matrix(np.asarray(y), predict(np.asarray(x)), n_classes)
    return cm
