"""Segmentation metrics over labelled pixels, from a confusion matrix.

Pixels whose ground-truth label is ``IGNORE`` (255: HSI-Drive's "unlabelled" after
class grouping) are left out of every metric.

Definitions, checked against the paper's Table I wording:

- **Global IoU** is the *micro-averaged* IoU, ``sum_c TP_c / sum_c (TP_c + FP_c + FN_c)``.
  It is not the (unweighted) mean of the per-class IoUs: for ReLU the paper's "Global" is
  94.71 while the mean of its five per-class IoUs is 90.2. A pixel-pooled ratio is dominated by
  the big classes (road, vegetation, sky), which score highest, and so lands above the class
  mean, as the paper's does; "global" also reads naturally as "over all pixels". For single-label segmentation every mislabelled pixel is one FP (of the
  predicted class) and one FN (of the true class), so with N pixels and pixel accuracy
  ``a = sum TP / N`` it equals ``a N / (2N - a N) = a / (2 - a)``.
- **Weighted IoU** follows the paper's "weighting each class by the inverse of its frequency
  in the dataset": ``sum_c w_c IoU_c`` with ``w_c ∝ 1 / f_c`` over the classes present
  (``f_c > 0``), normalised to sum to 1. Rare classes (road marks) therefore dominate it,
  which is why it sits below the Global IoU in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "IGNORE",
    "confusion_matrix",
    "global_iou",
    "iou_per_class",
    "segmentation_report",
    "weighted_iou",
]

IGNORE = 255


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, ignore: int = IGNORE
) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts, rows = true class, columns = predicted.

    Pixels with ``y_true == ignore`` are dropped. Any other value outside
    ``[0, n_classes)`` is an error rather than silently binned, because it means
    labels and model disagree on the class set.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes!r}")
    keep = y_true != ignore
    t = y_true[keep].astype(np.int64, copy=False).ravel()
    p = y_pred[keep].astype(np.int64, copy=False).ravel()
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            bad = arr[(arr < 0) | (arr >= n_classes)]
            raise ValueError(
                f"{name} has values outside [0, {n_classes}) on labelled pixels "
                f"(e.g. {int(bad[0])}); ignore label is {ignore}"
            )
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64, copy=False)


def _check_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square 2-D, got shape {cm.shape}")
    return cm.astype(np.float64)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU_c = TP / (TP + FP + FN); NaN for a class neither present nor predicted."""
    cm = _check_cm(cm)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)


def global_iou(cm: np.ndarray) -> float:
    """Micro-averaged IoU (see module docstring for why not a class mean); NaN if empty."""
    cm = _check_cm(cm)
    tp = np.diag(cm)
    denom = float((cm.sum(axis=0) + cm.sum(axis=1) - tp).sum())
    return float(tp.sum() / denom) if denom > 0 else math.nan


def weighted_iou(cm: np.ndarray, frequencies: Sequence[float] | np.ndarray | None = None) -> float:
    """Inverse-frequency weighted mean of the class IoUs.

    ``frequencies`` (counts or fractions, any scale) lets the weights come from the
    whole dataset, as in the paper; by default they are the ground-truth pixel
    counts of ``cm``. Classes with zero frequency, or with undefined IoU in ``cm``,
    get no weight and the rest are renormalised. NaN if no class qualifies.
    """
    cm = _check_cm(cm)
    f = cm.sum(axis=1) if frequencies is None else np.asarray(frequencies, dtype=np.float64)
    if f.shape != (cm.shape[0],):
        raise ValueError(f"frequencies must have shape ({cm.shape[0]},), got {f.shape}")
    if np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ValueError("frequencies must be finite and non-negative")
    iou = iou_per_class(cm)
    use = (f > 0) & np.isfinite(iou)
    if not use.any():
        return math.nan
    w = 1.0 / f[use]
    w /= w.sum()
    return float((w * iou[use]).sum())


def _pct(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else 100.0 * value


def segmentation_report(cm: np.ndarray, class_names: Sequence[str]) -> dict:
    """All metrics as JSON-ready percentages (0-100); undefined ones are ``None``."""
    cmf = _check_cm(cm)
    if len(class_names) != cmf.shape[0]:
        raise ValueError(
            f"{len(class_names)} class names for a {cmf.shape[0]}-class confusion matrix"
        )
    iou = iou_per_class(cmf)
    total = float(cmf.sum())
    defined = iou[np.isfinite(iou)]
    return {
        "per_class_iou": {str(n): _pct(v) for n, v in zip(class_names, iou)},
        "global_iou": _pct(global_iou(cmf)),
        "weighted_iou": _pct(weighted_iou(cmf)),
        "mean_iou": _pct(defined.mean()) if defined.size else None,
        "pixel_accuracy": _pct(np.trace(cmf) / total) if total > 0 else None,
        "pixels": int(np.asarray(cm).sum()),
    }
