"""Set and model means over bits, with intervals, from a campaign's cells table.

Why a mean over bits. The paper's "mean bit-flip error rate" of a set weighs every bit alike,
as for an upset that hits any bit of the set's storage with the same chance; the model's mean
weighs every (set, bit) cell alike.

Why from units, not cells. A cell that is its own population unit carries an estimate with the
guarantee; a cell inside a larger unit (a pooled mantissa, ``set``) carries only its share of
the unit's faults, possibly none, so it may be missing from the table. Each unit inside one set
therefore enters its set's mean with its own estimate (``unit_error_rate`` of ``cells.csv``),
weighted by the bits it spans (``unit_bits``): the pooled mantissa unit's mean is exactly the
mean of its bits' cell means, so the weighted sum is the set's mean over bits. A unit spanning
sets (``network``) says nothing per set: there the cells' own estimates are used, and the
model's mean is the network unit's (every stored bit alike).

The interval of a weighted mean. The units are sampled independently, so the weighted mean is a
stratified estimator: its standard error is sqrt(sum w_i^2 SE_i^2) / sum w_i, and each unit's
half-width h_i = t SE_i (its variance bound p* (1 - p*) in place of the variance, see
:mod:`~hsiseu.faults.stats.intervals`) gives the half-width sqrt(sum w_i^2 h_i^2) / sum w_i, with
the same normal-approximation meaning as a unit's. h_i is read back as the larger distance from
the unit's mean to an end (ends clipped at 0 or at the finite population's certain range only
shrink the side they clip, so this never understates it). The result is also clipped to the
weighted mean of the ends, which holds with certainty whenever every unit's interval does; that
bound alone would be far wider (over 1,500 cells at +- 10 points it stays near +- 10, where the
stratified one is near +- 10 / sqrt(1500)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["unit_table", "set_estimates", "model_estimate"]

_ESTIMATE = ("mean", "low", "high")


def unit_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, unit): set, order, bits (the weight) and mean / low / high (%).

    A table without unit columns (written before units existed) is its own: every cell a unit.
    A unit spanning several sets contributes each of its cells' own estimates instead."""
    cell_estimates = pd.DataFrame({
        "set": cells["set"], "order": cells["order"], "unit": cells["set"] + ":" + cells["bit"].astype(str),
        "bits": 1, "mean": cells["error_rate"],
        "low": cells.get("error_rate_low", cells["error_rate"] * np.nan),
        "high": cells.get("error_rate_high", cells["error_rate"] * np.nan)})
    if "unit" not in cells:
        return cell_estimates.reset_index(drop=True)
    spans = cells.groupby("unit")["set"].nunique()
    own = cells["unit"].map(spans).to_numpy() == 1
    pooled = pd.DataFrame({
        "set": cells["set"], "order": cells["order"], "unit": cells["unit"], "bits": cells["unit_bits"],
        "mean": cells["unit_error_rate"], "low": cells["unit_error_rate_low"], "high": cells["unit_error_rate_high"],
    })[own].drop_duplicates(["set", "unit"])
    return pd.concat([pooled, cell_estimates[~own]], ignore_index=True)


def _weighted(group: pd.DataFrame) -> pd.Series:
    w = group["bits"].to_numpy(dtype=np.float64)
    mean, low, high = (group[k].to_numpy(dtype=np.float64) for k in _ESTIMATE)
    m = float(np.average(mean, weights=w))
    if np.isnan(low).any() or np.isnan(high).any():  # a table without intervals
        return pd.Series({"mean": m, "low": np.nan, "high": np.nan})
    half = np.maximum(high - mean, mean - low)
    h = float(np.sqrt(np.sum((w * half) ** 2)) / np.sum(w))
    return pd.Series({"mean": m, "low": max(m - h, float(np.average(low, weights=w)), 0.0),
                      "high": min(m + h, float(np.average(high, weights=w)), 100.0)})


def set_estimates(cells: pd.DataFrame) -> pd.DataFrame:
    """Per set, in graph order: its mean over bits and the interval (``mean``, ``low``,
    ``high``, %)."""
    units = unit_table(cells)
    order = units.drop_duplicates("set").sort_values("order")["set"].tolist()
    rows = {name: _weighted(group) for name, group in units.groupby("set", sort=False)}
    return pd.DataFrame.from_dict(rows, orient="index").loc[order, list(_ESTIMATE)]


def model_estimate(cells: pd.DataFrame) -> dict[str, float]:
    """The model's mean over (set, bit) cells and its interval (%): every unit weighted by its
    bits; a network unit's own estimate."""
    if "unit" in cells and cells["unit"].nunique() == 1 and cells["set"].nunique() > 1:
        row = cells.iloc[0]
        return {"mean": float(row["unit_error_rate"]), "low": float(row["unit_error_rate_low"]),
                "high": float(row["unit_error_rate_high"])}
    return dict(_weighted(unit_table(cells)))
