"""Fine-tuning a slim model, keeping the epoch that best meets the acceptance rule.

Training keeps the epoch with the best validation metric (``training.monitor``). A pruned model
is then judged on two validation IoUs against the original's, and on this small validation split
the Weighted IoU (dominated by the rare lane marks) swings by several points from one epoch to the
next while Global IoU hardly moves: the epoch with the best Global IoU is often one whose Weighted
IoU fails the rule although another epoch passes it (default ReLU, iteration 1: epoch 6 kept at
WIoU -12.6 points, epoch 10 at -1.7). So when the acceptance rule is measured on the validation
split, the kept epoch is the best by ``training.monitor`` *among the epochs that pass the rule*,
or, if none does, the one closest to passing (largest acceptance margin). This is the same kind
of selection on the same split as the original model's checkpoint; the test split plays no part
(when the rule is measured on the test split, the plain monitor chooses, as in training).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.pruning.acceptance import judge, margin
from hsiseu.training import BestOnValidation

__all__ = ["AcceptanceCheckpoint", "epoch_key", "finetune"]


def epoch_key(
    ious: Mapping[str, float],
    monitored: float,
    mode: str,
    reference: Mapping[str, Any] | None,
    acceptance: Mapping[str, Any] | None,
) -> tuple:
    """Sort key of one epoch (larger is better): passing epochs first, by the monitor; failing
    ones by how close they come to passing. Without a reference, the monitor alone."""
    value = monitored if mode == "max" else -monitored
    if reference is None or acceptance is None:
        return (value,)
    verdict = judge(reference, {acceptance["split"]: dict(ious)}, acceptance)
    if verdict["passed"]:
        return (1, value)
    return (0, margin(verdict))


class AcceptanceCheckpoint(BestOnValidation):
    """Validation IoUs each epoch; keeps the weights of the best epoch by :func:`epoch_key`."""

    def __init__(self, val_ds, n_classes: int, monitor: str, reference=None, acceptance=None):
        super().__init__(val_ds, n_classes, monitor)
        self.reference = reference
        self.acceptance = acceptance
        self.best_key: tuple | None = None
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        row = self.validate(epoch, logs)
        ious = {"global_iou": logs["val_global_iou"], "weighted_iou": logs["val_weighted_iou"]}
        monitored = float(logs[self.monitor])
        key = epoch_key(ious, monitored, self.mode, self.reference, self.acceptance)
        if len(key) == 2:
            row["passes_acceptance"] = bool(key[0])
        row["seconds"] = time.perf_counter() - self._t0
        self.rows.append(row)
        if np.isfinite(monitored) and (self.best_key is None or key > self.best_key):
            self.best_key, self.best_epoch = key, epoch + 1
            self.best_weights = [w.copy() for w in self.model.get_weights()]
        passing = f", passes acceptance: {row['passes_acceptance']}" if "passes_acceptance" in row else ""
        print(
            f"epoch {epoch + 1}: val GIoU {ious['global_iou']:.2f} WIoU {ious['weighted_iou']:.2f}"
            f"{passing} (kept: epoch {self.best_epoch})",
            flush=True,
        )


def finetune(
    model,
    config: Mapping[str, Any],
    *,
    epochs: int,
    seed: int,
    reference: Mapping[str, Any] | None,
    verbose: int = 2,
) -> tuple[pd.DataFrame, int, float]:
    """Fine-tune ``model`` in place (the training's loss, class weighting and batches) and leave
    it at the kept epoch; returns the per-epoch history, the kept epoch (1-based) and seconds.

    ``reference`` (the original model's metrics) turns on the acceptance-aware choice of the kept
    epoch when ``pruning.acceptance.split`` is ``validation``.
    """
    from hsiseu.training import fit_with_checkpoint, split_dataset

    if epochs <= 0:
        return pd.DataFrame(), 0, 0.0
    t0 = time.perf_counter()
    tcfg = config["training"]
    acc = config["pruning"]["acceptance"]
    n_classes = int(config["model"]["n_classes"])
    val_ds = split_dataset(config, "validation")
    selective = reference is not None and acc["split"] == "validation"
    best = AcceptanceCheckpoint(
        val_ds, n_classes, tcfg["monitor"],
        reference=reference if selective else None, acceptance=acc if selective else None,
    )
    fit_with_checkpoint(
        model, best, split_dataset(config, "training", shuffle=True, seed=seed), val_ds,
        epochs=int(epochs), learning_rate=float(config["pruning"]["finetune"]["learning_rate"]),
        monitor=tcfg["monitor"], n_classes=n_classes, verbose=int(verbose),
        class_weighting=tcfg.get("class_weighting", "median_frequency"),
    )
    return pd.DataFrame(best.rows), int(best.best_epoch), time.perf_counter() - t0
