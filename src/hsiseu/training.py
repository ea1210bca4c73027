"""Seeded, deterministic training with the best validation checkpoint kept.

The paper reports the best IoU reached on validation; the checkpoint is therefore chosen by a
segmentation metric (Global or Weighted IoU over labelled pixels), not by the loss, unless the
config says ``val_loss``. Fine-tuning after pruning uses the same ``fit``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from hsiseu import data as hdata
from hsiseu import settings
from hsiseu.evaluation import compiled_predictor, confusion_over, keras_predictor
from hsiseu.io import atomic_path, write_json
from hsiseu.metrics import IGNORE, global_iou, segmentation_report, weighted_iou

log = logging.getLogger(__name__)

MONITORS = {"val_global_iou": "max", "val_weighted_iou": "max", "val_loss": "min"}


CLASS_WEIGHTINGS = ("none", "inverse_frequency", "median_frequency")


def class_weights(counts: np.ndarray, scheme: str) -> np.ndarray:
    """Loss weight per class, so that rare classes (lane marks: ~1 % of HSI-Drive pixels) are
    learned at all; the paper scores models by Weighted IoU, which is dominated by them.

    ``median_frequency`` (Eigen & Fergus) is median(f) / f_c; ``inverse_frequency`` is 1 / f_c
    scaled to a mean of 1. Classes absent from the training split get weight 0.
    """
    if scheme not in CLASS_WEIGHTINGS:
        raise ValueError(f"class weighting must be one of {CLASS_WEIGHTINGS}, got {scheme!r}")
    counts = np.asarray(counts, dtype=np.float64)
    if scheme == "none":
        return np.ones_like(counts)
    present = counts > 0
    freq = np.where(present, counts / max(counts.sum(), 1.0), np.inf)
    if scheme == "median_frequency":
        weights = np.median(freq[present]) / freq
    else:
        weights = 1.0 / freq
        weights = weights / weights[present].mean()
    return np.where(present, weights, 0.0)


def _as_training_triples(ds, weights: np.ndarray):
    """(x, y, per-pixel weight): ignored pixels (255) get weight 0 and a dummy class 0."""
    import tensorflow as tf

    table = np.zeros(256, dtype=np.float32)
    table[: len(weights)] = weights
    table = tf.constant(table)

    def to_triple(x, y):
        y = tf.cast(y, tf.int32)
        w = tf.gather(table, y)
        return x, tf.where(y == IGNORE, 0, y), w

    return ds.map(to_triple).prefetch(2)


def training_class_counts(train_ds, n_classes: int) -> np.ndarray:
    """Labelled pixels per class over the training split, streamed."""
    counts = np.zeros(n_classes, dtype=np.int64)
    for _, y in train_ds:
        counts += hdata.class_pixel_counts(np.asarray(y), n_classes)
    return counts


def split_dataset(config: Mapping[str, Any], split: str, *, shuffle: bool = False, seed: int = 0):
    """The streamed split of the configured dataset, batched as the config says."""
    return hdata.make_dataset(
        config["data"]["root"],
        split,
        batch_size=int(config["training"]["batch_size"]),
        shuffle=shuffle,
        seed=seed,
        **settings.data_kwargs(config),
    )


class BestOnValidation(keras.callbacks.Callback):
    """Validation IoUs each epoch; the best weights are kept in memory and restored by ``fit``.

    The split is read from disk once and kept (a validation split is small, and it is scored
    every epoch), and scored through one traced graph of the model."""

    def __init__(self, val_ds, n_classes: int, monitor: str):
        super().__init__()
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {monitor!r}")
        self.val_ds = val_ds.cache()
        self._predict = None
        self.n_classes = n_classes
        self.monitor = monitor
        self.mode = MONITORS[monitor]
        self.best: float | None = None
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.rows: list[dict[str, float]] = []
        self._t0 = time.perf_counter()

    def validate(self, epoch: int, logs: dict) -> dict[str, float]:
        """Add the validation Global / Weighted IoU (%) to ``logs``; the epoch's history row."""
        if self._predict is None:
            self._predict = compiled_predictor(self.model)
        cm = confusion_over(self._predict, self.val_ds, self.n_classes)
        logs["val_global_iou"] = 100.0 * global_iou(cm)
        logs["val_weighted_iou"] = 100.0 * weighted_iou(cm)
        return {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        row = self.validate(epoch, logs)
        row["seconds"] = time.perf_counter() - self._t0
        self.rows.append(row)
        value = float(logs[self.monitor])
        improved = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if improved and np.isfinite(value):
            self.best, self.best_epoch = value, epoch + 1
            self.best_weights = [w.copy() for w in self.model.get_weights()]
        print(
            f"epoch {epoch + 1}: val GIoU {logs['val_global_iou']:.2f} "
            f"WIoU {logs['val_weighted_iou']:.2f} (best {self.monitor} {self.best:.4g} "
            f"at epoch {self.best_epoch})",
            flush=True,
        )


def fit_with_checkpoint(
    model,
    best: BestOnValidation,
    train_ds,
    val_ds,
    *,
    epochs: int,
    learning_rate: float,
    monitor: str,
    n_classes: int,
    verbose: int,
    class_weighting: str,
) -> None:
    """Train ``model`` in place with the class-weighted loss and leave it at the epoch ``best``
    kept: the one training loop of the original models and of every pruning fine-tune.

    Keras's own validation pass runs only where its ``val_loss`` is the monitor: ``best`` scores
    the validation split itself, and a second pass per epoch adds time to every epoch."""
    weights = class_weights(training_class_counts(train_ds, n_classes), class_weighting)
    log.info("class weights (%s): %s", class_weighting, np.round(weights, 3).tolist())
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    # The optimizer's slots made now rather than inside the first trace of the train step: a
    # tf.function that creates variables is traced twice, and a trace costs seconds per fit.
    model.optimizer.build(model.trainable_variables)
    model.fit(
        _as_training_triples(train_ds, weights),
        validation_data=_as_training_triples(val_ds, weights) if monitor == "val_loss" else None,
        epochs=int(epochs),
        verbose=verbose,
        callbacks=[best],
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    if best.best_weights is not None:
        model.set_weights(best.best_weights)


def fit(
    model,
    train_ds,
    val_ds,
    *,
    epochs: int,
    learning_rate: float,
    monitor: str = "val_global_iou",
    n_classes: int = 5,
    verbose: int = 2,
    class_weighting: str = "median_frequency",
) -> tuple[pd.DataFrame, int]:
    """Train ``model`` in place and leave it at its best validation epoch.

    Returns the per-epoch history and the best epoch (1-based).
    """
    best = BestOnValidation(val_ds, n_classes, monitor)
    fit_with_checkpoint(
        model, best, train_ds, val_ds, epochs=epochs, learning_rate=learning_rate,
        monitor=monitor, n_classes=n_classes, verbose=verbose, class_weighting=class_weighting,
    )
    return pd.DataFrame(best.rows), best.best_epoch


def evaluate_splits(model, config: Mapping[str, Any], splits=("validation", "test")) -> dict[str, Any]:
    """Segmentation reports of a Keras model on the given splits of the configured data."""
    n_classes = int(config["model"]["n_classes"])
    out = {}
    for split in splits:
        cm = confusion_over(keras_predictor(model), split_dataset(config, split), n_classes)
        out[split] = segmentation_report(cm, hdata.CLASS_NAMES)
        out[split]["confusion_matrix"] = cm.tolist()
    return out


def train_original(
    config: Mapping[str, Any],
    af: str,
    *,
    out_model: str | Path,
    out_history: str | Path,
    out_metrics: str | Path,
    threads: int | None = None,
    verbose: int = 2,
) -> dict[str, Any]:
    """Train the reference (unpruned, float) model of one activation function.

    ``verbose`` (Keras's progress output, ``training.verbose``) is an argument rather than read
    from ``config``, the keys the job's outputs depend on: changing it must not retrain."""
    from hsiseu.model import build_unet, complexity
    from hsiseu.runtime import configure_tensorflow

    seed = int(config["seed"])
    configure_tensorflow(threads, seed)
    settings.check_config(config)
    tcfg = config["training"]
    epochs = int(settings.per_af(config, "training.epochs", af))
    model = build_unet(**settings.model_kwargs(config, af))
    cost = complexity(model)
    log.info("training %s: %d params, %.3f GFLOPs", model.name, cost.params, cost.gflops)
    t0 = time.perf_counter()
    history, best_epoch = fit(
        model,
        split_dataset(config, "training", shuffle=True, seed=seed),
        split_dataset(config, "validation"),
        epochs=epochs,
        learning_rate=float(tcfg["learning_rate"]),
        monitor=tcfg["monitor"],
        n_classes=int(config["model"]["n_classes"]),
        verbose=int(verbose),
        class_weighting=tcfg["class_weighting"],
    )
    seconds = time.perf_counter() - t0
    metrics = {
        "af": af,
        "stage": "original",
        "epochs": epochs,
        "best_epoch": int(best_epoch),
        "monitor": tcfg["monitor"],
        "train_seconds": round(seconds, 2),
        "params": cost.params,
        "flops": cost.flops,
        **evaluate_splits(model, config),
    }
    with atomic_path(out_model) as tmp:
        model.save(tmp)
    with atomic_path(out_history) as tmp:
        history.to_csv(tmp, index=False)
    write_json(out_metrics, metrics)
    log.info(
        "%s: test Global IoU %.2f, Weighted IoU %.2f (best epoch %d, %.0f s)",
        af, metrics["test"]["global_iou"], metrics["test"]["weighted_iou"], best_epoch, seconds,
    )
    return metrics
