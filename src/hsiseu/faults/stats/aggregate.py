"""A model's error rate, with one meaning per name, from a campaign's cells table.

"A model's mean error rate" can mean several things; each is a weighted mean of the same
population units' estimates, and each has its own name here, used in every figure, table, JSON
and caption (:data:`STATISTICS`, name -> label and function):

- ``per_set_mean``: a parameter set's mean over its bits, as for an upset that hits any bit of
  the set's storage with the same chance (one row per set; Figs. 3, 5, 8's bars);
- ``set_mean``: the *mean over parameter sets* of the per-set means: every set weighs the same
  and, within a set, every bit (the paper's Figs. 3, 5, 8 legend and their "mean" bar);
- ``network_rate``: the *network-wise rate*, the error rate of one random bit flip anywhere in
  the model's parameter memory: every stored bit alike, so a set weighs its size x bits. This
  is the rate a soft error in the deployed model's parameters actually has (the paper's
  conclusion that quantization lowers the error rate is about it).

Both model-level statistics take ``bits`` and ``kinds`` to restrict them (the network-wise rate
of a flip in bit 30, the mean over the gamma sets, ...): the findings' claims need those. The
old "mean over (set, bit) cells" weighs a set by how many bits it has and by nothing else; it is
no question anybody asks and is kept only as :func:`cell_mean` (explicitly named, not reported).

Why from units, not cells. A cell that is its own population unit carries an estimate with the
guarantee; a cell inside a larger unit (a pooled mantissa, ``set``) carries only its share of
the unit's faults, possibly none, so it may be missing from the table. Each unit inside one set
therefore enters with its own estimate (``unit_error_rate`` of ``cells.csv``), weighted by the
bits it spans (``unit_bits``): the pooled mantissa unit's mean is exactly the mean of its bits'
cell means. A unit that a restriction cuts (bit 22 of a pooled mantissa, one bit of a ``set``
unit) or that spans several sets (``network``, for anything per set) says nothing about the
part asked for: there the cells' own estimates are used (their p* intervals on their own faults;
a cell that drew no fault is absent and its weight is left out). A ``network`` unit is the
unrestricted network-wise rate itself.

The interval of a weighted mean. The units are sampled independently, so a weighted mean of
their estimates is a stratified estimator: with weights w_i its standard error is
sqrt(sum w_i^2 SE_i^2) / sum w_i, and each unit's half-width h_i = t SE_i (its variance bound
p* (1 - p*) in place of the variance, see :mod:`~hsiseu.faults.stats.intervals`) gives the
half-width sqrt(sum w_i^2 h_i^2) / sum w_i, with the same normal-approximation meaning as a
unit's. h_i is read back as the larger distance from the unit's mean to an end (ends clipped at 0
or at the finite population's certain range only shrink the side they clip, so this never
understates it). The result is also clipped to the weighted mean of the ends, which holds with
certainty whenever every unit's interval does; that bound alone would be far wider (over 1,500
cells at +- 10 points it stays near +- 10, where the stratified one is near +- 10 / sqrt(1500)).
The three statistics differ only in their weights:

==============  =========================================  =======================
statistic       weight of a unit u in set s                 normalised over
==============  =========================================  =======================
per_set_mean    bits(u)                                     the units of set s
set_mean        bits(u) / bits(s)                           all units (sum = sets)
network_rate    size(s) x bits(u)                           all units
==============  =========================================  =======================

These intervals cover the fault sampling of *one* trained model. A claim about AFs needs the
interval over replicates (:mod:`hsiseu.findings.replicates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["STATISTICS", "Statistic", "unit_table", "strata", "per_set_mean", "set_mean", "network_rate",
           "set_estimates", "cell_mean"]

_ESTIMATE = ("mean", "low", "high")
#: the bits of a binary32 mantissa: a pooled ``<set>:mantissa`` unit spans (a subset of) them.
FLOAT32_MANTISSA = frozenset(range(23))


def unit_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, unit): set, order, bits (the weight) and mean / low / high (%).

    A table without unit columns (written before units existed) is its own: every cell a unit.
    A unit spanning several sets contributes each of its cells' own estimates instead. (The
    per-set view of :func:`strata` without a restriction.)"""
    return strata(cells, per_set=True)[["set", "order", "unit", "bits", *_ESTIMATE]]


def _cell_rows(cells: pd.DataFrame) -> pd.DataFrame:
    nan = cells["error_rate"] * np.nan
    return pd.DataFrame({
        "set": cells["set"], "order": cells["order"], "kind": cells.get("kind", nan.astype(object)),
        "size": cells.get("population", nan), "unit": cells["set"] + ":" + cells["bit"].astype(str),
        "bits": 1, "mean": cells["error_rate"],
        "low": cells.get("error_rate_low", nan), "high": cells.get("error_rate_high", nan)})


