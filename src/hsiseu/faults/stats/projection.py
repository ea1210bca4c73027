"""Expected faults a campaign needs, ``leveugle`` vs ``adaptive``, from a measured cells table.

Why. Whether adaptive sampling pays depends on how the error rate is spread over the cells:
a model whose cells mostly change no pixel needs ~145 faults per cell at e = 2.5 % instead of
1537. A cells table (``campaign.cell_summary``: set, bit, population, error_rate and
error_rate_std in %) of a cheap campaign says how it is spread; this module turns it into the
faults each method needs at another e and confidence, for each population variant, and for
another model's set sizes (``sizes``: the paper-size model).

How. ``leveugle`` is exact: sum over units of min(N, leveugle_n(N, e, confidence, 1/2)).
``adaptive`` is simulated: each cell's outcome population is modelled as the two-point
population {0, b} matched to its mean m and standard deviation s (b = (s^2 + m^2) / m, a share
m / b of its N values equal to b: the most zeros any [0, 1] population with that mean and
variance can have, which is what fault outcomes look like -- most faults change nothing); a
unit (a cell, a set's cells, every cell) is the union of its cells' populations, drawn without
replacement in random order and fed to :class:`~hsiseu.faults.stats.adaptive.UnitState` until it
stops; the expected faults are the mean stopping n over ``replicates`` seeded orders.
Identical units (same N and cell moments, e.g. every all-zero cell of one size) are simulated
once. The figure is a projection: the measured m and s carry their own sampling error.

With strata (:data:`STRATIFIED`, from a campaign that ran with ``faults.sampling.strata``): a
cell that was a stratified unit is modelled per stratum -- its strata's shares of N, each a
two-point population matched to that stratum's mean and spread (:func:`stratum_profile`) -- and
simulated with its :class:`~hsiseu.faults.stats.strata.Strata`; the other cells as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hsiseu.faults.stats.adaptive import MIN_ROUND, UnitState, adaptive_candidates, fewest_draws
from hsiseu.faults.stats.candidates import POPULATIONS, list_strata
from hsiseu.faults.stats.strata import Strata

__all__ = ["PROJECTION_COLUMNS", "POOLED_MANTISSA", "STRATIFIED", "two_point", "unit_cells", "stratum_profile",
           "expected_faults"]

PROJECTION_COLUMNS = ("population", "units", "population_faults", "leveugle", "adaptive", "adaptive_share", "floor")


def two_point(mean: float, std: float) -> tuple[float, float]:
    """(share q, value b) of the population {0 w.p. 1 - q, b w.p. q} with this mean and
    standard deviation (fractions in [0, 1]); the std is clipped to the largest a [0, 1]
    population with that mean can have, sqrt(m (1 - m))."""
    mean = float(np.clip(mean, 0.0, 1.0))
    if mean == 0.0:
        return 0.0, 0.0
    var = min(float(std) ** 2, mean * (1 - mean))
    b = min(1.0, (var + mean**2) / mean)
    return mean / b, b


#: ``cell`` with each float set's mantissa bits pooled (``faults.sampling.mantissa_population: set``).
POOLED_MANTISSA = "cell+mantissa"
#: ``cell`` with the strata the profile's campaign used (``faults.sampling.strata``).
STRATIFIED = "cell+strata"


def stratum_profile(outcomes: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """Per cell that was a stratified unit of its own (a campaign's outcomes and its fault list
    with strata): columns set, bit and ``strata``, a tuple of (share of N, q, b) per stratum,
    (q, b) the stratum's two-point model. Empty without strata."""
    found = {unit: strata for unit, strata in list_strata(faults).items() if strata is not None}
    rows = []
    if not found:
        return pd.DataFrame(rows, columns=["set", "bit", "strata"])
    listed = faults.set_index("fault")
    ran = outcomes.assign(unit=listed["unit"].reindex(outcomes["fault"]).to_numpy(),
                          rank=listed["rank"].reindex(outcomes["fault"]).to_numpy())
    for unit, group in ran[ran["unit"].isin(list(found))].groupby("unit", sort=False):
        if group["bit"].nunique() != 1 or group["set"].nunique() != 1:
            continue  # pooled units are modelled without strata
        strata = found[unit]
        x = group.sort_values("rank")["error_rate"].to_numpy(np.float64) / 100.0
        parts = strata.split(x)
        if any(len(part) == 0 for part in parts):
            continue
        model = tuple((float(w), *two_point(float(part.mean()), float(part.std())))
                      for w, part in zip(strata.weights, parts))
        rows.append({"set": group["set"].iloc[0], "bit": int(group["bit"].iloc[0]), "strata": model})
    return pd.DataFrame(rows, columns=["set", "bit", "strata"])


