"""How a replicated answer's uncertainty splits between models and faults: the budget question.

Why. A claim's interval is a t interval over R replicates of per-replicate estimates, whose
variance is Var(D) + E[Var(e | D)]: the spread between trained models plus each model's
fault-sampling variance (docs/statistics.md). The second term shrinks as 1/n with the faults per
model, the first only with more models. So the split says where a run's time should go: when
models differ more than their fault samples do, fewer faults per model and more replicates give
a tighter answer for the same cost.

The components are estimated per model-level statistic from the replicates' ``cells.csv``: the
within-model variance of a replicate is the stratified estimator's sampling variance from each
cell's *sample* standard deviation, sum w_c^2 s_c^2 / n_c (1 - n_c / N_c) / (sum w_c)^2 (cells as
strata, the weights of :mod:`hsiseu.faults.stats.aggregate`); the between-model variance is the
replicates' sample variance minus the mean within variance (the method-of-moments split of a
two-stage sample; floored at 0). Not the reported intervals' half-widths: those rest on a
variance *bound* (p* (1 - p*), guaranteed but far above the sample variance of the skewed,
mostly-zero outcomes), which would make every replicate look noisier than it is.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hsiseu.faults.stats.aggregate import STATISTICS
from hsiseu.reporting.summary import MODEL_STATISTICS

__all__ = ["cells_paths", "estimates_from_cells", "variance_components", "main"]


def _within_variance(cells: pd.DataFrame, statistic: str) -> float:
    """Sampling variance (points^2) of ``statistic`` of one model, cells as strata."""
    n = cells["n"].to_numpy(dtype=np.float64)
    big_n = cells["population"].to_numpy(dtype=np.float64)
    sd = np.nan_to_num(cells["error_rate_std"].to_numpy(dtype=np.float64))
    if statistic == "set_mean":
        bits = cells.groupby("set")["bit"].transform("size").to_numpy(dtype=np.float64)
        w = 1.0 / bits
    elif statistic == "network_rate":
        w = big_n.copy()
    else:
        raise ValueError(f"no within-model variance for {statistic!r}: one of {MODEL_STATISTICS}")
    fpc = np.clip(1.0 - n / big_n, 0.0, 1.0)
    return float(np.sum(w**2 * sd**2 / n * fpc) / np.sum(w) ** 2)


def estimates_from_cells(paths: Mapping[tuple[str, int, str], str | os.PathLike[str]]) -> pd.DataFrame:
    """Long table (af, stage, statistic, rep, mean, within_var) from each model's cells.csv."""
    rows = []
    for (af, rep, stage), path in paths.items():
        cells = pd.read_csv(path)
        for name in MODEL_STATISTICS:
            rows.append({"af": af, "stage": stage, "statistic": name, "rep": int(rep),
                         "mean": float(STATISTICS[name].function(cells)["mean"]),
                         "within_var": _within_variance(cells, name)})
    return pd.DataFrame(rows)


def cells_paths(results: str | os.PathLike[str]) -> dict[tuple[str, int, str], Path]:
    """``{(af, rep, stage): cells.csv}`` of a run's ``results/`` folder."""
    found = {}
    for path in sorted(Path(results).glob("*/rep*/*/faults/cells.csv")):
        stage, rep, af = path.parts[-3], path.parts[-4], path.parts[-5]
        found[(af, int(rep[3:]), stage)] = path
    if not found:
        raise ValueError(f"{results}: no */rep*/*/faults/cells.csv (run the pipeline first)")
    return found


def variance_components(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per (af, stage, statistic): R, the mean over replicates, the between-model and the
    within-model standard deviation (points) and the within share of one replicate's variance."""
    rows = []
    for (af, stage, name), group in estimates.groupby(["af", "stage", "statistic"], sort=False):
        mean = group["mean"].to_numpy(dtype=np.float64)
        within = float(group["within_var"].mean())
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
                    "within-model (fault sampling) part, from a run's results/<af>/rep<r>/<stage>/faults/cells.csv.")
    parser.add_argument("results", nargs="?", default="results", help="the run's results folder (default: %(default)s)")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    try:
        paths = cells_paths(args.results)
    except ValueError as err:
        parser.error(str(err))
    table = variance_components(estimates_from_cells(paths))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.round(4).to_string(index=False))
    print(f"\nmedian within share: {table['within_share'].median():.3f} (below ~0.2: the models differ more than their "
          "fault samples; fewer faults per model and more replicates tighten the findings)")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0
