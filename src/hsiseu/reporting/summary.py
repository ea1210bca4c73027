"""Small headline numbers per model, as flat JSON: what `dvc metrics show` and `dvc exp show`
compare across runs. The full reports stay in results/; these are the columns people scan."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from hsiseu.faults.stats.aggregate import model_estimate
from hsiseu.io import read_json


def iou_summary(metrics_paths: Mapping[tuple[str, str], str | os.PathLike[str]], split: str = "test") -> dict:
    """{af: {stage: {global_iou, weighted_iou}}} from the per-model metrics files."""
    out: dict = {}
    for (af, stage), path in metrics_paths.items():
        report = read_json(path)[split]
        out.setdefault(af, {})[stage] = {
            "global_iou": round(float(report["global_iou"]), 4),
            "weighted_iou": round(float(report["weighted_iou"]), 4),
        }
    return out


def fault_summary(cells_paths: Mapping[tuple[str, str], str | os.PathLike[str]]) -> dict:
    """{af: {stage: {mean_error_rate, its interval, worst_cell_error_rate, faults, cells}}}: every
    (set, bit) cell weighs the same, as in the paper's mean bit-flip error rate; the interval is
    the stratified one over the population units (:func:`hsiseu.faults.stats.aggregate.model_estimate`)."""
    out: dict = {}
    for (af, stage), path in cells_paths.items():
        cells = pd.read_csv(path)
        estimate = model_estimate(cells)
        out.setdefault(af, {})[stage] = {
            "mean_error_rate": round(estimate["mean"], 6),
            "mean_error_rate_low": round(estimate["low"], 6),
            "mean_error_rate_high": round(estimate["high"], 6),
            "cells": int(len(cells)),
            "worst_cell_error_rate": round(float(cells["error_rate"].max()), 6),
            "faults": int(cells["n"].sum()),
        }
    return out