def strata(cells: pd.DataFrame, *, bits: Iterable[int] | None = None, kinds: Iterable[str] | None = None,
           per_set: bool = False) -> pd.DataFrame:
    """The independent estimates a restricted statistic combines, one row per stratum: set,
    order, kind, size (the set's number of values), unit, bits (spanned), mean / low / high (%).

    A unit is one stratum when every bit it spans is in ``bits`` (all when None), its sets are
    of ``kinds`` (all when None) and, with ``per_set``, it lies in one set; otherwise its cells
    inside the restriction are strata of one bit each (module docstring). The bits a unit spans
    are its cells' when all its (set, bit) cells are present (``unit_bits`` of them); a pooled
    ``<set>:mantissa`` unit with absent cells spans mantissa bits only; any other unit with
    absent cells counts as cut by a bit restriction. A unit spanning sets has set ``*``, kind
    ``*`` and size = the sum of its sets' sizes."""
    cell_rows = _cell_rows(cells)
    keep = np.ones(len(cells), dtype=bool)
    wanted = None if bits is None else frozenset(int(b) for b in bits)
    if wanted is not None:
        keep &= cells["bit"].astype(int).isin(wanted).to_numpy()
    if kinds is not None:
        if "kind" not in cells:
            raise ValueError("restricting to kinds needs the cells table's kind column")
        keep &= cells["kind"].isin(set(kinds)).to_numpy()
    if "unit" not in cells:
        return cell_rows[keep].reset_index(drop=True)
    bit_ok = (np.ones(len(cells), dtype=bool) if wanted is None
              else cells["bit"].astype(int).isin(wanted).to_numpy())
    kind_ok = np.ones(len(cells), dtype=bool) if kinds is None else cells["kind"].isin(set(kinds)).to_numpy()
    frame = cells.assign(_bit_ok=bit_ok, _kind_ok=kind_ok)
    info = frame.groupby("unit", sort=False).agg(
        cells=("bit", "size"), sets=("set", "nunique"), unit_bits=("unit_bits", "first"),
        bit_ok=("_bit_ok", "all"), kind_ok=("_kind_ok", "all"), order=("order", "min"))
    complete = info["cells"].to_numpy() == info["unit_bits"].to_numpy()
    mantissa = info.index.to_series().astype(str).str.endswith(":mantissa").to_numpy()
    if wanted is None:
        span_in = np.ones(len(info), dtype=bool)
    else:
        span_in = info["bit_ok"].to_numpy() & (complete | (mantissa & FLOAT32_MANTISSA.issubset(wanted)))
    inside = span_in & info["kind_ok"].to_numpy()
    spans_sets = info["sets"].to_numpy() > 1
    if per_set:
        inside &= ~spans_sets
    whole = cells["unit"].map(pd.Series(inside, index=info.index)).to_numpy(dtype=bool)
    first = cells[whole].drop_duplicates("unit").set_index("unit")
    sizes = cells[whole].drop_duplicates(["unit", "set"]).groupby("unit")["population"].sum() \
        if "population" in cells else pd.Series(np.nan, index=first.index)
    multi = pd.Series(spans_sets, index=info.index).reindex(first.index).to_numpy(dtype=bool)
    units = pd.DataFrame({
        "set": np.where(multi, "*", first["set"].to_numpy(dtype=object)),
        "order": info["order"].reindex(first.index).to_numpy(),
        "kind": np.where(multi, "*", first["kind"].to_numpy(dtype=object)) if "kind" in first
        else np.full(len(first), np.nan, dtype=object),
        "size": sizes.reindex(first.index).to_numpy(dtype=np.float64),
        "unit": first.index.to_numpy(dtype=object), "bits": first["unit_bits"].to_numpy(),
        "mean": first["unit_error_rate"].to_numpy(dtype=np.float64),
        "low": first["unit_error_rate_low"].to_numpy(dtype=np.float64),
        "high": first["unit_error_rate_high"].to_numpy(dtype=np.float64)}, columns=cell_rows.columns)
    parts = [p for p in (units, cell_rows[keep & ~whole]) if len(p)]
    return (pd.concat(parts, ignore_index=True) if parts else units).reset_index(drop=True)


