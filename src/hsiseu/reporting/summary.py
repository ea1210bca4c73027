"""Small headline numbers per model, as flat JSON: what `dvc metrics show` and `dvc exp show`
compare across runs. The full reports stay in results/; these are the columns people scan.

Models are keyed ``(af, rep, stage)`` (replicate ``rep`` of the AF's chain) and nested
``{af: {rep<r>: {stage: {...}}}}``; ``(af, stage)`` keys (one model per AF) nest
``{af: {stage: {...}}}``. The error rates are named by the statistic they are
(:data:`hsiseu.faults.stats.aggregate.STATISTICS`): ``set_mean`` (the mean over parameter sets,
the figures' legend) and ``network_rate`` (a random bit flip anywhere in parameter memory), each
with its interval over the model's fault sample (not over replicates: that is the findings
table's).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hsiseu.faults.stats.aggregate import STATISTICS
from hsiseu.io import read_json

__all__ = ["MODEL_STATISTICS", "fault_summary", "iou_summary", "model_fault_summary", "rep_key"]

#: the model-level statistics every fault summary reports, in this order.
MODEL_STATISTICS = ("set_mean", "network_rate")


def rep_key(rep: Any) -> str:
    """``rep<r>``: the JSON key of replicate ``r`` (an int, or already ``rep<r>``)."""
    text = str(rep)
    return text if text.startswith("rep") else f"rep{int(text)}"


def _slot(out: dict, key: Sequence[Any]) -> dict:
    """The dict where model ``key`` ((af, stage) or (af, rep, stage)) goes."""
    if len(key) == 2:
        af, stage = key
        return out.setdefault(str(af), {}).setdefault(str(stage), {})
    if len(key) == 3:
        af, rep, stage = key
        return out.setdefault(str(af), {}).setdefault(rep_key(rep), {}).setdefault(str(stage), {})
    raise ValueError(f"a model key is (af, stage) or (af, rep, stage), got {tuple(key)!r}")


def iou_summary(metrics_paths: Mapping[tuple, str | os.PathLike[str]], split: str = "test") -> dict:
    """{af: {rep<r>: {stage: {global_iou, weighted_iou}}}} (or {af: {stage: ...}} for (af, stage)
    keys) from the per-model metrics files."""
    out: dict = {}
    for key, path in metrics_paths.items():
        report = read_json(path)[split]
        _slot(out, key).update({
            "global_iou": round(float(report["global_iou"]), 4),
            "weighted_iou": round(float(report["weighted_iou"]), 4),
        })
    return out


def _number(x: float) -> float | None:
    """Rounded for the JSON; None where undefined (JSON has no NaN)."""
    return None if math.isnan(float(x)) else round(float(x), 6)


def model_fault_summary(cells: pd.DataFrame) -> dict[str, float | int | None]:
    """One model's headline: each of :data:`MODEL_STATISTICS` with ``_low``/``_high`` (its
    stratified interval over the fault sample, %), the faults injected, cells and the worst
    cell's error rate."""
    row: dict[str, float | int | None] = {}
    for name in MODEL_STATISTICS:
        estimate = STATISTICS[name].function(cells)
        row.update({name: _number(estimate["mean"]), f"{name}_low": _number(estimate["low"]),
                    f"{name}_high": _number(estimate["high"])})
    row.update({"faults": int(cells["n"].sum()), "cells": int(len(cells)),
                "worst_cell_error_rate": round(float(cells["error_rate"].max()), 6)})
    return row


def fault_summary(cells_paths: Mapping[tuple, str | os.PathLike[str]]) -> dict:
    """{af: {rep<r>: {stage: {set_mean, network_rate (each with _low, _high), faults, cells,
    worst_cell_error_rate}}}} from the campaigns' cells.csv ((af, stage) keys: {af: {stage: ...}}).

    ``set_mean`` is the mean over parameter sets (Figs. 3, 5, 8's legend), ``network_rate`` the
    error rate of one random bit flip in the model's parameter memory: both from
    :mod:`hsiseu.faults.stats.aggregate`, whose intervals cover one model's fault sampling."""
    out: dict = {}
    for key, path in cells_paths.items():
        _slot(out, key).update(model_fault_summary(pd.read_csv(path)))
    return out
