"""Sensitivity analysis: each prunable layer pruned alone, the rest untouched, no fine-tuning.

This is Vitis AI's ``ana`` step as the paper describes it (sparsities 0.1 .. 0.9 in steps of 0.1,
"while the rest of the model remains frozen"). Each point masks the L1-smallest channels of one
group (:func:`hsiseu.pruning.surgery.masked`) and scores the model on the validation split; the
curves are written once per iteration and reused by the ratio search and by any backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import pandas as pd
from tqdm import tqdm

from hsiseu.evaluation import compiled_predictor, confusion_over
from hsiseu.io import atomic_path
from hsiseu.metrics import global_iou, weighted_iou
from hsiseu.pruning.groups import Group, prunable_groups
from hsiseu.pruning.surgery import channels_to_remove, masked, n_removed

__all__ = ["METRICS", "SENSITIVITY_COLUMNS", "run_sensitivity", "sensitivity_curves", "validation_scorer"]

log = logging.getLogger(__name__)

METRICS: dict[str, Callable] = {"global_iou": global_iou, "weighted_iou": weighted_iou}
SENSITIVITY_COLUMNS = ["layer", "channels", "sparsity", "removed", "metric", "value", "baseline", "drop"]

Scorer = Callable[[keras.Model], float]


def validation_scorer(config: Mapping[str, Any], metric: str) -> Scorer:
    """Metric (in %) of a model on the validation split, the split cached in memory after the
    first pass because it is read hundreds of times. The scorer's ``last`` attribute holds every
    metric of the latest call (both IoUs are recorded, only ``metric`` steers the ratios)."""
    from hsiseu.training import split_dataset

    if metric not in METRICS:
        raise ValueError(f"pruning.metric must be one of {sorted(METRICS)}, got {metric!r}")
    ds = split_dataset(config, "validation").cache()
    n_classes = int(config["model"]["n_classes"])
    predictors: dict[int, tuple[keras.Model, Callable]] = {}

    def score(model: keras.Model) -> float:
        if id(model) not in predictors:
            predictors[id(model)] = (model, compiled_predictor(model))
        cm = confusion_over(predictors[id(model)][1], ds, n_classes)
        score.last = {name: 100.0 * float(fn(cm)) for name, fn in METRICS.items()}
        return score.last[metric]

    score.last = {}
    return score


def sensitivity_curves(
    model: keras.Model,
    groups: Sequence[Group],
    score: Scorer,
    sparsities: Sequence[float],
    metric: str = "metric",
) -> pd.DataFrame:
    """One row per (layer, sparsity): the score with that layer's L1-smallest channels masked.

    Sparsities that remove the same number of channels share one evaluation. ``drop`` is the
    baseline minus the value, in metric points (positive = worse). Columns are
    ``SENSITIVITY_COLUMNS`` plus, for a :func:`validation_scorer`, one per metric of ``METRICS``.
    """
    if not sparsities or any(not 0 < s < 1 for s in sparsities):
        raise ValueError(f"sparsities must be in (0, 1), got {list(sparsities)!r}")
    baseline = score(model)
    extra = lambda: dict(getattr(score, "last", {}))  # noqa: E731 - every metric, if the scorer has them
    base_extra = extra()
    rows = []
    for group in tqdm(groups, desc="sensitivity", unit="layer", leave=False):
        by_count: dict[int, tuple[float, dict]] = {0: (baseline, base_extra)}
        for s in sorted(sparsities):
            n = n_removed(s, group.channels)
            if n not in by_count:
                removal = {group.producer: channels_to_remove(model, group, n)}
                with masked(model, groups, removal):
                    by_count[n] = (score(model), extra())
            value, others = by_count[n]
            rows.append(
                {"layer": group.producer, "channels": group.channels, "sparsity": float(s), "removed": n,
                 "metric": metric, "value": value, "baseline": baseline, "drop": baseline - value, **others}
            )
    return pd.DataFrame(rows)


def run_sensitivity(
    config: Mapping[str, Any],
    af: str,
    *,
    model_path: str | Path,
    out_csv: str | Path,
    threads: int | None = None,
) -> pd.DataFrame:
    """Sensitivity curves of the model at ``model_path`` on the configured validation metric."""
    from hsiseu.runtime import configure_tensorflow

    configure_tensorflow(threads, int(config["seed"]))
    pcfg = config["pruning"]
    model = keras.saving.load_model(model_path)
    groups = prunable_groups(model)
    log.info("%s: %d prunable layers in %s", af, len(groups), model_path)
    t0 = time.perf_counter()
    curves = sensitivity_curves(
        model, groups, validation_scorer(config, pcfg["metric"]), pcfg["sparsities"], metric=pcfg["metric"]
    )
    log.info("%s: sensitivity analysis took %.1f s", af, time.perf_counter() - t0)
    with atomic_path(out_csv) as tmp:
        curves.to_csv(tmp, index=False)
    return curves