def unit_cells(cells: pd.DataFrame, population: str, sizes: Mapping[str, int] | None = None,
               float_sets: Sequence[str] = ()) -> list[pd.DataFrame]:
    """The cells of each unit of ``population`` (``cell``, ``set``, ``network``,
    :data:`POOLED_MANTISSA`, whose mantissa units are the bits 22..0 of the ``float_sets``, or
    :data:`STRATIFIED`), each with columns set, bit, size (the set's size, ``sizes`` overriding
    the table's population), q and b (its two-point model) and strata (:data:`STRATIFIED`: the
    ``strata`` column of ``cells``, from :func:`stratum_profile`; else None)."""
    if population not in (*POPULATIONS, POOLED_MANTISSA, STRATIFIED):
        raise ValueError(f"unknown population {population!r}; expected one of "
                         f"{(*POPULATIONS, POOLED_MANTISSA, STRATIFIED)}")
    table = cells.loc[:, ["set", "bit", "population", "error_rate", "error_rate_std"]].copy()
    table["strata"] = (cells["strata"].where(cells["strata"].notna(), None)
                       if population == STRATIFIED and "strata" in cells else None)
    size = table["population"].astype(np.int64)
    if sizes is not None:
        size = table["set"].map(lambda s: sizes.get(s)).fillna(size).astype(np.int64)
    table["size"] = size
    model = [two_point(m / 100.0, s / 100.0)
             for m, s in zip(table["error_rate"], table["error_rate_std"].fillna(0.0), strict=True)]
    table["q"] = [q for q, _ in model]
    table["b"] = [b for _, b in model]
    table = table.loc[table["size"] > 0, ["set", "bit", "size", "q", "b", "strata"]].reset_index(drop=True)
    if population == POOLED_MANTISSA:
        pooled = table["set"].isin(list(float_sets)).to_numpy() & (table["bit"] < 23).to_numpy()
        return ([table.iloc[[i]].reset_index(drop=True) for i in np.flatnonzero(~pooled)]
                + [g.reset_index(drop=True) for _, g in table[pooled].groupby("set", sort=False)])
    if population in ("cell", STRATIFIED):
        return [table.iloc[[i]].reset_index(drop=True) for i in range(len(table))]
    if population == "set":
        return [group.reset_index(drop=True) for _, group in table.groupby("set", sort=False)]
    return [table] if len(table) else []


def _blocks(unit: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(sizes, non-zero counts, values) of the unit's two-point blocks, and whether the blocks
    are a stratified cell's strata (then one block per stratum, else one per cell)."""
    strata = unit["strata"].iloc[0] if len(unit) == 1 else None
    if strata is None:
        sizes = unit["size"].to_numpy(np.int64)
        return sizes, np.rint(unit["q"].to_numpy() * sizes).astype(np.int64), unit["b"].to_numpy(np.float64), False
    total = int(unit["size"].iloc[0])
    sizes = np.floor(np.array([w for w, _, _ in strata]) * total).astype(np.int64)
    sizes[np.argmax(sizes)] += total - sizes.sum()
    if sizes.min() < 1:  # a set too small for its strata here (a projection's smaller set): one block
        return _blocks(unit.assign(strata=[None]))
    nonzero = np.rint(np.array([q for _, q, _ in strata]) * sizes).astype(np.int64)
    return sizes, nonzero, np.array([b for _, _, b in strata], dtype=np.float64), True


def _simulated_stop(unit: pd.DataFrame, error_margin: float, confidence: float, replicates: int,
                    seed: int, min_round: int) -> float:
    sizes, nonzero, values, stratified = _blocks(unit)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    total = int(starts[-1])
    if nonzero.sum() == 0:
        replicates = 1  # all zeros: every order gives the same outcomes
    n_cand = adaptive_candidates(total, error_margin, confidence)
    stops = []
    for r in range(replicates):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), r])))
        k = rng.choice(total, size=n_cand, replace=False) if n_cand < total else rng.permutation(total)
        cell = np.searchsorted(starts, k, side="right") - 1
        # a cell's modelled population: its first `nonzero` values are b, the rest 0
        outcomes = np.where(k - starts[cell] < nonzero[cell], values[cell], 0.0)
        state = UnitState(total, error_margin=error_margin, confidence=confidence, min_round=min_round,
                          strata=Strata(cell, sizes) if stratified else None)
        state.run(lambda ranks: outcomes[ranks.start:ranks.stop])
        stops.append(state.n)
    return float(np.mean(stops))


def expected_faults(cells: pd.DataFrame, *, error_margin: float, confidence: float,
                    populations: Sequence[str] = POPULATIONS, sizes: Mapping[str, int] | None = None,
                    float_sets: Sequence[str] = (),
                    replicates: int = 4, seed: int = 0, min_round: int = MIN_ROUND) -> pd.DataFrame:
    """Faults needed per population variant (columns :data:`PROJECTION_COLUMNS`): units, faults
    in the whole population, ``leveugle`` (exact) and ``adaptive`` (expected, simulated), the
    adaptive share of leveugle's, and the ``floor`` no rule with the same guarantee goes below
    (every unit's outcomes zero: :func:`~hsiseu.faults.stats.adaptive.fewest_draws`)."""
    rows = []
    for population in populations:
        cache: dict[tuple, float] = {}
        n_units = leveugle = floor = 0
        adaptive = 0.0
        whole = 0
        for unit in unit_cells(cells, population, sizes, float_sets):
            total = int(unit["size"].sum())
            n_units += 1
            whole += total
            leveugle += adaptive_candidates(total, error_margin, confidence)
            floor += fewest_draws(total, error_margin, confidence)
            key = (total,) + tuple(unit[["size", "q", "b", "strata"]].itertuples(index=False, name=None))
            if key not in cache:
                cache[key] = _simulated_stop(unit, error_margin, confidence, replicates, seed, min_round)
            adaptive += cache[key]
        rows.append({"population": population, "units": n_units, "population_faults": whole,
                     "leveugle": leveugle, "adaptive": adaptive,
                     "adaptive_share": adaptive / leveugle if leveugle else float("nan"), "floor": floor})
    return pd.DataFrame(rows, columns=list(PROJECTION_COLUMNS))
