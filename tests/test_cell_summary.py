"""campaign.cell_summary (every figure and the findings read its cells.csv) against an independent
pandas groupby of the outcomes: counts, means, standard deviations, shares, the parameter-set
columns, the order of the rows, and each unit's estimate (a pooled mantissa: all its faults)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults.campaign import CELL_COLUMNS, cell_summary

BITS = [31, 30, 23, 22, 5, 0]
MANTISSA = [22, 5, 0]
SETS = pd.DataFrame({"order": [0, 1, 2], "name": ["c1/kernel", "c1/bias", "bn1/gamma"],
                     "kind": ["kernel", "bias", "gamma"], "layer": ["c1", "c1", "bn1"],
                     "shape": ["3x3x2x10", "10", "4"], "size": [180, 10, 4], "dtype": ["float32"] * 3,
                     "n_bits": [32] * 3})
SAMPLING = {"method": "fixed", "fixed_n": 5, "population": "cell", "mantissa_population": "set",
            "error_margin": 0.2, "confidence": 0.95, "p": 0.5}


def outcomes_table(seed: int = 0) -> pd.DataFrame:
    """Outcomes of 1..9 faults per (set, bit), drawn without replacement, in shuffled row order
    (as shards may hand them over); ``bn1/gamma`` bit 30 has every one of its 4 values faulted,
    ``c1/bias`` bit 31 one fault only."""
    rng = np.random.default_rng(seed)
    rows, fault = [], 0
    for s in SETS.itertuples(index=False):
        for bit in BITS:
            n = s.size if (s.name, bit) == ("bn1/gamma", 30) else 1 if (s.name, bit) == ("c1/bias", 31) else int(rng.integers(2, 10))
            for index in np.sort(rng.choice(s.size, min(n, s.size), replace=False)):
                rate = float(rng.choice([0.0, 0.0, 0.5, 12.5, 100.0]))
                rows.append({"fault": fault, "set": s.name, "kind": s.kind, "layer": s.layer, "bit": bit,
                             "index": int(index), "original": 0.5, "faulty": 0.5,
                             "error_rate": rate, "error_rate_labelled": min(100.0, 2 * rate),
                             "changed": rate > 0, "nonfinite": rate == 100.0 and bool(rng.integers(0, 2))})
                fault += 1
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def summary():
    outcomes = outcomes_table()
    return outcomes, cell_summary(outcomes, SETS, SAMPLING, BITS)


def test_cells_are_the_groupby_of_the_outcomes_per_set_and_bit(summary):
    outcomes, cells = summary
    assert list(cells.columns) == list(CELL_COLUMNS)
    g = outcomes.groupby(["set", "bit"])
    expected = pd.DataFrame({
        "n": g.size(),
        "error_rate": g["error_rate"].mean(),
        "error_rate_std": g["error_rate"].std(ddof=1).fillna(0.0),  # one fault: no spread
        "error_rate_labelled": g["error_rate_labelled"].mean(),
        "changed": g["changed"].mean(),
        "nonfinite": g["nonfinite"].mean(),
    })
    got = cells.set_index(["set", "bit"])
    assert sorted(got.index) == sorted(expected.index) and got.index.is_unique
    pd.testing.assert_frame_equal(got.loc[expected.index, expected.columns].astype(float), expected.astype(float),
                                  check_exact=False, rtol=1e-12, atol=1e-12)
    assert got.loc[("c1/bias", 31), "n"] == 1 and got.loc[("c1/bias", 31), "error_rate_std"] == 0.0


def test_cells_carry_their_sets_columns_and_follow_graph_order_then_bits_high_to_low(summary):
    _, cells = summary
    meta = SETS.set_index("name")
    for column, source in (("order", "order"), ("kind", "kind"), ("layer", "layer"), ("population", "size")):
        assert cells[column].tolist() == meta.loc[cells["set"], source].tolist(), column
    expected_order = [(name, bit) for name in SETS.sort_values("order")["name"] for bit in sorted(BITS, reverse=True)]
    assert list(zip(cells["set"], cells["bit"])) == expected_order


def test_each_unit_estimate_is_the_mean_of_all_of_its_faults(summary):
    outcomes, cells = summary
    own = cells[cells["bit"] >= 23]
    pooled = cells[cells["bit"] < 23]
    # sign and exponent bits are units of their own: the unit is the cell
    assert (own["unit_bits"] == 1).all() and own["unit"].is_unique
    np.testing.assert_allclose(own["unit_error_rate"], own["error_rate"], rtol=1e-12)
    np.testing.assert_allclose(own["unit_error_rate_low"], own["error_rate_low"], rtol=1e-12)
    np.testing.assert_allclose(own["unit_error_rate_high"], own["error_rate_high"], rtol=1e-12)
    # a set's mantissa bits are one unit: its estimate pools their faults (not a mean of cell means)
    assert (pooled["unit_bits"] == len(MANTISSA)).all()
    assert pooled.groupby("set")["unit"].nunique().eq(1).all() and pooled["unit"].nunique() == len(SETS)
    mantissa = outcomes[outcomes["bit"].isin(MANTISSA)].groupby("set")["error_rate"].mean()
    np.testing.assert_allclose(pooled["unit_error_rate"], mantissa.loc[pooled["set"]].to_numpy(), rtol=1e-12)


def test_intervals_hold_their_estimates_and_a_census_has_no_width(summary):
    _, cells = summary
    for prefix in ("error_rate", "unit_error_rate"):
        low, mean, high = cells[f"{prefix}_low"], cells[prefix], cells[f"{prefix}_high"]
        assert ((0 <= low) & (low <= mean + 1e-9) & (mean <= high + 1e-9) & (high <= 100)).all(), prefix
    census = cells.set_index(["set", "bit"]).loc[("bn1/gamma", 30)]
    assert census["n"] == census["population"] == 4
    assert census["error_rate_low"] == pytest.approx(census["error_rate"])
    assert census["error_rate_high"] == pytest.approx(census["error_rate"])


def test_the_summary_does_not_depend_on_the_order_the_outcomes_arrive_in(summary):
    outcomes, cells = summary
    again = cell_summary(outcomes.sort_values("fault", ascending=False), SETS, SAMPLING, BITS)
    pd.testing.assert_frame_equal(again, cells)
