"""How a replicated answer's uncertainty splits between models and faults: the budget question.

Why. A claim's interval is a t interval over R replicates of per-replicate estimates, whose
variance is Var(D) + E[Var(e | D)]: the spread between trained models plus each model's
fault-sampling variance (docs/statistics.md). The second term shrinks as 1/n with the faults per
model, the first only with more models. So the split says where a run's time should go: when
models differ more than their fault samples do, fewer faults per model and more replicates give
a tighter answer for the same cost.

The components are estimated per model-level statistic from ``fault_error_rates.json``
(:func:`hsiseu.reporting.summary.fault_summary`): the within-model variance of a replicate is
its stratified interval's half-width over the normal quantile, squared; the between-model
variance is the replicates' sample variance minus the mean within variance (the usual
method-of-moments split of a two-stage sample; floored at 0, where the replicates agree more
closely than their fault samples could show).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from hsiseu.io import read_json
from hsiseu.reporting.summary import MODEL_STATISTICS

__all__ = ["estimates_from_summary", "variance_components", "main"]


def estimates_from_summary(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Long table (af, stage, statistic, rep, mean, low, high) from ``fault_error_rates.json``."""
    rows = []
    for af, reps in read_json(path).items():
        for rep, stages in reps.items():
            if not str(rep).startswith("rep"):
                raise ValueError(f"{path}: {af} has no replicates ({rep!r}): components need the (af, rep, stage) form")
            for stage, record in stages.items():
                for name in MODEL_STATISTICS:
                    rows.append({"af": af, "stage": stage, "statistic": name, "rep": int(str(rep)[3:]),
                                 "mean": record[name], "low": record[f"{name}_low"], "high": record[f"{name}_high"]})
    return pd.DataFrame(rows)


def variance_components(estimates: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (af, stage, statistic): R, the mean over replicates, the between-model and the
    within-model standard deviation (points) and the within share of one replicate's variance.

    ``confidence`` is the level of the replicates' own intervals (``faults.sampling.confidence``),
    which turns a half-width back into a standard error."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    rows = []
    for (af, stage, name), group in estimates.groupby(["af", "stage", "statistic"], sort=False):
        mean = group["mean"].to_numpy(dtype=np.float64)
        half = np.maximum(group["high"] - group["mean"], group["mean"] - group["low"]).to_numpy(dtype=np.float64)
        within = float(np.mean((half / z) ** 2))
        total = float(mean.var(ddof=1)) if len(mean) > 1 else math.nan
        between = max(total - within, 0.0) if not math.isnan(total) else math.nan
        rows.append({"af": af, "stage": stage, "statistic": name, "replicates": len(mean),
                     "mean": float(mean.mean()), "between_sd": math.sqrt(between) if not math.isnan(between) else math.nan,
                     "within_sd": math.sqrt(within),
                     "within_share": within / (between + within) if not math.isnan(between) and between + within > 0
                     else math.nan})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hsiseu findings-variance",
        description="Split each model-level error rate's variance over replicates into the between-model and the "
                    "within-model (fault sampling) part, from a run's reports/metrics/fault_error_rates.json.")
    parser.add_argument("summary", nargs="?", default="reports/metrics/fault_error_rates.json",
                        help="fault_error_rates.json of a run with replicates (default: %(default)s)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="level of the models' own intervals, faults.sampling.confidence (default 0.95)")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if not os.path.exists(args.summary):
        parser.error(f"{args.summary} does not exist: run the pipeline first (snakemake reports/metrics/fault_error_rates.json)")
    table = variance_components(estimates_from_summary(args.summary), args.confidence)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.round(4).to_string(index=False))
    print(f"\nmedian within share: {table['within_share'].median():.3f} (below ~0.2: the models differ more than their "
          "fault samples; fewer faults per model and more replicates tighten the findings)")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0
