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
model's mean is the network unit's (every stored bit alike). The interval of a weighted mean is
the weighted mean of the interval ends: it holds whenever every unit's interval does.
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
    return pd.Series({k: float(np.average(group[k].to_numpy(dtype=np.float64), weights=w)) for k in _ESTIMATE})


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
