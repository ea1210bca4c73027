"""The workflow's quantize step for one activation function: convert, check, recover, evaluate.

The int8 model is scored with the same metrics as the float ones (``hsiseu.metrics``), plus its
agreement with the float model it came from: the percentage of pixels (all of them, labelled or
not) given the same class. Agreement isolates what quantization changed from what the float
model already got wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hsiseu import data as hdata
from hsiseu.evaluation import Predictor, keras_predictor
from hsiseu.io import atomic_path, write_json
from hsiseu.metrics import confusion_matrix, segmentation_report

log = logging.getLogger(__name__)

__all__ = ["RECOVERY_METHODS", "compare_predictors", "quantize_pruned"]

RECOVERY_METHODS = ("none", "bias_correction")


def compare_predictors(
    reference: Predictor, candidate: Predictor, batches, n_classes: int
) -> dict[str, Any]:
    """Confusion matrices of both predictors over one pass of ``batches``, and their agreement."""
    cms = [np.zeros((n_classes, n_classes), dtype=np.int64) for _ in range(2)]
    same = total = 0
    for x, y in batches:
        x, y = np.asarray(x), np.asarray(y)
        pr, pc = reference(x), candidate(x)
        cms[0] += confusion_matrix(y, pr, n_classes)
        cms[1] += confusion_matrix(y, pc, n_classes)
        same += int(np.count_nonzero(pr == pc))
        total += pr.size
    if total == 0:
        raise ValueError("no images to compare the predictors on")
    return {"reference_cm": cms[0], "candidate_cm": cms[1], "agreement": 100.0 * same / total}


def _report(cm: np.ndarray) -> dict[str, Any]:
    report = segmentation_report(cm, hdata.CLASS_NAMES)
    report["confusion_matrix"] = cm.tolist()
    return report


def _evaluate(model, content: bytes, config: Mapping[str, Any], splits, kernels: str) -> dict[str, Any]:
    from hsiseu.quantization.interpreter import make_interpreter, tflite_predictor
    from hsiseu.training import split_dataset

    n_classes = int(config["model"]["n_classes"])
    predict_q = tflite_predictor(make_interpreter(content, kernels=kernels))
    out: dict[str, Any] = {"float": {}, "int8": {}, "agreement": {}}
    for split in splits:
        res = compare_predictors(keras_predictor(model), predict_q, split_dataset(config, split), n_classes)
        out["float"][split] = _report(res["reference_cm"])
        out["int8"][split] = _report(res["candidate_cm"])
        out["agreement"][split] = res["agreement"]
    return out


def _drop(ev: Mapping[str, Any], split: str) -> float:
    return ev["float"][split]["global_iou"] - ev["int8"][split]["global_iou"]


def quantize_pruned(
    config: Mapping[str, Any],
    af: str,
    *,
    model_path: str | Path,
    out_model: str | Path,
    out_metrics: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Quantize one pruned Keras model to full int8, recover accuracy if configured, and record
    IoUs (int8 and float), agreement, the op list and the recovery outcome.

    Recovery runs when the validation Global IoU drops by more than ``recovery.min_drop`` points
    and its result is kept only if the validation agreement with the float model does not fall.
    """
    import keras

    from hsiseu.quantization.convert import convert_float, quantize_int8, representative_samples
    from hsiseu.quantization.graph import op_counts
    from hsiseu.quantization.recovery import bias_correction
    from hsiseu.runtime import configure_tensorflow

    from hsiseu.quantization.interpreter import check_kernels

    qcfg = config["quantization"]
    kernels = check_kernels(qcfg["kernels"])
    seed = int(config["seed"])
    configure_tensorflow(threads, seed)
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: pruned model missing")
    keras_bytes = model_path.stat().st_size
    model = keras.saving.load_model(model_path)
    samples = representative_samples(config, int(qcfg["representative_samples"]), seed)
    log.info("%s: quantizing with %d representative training images", af, len(samples))
    content = quantize_int8(model, samples)
    splits = ("validation", "test")
    ev = _evaluate(model, content, config, splits, kernels)
    log.info("%s int8 (%s kernels): test Global IoU %.2f (float %.2f), agreement %.3f %%", af, kernels,
             ev["int8"]["test"]["global_iou"], ev["float"]["test"]["global_iou"], ev["agreement"]["test"])

    rcfg = qcfg["recovery"]
    method = rcfg["method"]
    if method not in RECOVERY_METHODS:
        raise ValueError(f"quantization.recovery.method must be one of {RECOVERY_METHODS}, got {method!r}")
    recovery: dict[str, Any] = {"method": method, "min_drop": float(rcfg["min_drop"]), "applied": False,
                                "validation_drop": _drop(ev, "validation")}
    if method == "bias_correction" and recovery["validation_drop"] > recovery["min_drop"]:
        corrected, layers = bias_correction(convert_float(model), content, samples, kernels=kernels)
        ev2 = _evaluate(model, corrected, config, splits, kernels)
        # Bias correction's aim is to make the int8 model compute what the float one does, so it
        # is judged by agreement with the float model on validation: label-free and, on a small
        # split, far less noisy than a difference of two IoUs.
        keep = ev2["agreement"]["validation"] >= ev["agreement"]["validation"]
        recovery.update(
            applied=True,
            kept=keep,
            layers=layers,
            before={s: {k: ev["int8"][s][k] for k in ("global_iou", "weighted_iou")} | {"agreement": ev["agreement"][s]} for s in splits},
            after={s: {k: ev2["int8"][s][k] for k in ("global_iou", "weighted_iou")} | {"agreement": ev2["agreement"][s]} for s in splits},
        )
        log.info("%s: bias correction validation agreement %.3f -> %.3f %%, GIoU %.2f -> %.2f (%s)", af,
                 ev["agreement"]["validation"], ev2["agreement"]["validation"],
                 ev["int8"]["validation"]["global_iou"], ev2["int8"]["validation"]["global_iou"],
                 "kept" if keep else "discarded: no closer to float on validation")
        if keep:
            content, ev = corrected, ev2
    metrics = {
        "af": af,
        "stage": "quantized",
        "kernels": kernels,
        "representative_samples": len(samples),
        "ops": op_counts(content),
        "integer_only": True,  # quantize_int8 raises otherwise
        "tflite_bytes": len(content),
        "keras_bytes": keras_bytes,
        **{split: ev["int8"][split] for split in splits},
        "float": ev["float"],
        "agreement": ev["agreement"],
        "recovery": recovery,
    }
    with atomic_path(out_model) as tmp:
        tmp.write_bytes(content)
    write_json(out_metrics, metrics)
    return metrics