def _weighted(mean: np.ndarray, low: np.ndarray, high: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """The stratified weighted mean and its interval (module docstring), in %."""
    if len(w) == 0 or not np.sum(w) > 0:
        return {"mean": np.nan, "low": np.nan, "high": np.nan}
    m = float(np.average(mean, weights=w))
    if np.isnan(low).any() or np.isnan(high).any():  # a table without intervals
        return {"mean": m, "low": np.nan, "high": np.nan}
    half = np.maximum(high - mean, mean - low)
    h = float(np.sqrt(np.sum((w * half) ** 2)) / np.sum(w))
    return {"mean": m, "low": max(m - h, float(np.average(low, weights=w)), 0.0),
            "high": min(m + h, float(np.average(high, weights=w)), 100.0)}


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(frame[k].to_numpy(dtype=np.float64) for k in _ESTIMATE)  # type: ignore[return-value]


def per_set_mean(cells: pd.DataFrame, *, bits: Iterable[int] | None = None,
                 kinds: Iterable[str] | None = None) -> pd.DataFrame:
    """Per set, in graph order: its mean over (the selected) bits and the interval (``mean``,
    ``low``, ``high``, %): each unit weighted by the bits it spans."""
    units = strata(cells, bits=bits, kinds=kinds, per_set=True)
    order = units.drop_duplicates("set").sort_values("order")["set"].tolist()
    rows = {name: _weighted(*_arrays(g), g["bits"].to_numpy(dtype=np.float64))
            for name, g in units.groupby("set", sort=False)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(_ESTIMATE)).reindex(order)


#: the name Figs. 3 / 5 / 8 (``reporting.fault_figures``) import: the per-set means.
set_estimates = per_set_mean


def set_mean(cells: pd.DataFrame, *, bits: Iterable[int] | None = None,
             kinds: Iterable[str] | None = None) -> dict[str, float]:
    """The mean over parameter sets (of ``kinds``) of their means over (the selected) bits, with
    its stratified interval (%): each unit weighted by bits(u) / bits(its set)."""
    units = strata(cells, bits=bits, kinds=kinds, per_set=True)
    per_set_bits = units.groupby("set")["bits"].transform("sum").to_numpy(dtype=np.float64)
    return _weighted(*_arrays(units), units["bits"].to_numpy(dtype=np.float64) / per_set_bits)


def network_rate(cells: pd.DataFrame, *, bits: Iterable[int] | None = None,
                 kinds: Iterable[str] | None = None) -> dict[str, float]:
    """The network-wise rate (%): the error rate of one bit flip drawn uniformly over every
    stored bit of the model's parameter sets (of ``kinds``, at ``bits``), with its stratified
    interval: each unit weighted by its set's size x the bits it spans. Needs the cells'
    ``population`` (the set's number of values)."""
    if "population" not in cells:
        raise ValueError("the network-wise rate needs the cells table's population column (set sizes)")
    units = strata(cells, bits=bits, kinds=kinds)
    if len(units) == 1 and units["set"].iloc[0] == "*":  # a network unit: its own estimate
        return {k: float(units[k].iloc[0]) for k in _ESTIMATE}
    w = units["size"].to_numpy(dtype=np.float64) * units["bits"].to_numpy(dtype=np.float64)
    return _weighted(*_arrays(units), w)


def cell_mean(cells: pd.DataFrame) -> dict[str, float]:
    """The mean over (set, bit) cells (%), every unit weighted by its bits; a network unit's own
    estimate. Not one of :data:`STATISTICS`: it weighs a set by its bit count only (a 32-bit
    float set 4x an 8-bit int8 one, whatever their sizes), which answers no question asked here.
    Kept, by this name, for the tests of the stratified interval."""
    if "unit" in cells and cells["unit"].nunique() == 1 and cells["set"].nunique() > 1:
        row = cells.iloc[0]
        return {"mean": float(row["unit_error_rate"]), "low": float(row["unit_error_rate_low"]),
                "high": float(row["unit_error_rate_high"])}
    units = unit_table(cells)
    return _weighted(*_arrays(units), units["bits"].to_numpy(dtype=np.float64))


#: deprecated name of :func:`cell_mean` (the tests written before the statistics were named).
model_estimate = cell_mean


@dataclass(frozen=True)
class Statistic:
    """A named statistic: ``label`` is what captions, legends and tables print; ``function``
    computes it from a cells table (``bits``/``kinds`` restrict it); ``per`` says what one
    value describes (``set`` or ``model``)."""

    name: str
    label: str
    per: str
    function: Callable[..., object]


#: the one registry of error-rate statistics: figures, JSON and the findings use these names
#: and labels.
STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("per_set_mean", "mean over the bits of a parameter set", "set", per_set_mean),
    Statistic("set_mean", "mean over parameter sets (each set alike, each bit alike within a set)", "model",
              set_mean),
    Statistic("network_rate", "network-wise rate (a random bit flip anywhere in parameter memory)", "model",
              network_rate),
)}
