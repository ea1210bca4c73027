"""The named model statistics (set_mean, network_rate, per_set_mean) against independent
computations: a hand-made cells table and a simulated outcomes table summarised by the campaign's
own cell_summary. numpy / pandas only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults.stats.aggregate import STATISTICS, network_rate, per_set_mean, set_estimates, set_mean


def _hand_cells() -> pd.DataFrame:
    """Two float sets, bits 31, 30 as their own units and 22, 0 pooled into a mantissa unit;
    set a's bit 0 drew no fault (absent). Rates in %."""
    rows = [
        # set, order, kind, population, bit, cell rate, low, high, unit, unit_bits, unit rate, low, high
        ("a", 0, "kernel", 100, 31, 10.0, 8.0, 12.0, "a:31", 1, 10.0, 8.0, 12.0),
        ("a", 0, "kernel", 100, 30, 50.0, 45.0, 55.0, "a:30", 1, 50.0, 45.0, 55.0),
        ("a", 0, "kernel", 100, 22, 1.5, 0.0, 4.0, "a:mantissa", 2, 1.0, 0.0, 3.0),
        ("b", 1, "gamma", 10, 31, 20.0, 15.0, 25.0, "b:31", 1, 20.0, 15.0, 25.0),
        ("b", 1, "gamma", 10, 30, 80.0, 70.0, 90.0, "b:30", 1, 80.0, 70.0, 90.0),
        ("b", 1, "gamma", 10, 22, 3.0, 1.0, 5.0, "b:mantissa", 2, 4.0, 2.0, 6.0),
        ("b", 1, "gamma", 10, 0, 5.0, 2.0, 8.0, "b:mantissa", 2, 4.0, 2.0, 6.0),
    ]
    cols = ["set", "order", "kind", "population", "bit", "error_rate", "error_rate_low", "error_rate_high", "unit",
            "unit_bits", "unit_error_rate", "unit_error_rate_low", "unit_error_rate_high"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.assign(n=10, layer=frame["set"])


def _stratified(means, halves, weights):
    means, halves, weights = (np.asarray(v, dtype=float) for v in (means, halves, weights))
    mean = float(np.sum(weights * means) / np.sum(weights))
    return mean, float(np.sqrt(np.sum((weights * halves) ** 2)) / np.sum(weights))


def test_set_mean_is_the_unweighted_mean_of_the_sets_means_over_bits():
    cells = _hand_cells()
    # a: (10 + 50 + 2 x 1) / 4 = 15.5; b: (20 + 80 + 2 x 4) / 4 = 27; each set weighs the same
    assert per_set_mean(cells)["mean"].to_dict() == pytest.approx({"a": 15.5, "b": 27.0})
    est = set_mean(cells)
    assert est["mean"] == pytest.approx((15.5 + 27.0) / 2)
    # units a:31, a:30, a:mantissa, b:31, b:30, b:mantissa: weight bits / 4 bits of the set
    m, h = _stratified([10, 50, 1, 20, 80, 4], [2, 5, 2, 5, 10, 2], [1 / 4, 1 / 4, 2 / 4, 1 / 4, 1 / 4, 2 / 4])
    assert est["mean"] == pytest.approx(m)
    assert est["low"] == pytest.approx(m - h) and est["high"] == pytest.approx(m + h)


def test_network_rate_weighs_every_stored_bit_alike():
    cells = _hand_cells()
    est = network_rate(cells)
    # every (value, bit): set a's 100 values x 4 bits and set b's 10 x 4
    expected = (100 * (10 + 50 + 2 * 1) + 10 * (20 + 80 + 2 * 4)) / (100 * 4 + 10 * 4)
    assert est["mean"] == pytest.approx(expected)
    m, h = _stratified([10, 50, 1, 20, 80, 4], [2, 5, 2, 5, 10, 2], [100, 100, 200, 10, 10, 20])
    assert est["mean"] == pytest.approx(m) and est["high"] == pytest.approx(m + h)
    assert est["mean"] != pytest.approx(set_mean(cells)["mean"])  # the two meanings differ


def test_restricted_statistics_use_units_inside_the_restriction_and_cells_of_cut_units():
    cells = _hand_cells()
    assert network_rate(cells, bits=[30])["mean"] == pytest.approx((100 * 50 + 10 * 80) / 110)
    # the pooled mantissa units lie inside bits 22..0: their own estimates, weighted size x 2 bits
    assert network_rate(cells, bits=range(23))["mean"] == pytest.approx((100 * 2 * 1 + 10 * 2 * 4) / 220)
    # bit 22 alone cuts the pooled units: the cells' own estimates
    assert network_rate(cells, bits=[22])["mean"] == pytest.approx((100 * 1.5 + 10 * 3.0) / 110)
    assert set_mean(cells, kinds=["gamma"])["mean"] == pytest.approx(27.0)
    assert network_rate(cells, kinds=["kernel"])["mean"] == pytest.approx(15.5)
    assert np.isnan(set_mean(cells, kinds=["beta"])["mean"])


def test_the_registry_names_each_statistic_once_with_a_label():
    assert set(STATISTICS) == {"per_set_mean", "set_mean", "network_rate"}
    assert STATISTICS["set_mean"].function is set_mean and STATISTICS["network_rate"].function is network_rate
    assert "mean over parameter sets" in STATISTICS["set_mean"].label
    assert "network-wise" in STATISTICS["network_rate"].label
    assert set_estimates is per_set_mean


def _simulated(pooled: bool, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(outcomes, sets, cells): three float sets of different sizes, six bits each, 3-12 faults
    per (set, bit) drawn without replacement, bimodal outcomes; cells from the campaign's
    cell_summary."""
    from hsiseu.faults.campaign import cell_summary

    rng = np.random.default_rng(seed)
    sets = pd.DataFrame({"order": [0, 1, 2], "name": ["c1/kernel", "c1/bias", "bn1/gamma"],
                         "kind": ["kernel", "bias", "gamma"], "layer": ["c1", "c1", "bn1"],
                         "shape": ["10x30", "30", "30"], "size": [300, 30, 30], "dtype": ["float32"] * 3,
                         "n_bits": [32] * 3})
    bits = [31, 30, 29, 22, 5, 0]
    rows, fault = [], 0
    for s in sets.itertuples(index=False):
        for bit in bits:
            for index in rng.choice(s.size, int(rng.integers(3, 13)), replace=False):
                rate = float(rng.choice([0.0, 0.0, 0.0, 2.0, 100.0]))
                rows.append({"fault": fault, "set": s.name, "bit": bit, "index": int(index), "error_rate": rate,
                             "error_rate_labelled": rate, "changed": float(rate > 0), "nonfinite": 0.0})
                fault += 1
    outcomes = pd.DataFrame(rows)
    sampling = {"error_margin": 0.1, "confidence": 0.95, **({"mantissa_population": "set"} if pooled else {})}
    return outcomes, sets, cell_summary(outcomes, sets, sampling, bits)


def test_statistics_of_single_cell_units_are_groupbys_of_the_outcomes():
    outcomes, sets, cells = _simulated(pooled=False)
    assert (cells["unit_bits"] == 1).all()
    cell_means = outcomes.groupby(["set", "bit"])["error_rate"].mean()
    per_set = cell_means.groupby(level="set").mean()
    assert set_mean(cells)["mean"] == pytest.approx(per_set.mean())
    size = sets.set_index("name")["size"]
    weighted = (cell_means * size.reindex(cell_means.index.get_level_values("set")).to_numpy()).sum()
    assert network_rate(cells)["mean"] == pytest.approx(weighted / (size * 6).sum())
    assert per_set_mean(cells)["mean"].to_dict() == pytest.approx(per_set.to_dict())
    bit30 = cell_means.xs(30, level="bit")
    expected = (bit30 * size.reindex(bit30.index)).sum() / size.sum()
    assert network_rate(cells, bits=[30])["mean"] == pytest.approx(expected)
    for name in ("set_mean", "network_rate"):
        est = STATISTICS[name].function(cells)
        assert 0 <= est["low"] <= est["mean"] <= est["high"] <= 100


def test_a_pooled_mantissa_enters_with_its_unit_mean_weighted_by_its_bits():
    outcomes, sets, cells = _simulated(pooled=True)
    assert set(cells.loc[cells["bit"] < 23, "unit_bits"]) == {3}
    own = outcomes[outcomes["bit"] >= 23].groupby(["set", "bit"])["error_rate"].mean().groupby(level="set").sum()
    pooled = outcomes[outcomes["bit"] < 23].groupby("set")["error_rate"].mean()  # the unit: its faults pooled
    per_set = (own + 3 * pooled) / 6
    assert set_mean(cells)["mean"] == pytest.approx(per_set.mean())
    size = sets.set_index("name")["size"].reindex(per_set.index)
    assert network_rate(cells)["mean"] == pytest.approx((size * 6 * per_set).sum() / (size * 6).sum())
    mantissa = network_rate(cells, bits=range(23))["mean"]
    assert mantissa == pytest.approx((size * pooled).sum() / size.sum())


def test_fault_summary_names_set_mean_and_network_rate_per_af_replicate_and_stage(tmp_path):
    from hsiseu.reporting.summary import fault_summary

    cells = _hand_cells()
    cells.to_csv(tmp_path / "cells.csv", index=False)
    path = tmp_path / "cells.csv"
    out = fault_summary({("relu", 0, "original"): path, ("relu", 1, "quantized"): path})
    assert set(out["relu"]) == {"rep0", "rep1"} and set(out["relu"]["rep1"]) == {"quantized"}
    row = out["relu"]["rep0"]["original"]
    assert row["set_mean"] == pytest.approx(set_mean(cells)["mean"])
    assert row["network_rate"] == pytest.approx(network_rate(cells)["mean"])
    assert row["network_rate_low"] <= row["network_rate"] <= row["network_rate_high"]
    assert row["faults"] == 70 and row["cells"] == 7 and "mean_error_rate" not in row
    assert set(fault_summary({("relu", "original"): tmp_path / "cells.csv"})["relu"]) == {"original"}
