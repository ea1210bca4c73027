"""What one fault did to the predictions, computed the same way for every backend and engine.

Predicted class of a pixel (:func:`classes_from_scores`): the arg-max of the model output over
the classes, ties to the lowest class, +inf larger than any finite score; **a pixel with a NaN
in any class is given the extra class ``n_classes``** (it has no meaningful arg-max, and the
fault-free model never outputs NaN, so such a pixel always counts as changed). Both engines call
this one function on their final outputs, so their class maps cannot disagree on NaN/inf.

Per fault: ``error_rate`` = % of test pixels whose class differs from the fault-free model's
(the paper's error), ``error_rate_labelled`` = the same over labelled pixels only, ``changed`` =
any pixel changed, ``nonfinite`` = NaN or inf anywhere in the model output, ``original`` and
``faulty`` = the stored value before and after the flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prediction", "classes_from_scores", "OUTCOME_COLUMNS", "outcome_of"]

OUTCOME_COLUMNS = (
    "fault", "set", "kind", "layer", "bit", "index", "original", "faulty",
    "error_rate", "error_rate_labelled", "changed", "nonfinite",
)


def classes_from_scores(scores: np.ndarray) -> np.ndarray:
    """Class map (..., ) uint8 from scores (..., n_classes) with the NaN rule above."""
    scores = np.asarray(scores)
    n_classes = scores.shape[-1]
    if n_classes + 1 > 256:
        raise ValueError(f"{n_classes} classes (+1 for NaN) do not fit in uint8")
    classes = np.argmax(scores, axis=-1).astype(np.uint8)
    if scores.dtype.kind == "f":
        nan_pixel = np.isnan(scores).any(axis=-1)
        classes[nan_pixel] = n_classes
    return classes


@dataclass(frozen=True)
class Prediction:
    """A backend's answer for one fault: its class map, or ``None`` when the engine proved the
    output identical to the fault-free one, and whether the output held NaN or inf."""

    classes: np.ndarray | None
    nonfinite: bool


def outcome_of(golden: np.ndarray, prediction: Prediction, labelled: np.ndarray) -> dict[str, float | bool]:
    """Error measures of one fault against the fault-free class map ``golden``; ``labelled``
    is the boolean mask of pixels with a ground-truth label."""
    if prediction.classes is None:
        return {"error_rate": 0.0, "error_rate_labelled": 0.0, "changed": False,
                "nonfinite": bool(prediction.nonfinite)}
    if prediction.classes.shape != golden.shape:
        raise ValueError(f"class map shape {prediction.classes.shape} != fault-free {golden.shape}")
    diff = prediction.classes != golden
    n_lab = int(labelled.sum())
    return {
        "error_rate": 100.0 * float(diff.mean()),
        "error_rate_labelled": 100.0 * float(diff[labelled].sum()) / n_lab if n_lab else float("nan"),
        "changed": bool(diff.any()),
        "nonfinite": bool(prediction.nonfinite),
    }
