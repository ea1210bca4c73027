"""Strata inside a unit: codes read from the stored bits, the exact shares, the post-stratified
estimate and interval, and their way through the fault list into the campaign's states."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults import faultlist
from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.stats.adaptive import UnitState, adaptive_candidates
from hsiseu.faults.stats.candidates import candidate_faults, list_strata, strata_keys_of
from hsiseu.faults.stats.projection import STRATIFIED, expected_faults, stratum_profile
from hsiseu.faults.stats.strata import MIN_SHARE, Strata, stratum_codes, unit_strata


def test_codes_read_the_sign_and_the_flipped_bit_from_the_stored_bits_of_floats_and_ints():
    floats = np.array([1.5, -1.5, -0.0, 3.0], dtype=np.float32)  # 3.0 has exponent bit 30 set
    index = np.arange(4)
    assert stratum_codes(floats, index, np.full(4, 30), ["sign"]).tolist() == [0, 1, 1, 0]
    assert stratum_codes(floats, index, np.full(4, 30), ["bit_value"]).tolist() == [0, 0, 0, 1]
    assert stratum_codes(floats, index, np.full(4, 30), ["sign", "bit_value"]).tolist() == [0, 1, 1, 2]
    ints = np.array([5, -5, 0, -128], dtype=np.int8)  # 5 = 0b101, -5 = 0b11111011
    assert stratum_codes(ints, index, np.zeros(4), ["sign", "bit_value"]).tolist() == [2, 3, 0, 1]
    assert stratum_codes(ints, index, np.full(4, 1), ["bit_value"]).tolist() == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="unknown faults.sampling.strata"):
        stratum_codes(floats, index, np.zeros(4), ["magnitude"])


def test_unit_strata_counts_every_value_and_bit_and_drops_units_with_a_stratum_too_small():
    values = np.array([1.0] * 90 + [-1.0] * 10, dtype=np.float32)
    assert unit_strata([(values, [31, 30])], ["sign"]).tolist() == [180, 20]
    few = np.array([1.0] * 96 + [-1.0] * (100 - 96), dtype=np.float32)  # 4 % < MIN_SHARE
    assert 4 / 100 < MIN_SHARE and unit_strata([(few, [30])], ["sign"]) is None
    assert unit_strata([(np.ones(10, np.float32), [30])], ["sign"]) is None  # one stratum
    assert unit_strata([(values, [30])], []) is None


def test_strata_from_codes_number_the_held_codes_and_refuse_a_candidate_in_an_empty_one():
    got = Strata.from_codes(np.array([2, 0, 2, 2]), [5, 0, 7, 0])
    assert got.ids.tolist() == [1, 0, 1, 1] and got.sizes.tolist() == [5, 7]
    with pytest.raises(ValueError, match="population 0"):
        Strata.from_codes(np.array([1]), [5, 0, 7])


def test_post_stratified_estimate_weighs_each_stratum_by_its_exact_share():
    strata = Strata(np.array([0, 0, 0, 1]), [900, 100])
    x = np.array([0.2, 0.4, 0.3, 1.0])
    assert strata.estimate(x) == pytest.approx(0.9 * 0.3 + 0.1 * 1.0)
    assert strata.estimate(x[:3]) == pytest.approx(0.3)  # stratum 1 unseen: the plain mean


def test_stratified_normal_half_width_is_cochrans_with_each_strata_variance_bound():
    strata = Strata(np.array([0, 1] * 50), [600, 400])
    counts = strata.counts(100)
    lows, highs = np.array([0.7, 0.1]), np.array([0.8, 0.2])  # p_h = 0.7 and 0.2
    t = NormalDist().inv_cdf(0.975)
    expected = t * math.sqrt(0.36 * 0.21 / 50 * (550 / 599) + 0.16 * 0.16 / 50 * (350 / 399))
    assert strata.normal_half_width(counts, lows, highs, 0.95) == pytest.approx(expected)
    assert strata.normal_half_width(strata.counts(1), lows, highs, 0.95) == math.inf


def test_a_stratified_unit_of_two_modes_stops_far_earlier_and_its_interval_holds_its_mean():
    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1], 2000)
    values = np.where(codes == 0, 0.9, 0.0)
    order = rng.permutation(4000)[:adaptive_candidates(4000, 0.025, 0.95)]
    strata = Strata(codes[order], [2000, 2000])
    plain = UnitState(4000, error_margin=0.025, confidence=0.95).run(lambda r: values[order[r.start:r.stop]])
    state = UnitState(4000, error_margin=0.025, confidence=0.95, strata=strata).run(
        lambda r: values[order[r.start:r.stop]])
    got = state.interval()
    assert state.n < 0.5 * plain.n
    assert got.low <= 0.45 <= got.high and got.mean == pytest.approx(0.45)
    assert max(got.high - got.mean, got.mean - got.low) <= 0.025
    again = UnitState.from_dict(state.to_dict())  # resumes with its strata
    assert again.n == state.n and again.interval() == got


def test_strata_must_fit_their_unit_and_the_adaptive_method():
    strata = Strata(np.array([0, 1, 0]), [5, 5])
    with pytest.raises(ValueError, match="do not fit"):
        UnitState(10, error_margin=0.3, confidence=0.95, strata=strata)
    with pytest.raises(ValueError, match="the adaptive rule only"):
        UnitState(10, method="fixed", error_margin=0.3, confidence=0.95, candidates=3, strata=strata)
    with pytest.raises(ValueError, match="needs method adaptive"):
        strata_keys_of({"method": "leveugle", "strata": ["sign"]})
    with pytest.raises(ValueError, match="distinct keys"):
        strata_keys_of({"method": "adaptive", "strata": ["sign", "sign"]})


def test_the_fault_list_carries_each_candidates_stratum_and_the_same_order_as_without(tmp_path):
    rng = np.random.default_rng(1)
    sets = [ParameterSet("a/kernel", "kernel", "a", (40, 50), "float32"),
            ParameterSet("b/bias", "bias", "b", (300,), "int32")]
    values = {"a/kernel": rng.normal(0, 0.1, 2000).astype(np.float32),
              "b/bias": rng.integers(-1000, 1000, 300).astype(np.int32)}
    sampling = {"method": "adaptive", "error_margin": 0.05, "confidence": 0.95}
    plain = candidate_faults(sets, [31, 30, 3], "cell", sampling, seed=4)
    stratified = candidate_faults(sets, [31, 30, 3], "cell", {**sampling, "strata": ["sign"]}, seed=4, values=values)
    pd.testing.assert_frame_equal(stratified.loc[:, list(plain.columns)], plain)
    with pytest.raises(ValueError, match="need the sets' values"):
        candidate_faults(sets, [30], "cell", {**sampling, "strata": ["sign"]}, seed=4)
    path = tmp_path / "faults.csv"
    faultlist.write(stratified, path)
    found = list_strata(faultlist.read(path))
    for unit, group in stratified.groupby("unit"):
        name = group["set"].iloc[0]
        negative = np.signbit(values[name]) if name == "a/kernel" else values[name] < 0
        strata = found[unit]
        assert strata is not None and strata.sizes.tolist() == [int((~negative).sum()), int(negative.sum())]
        assert strata.ids.tolist() == negative[group.sort_values("rank")["index"]].astype(int).tolist()


def test_the_sampling_plan_projects_the_stratified_rule_from_each_strata_profile():
    """A campaign's bimodal cell (one sign near 0.9, the other near 0): its stratum profile
    holds the exact shares and each stratum's two-point model, and the projected stratified rule
    needs far fewer faults than the unstratified one on the same cell, Leveugle's n unchanged."""
    rng = np.random.default_rng(2)
    sets = [ParameterSet("a/kernel", "kernel", "a", (4000,), "float32")]
    values = {"a/kernel": np.where(np.arange(4000) < 1000, -1.0, 1.0).astype(np.float32) * rng.uniform(0.01, 0.1, 4000)}
    sampling = {"method": "adaptive", "error_margin": 0.025, "confidence": 0.95, "strata": ["sign"]}
    faults = candidate_faults(sets, [30], "cell", sampling, seed=0, values=values)
    negative = values["a/kernel"][faults["index"]] < 0
    rate = np.where(negative, 0.0, 90.0 + rng.normal(0, 1, len(faults)))  # in %
    outcomes = pd.DataFrame({"fault": faults["fault"], "set": faults["set"], "bit": faults["bit"], "error_rate": rate})
    profile = stratum_profile(outcomes, faults)
    assert len(profile) == 1
    (w0, q0, b0), (w1, q1, b1) = profile["strata"].iloc[0]
    assert (w0, w1) == (0.75, 0.25) and q1 == 0.0 and q0 * b0 == pytest.approx(rate[~negative].mean() / 100)
    cells = pd.DataFrame({"set": ["a/kernel"], "bit": [30], "population": [4000],
                          "error_rate": [rate.mean()], "error_rate_std": [rate.std()]}).merge(profile, on=["set", "bit"])
    plan = expected_faults(cells, error_margin=0.025, confidence=0.95, populations=("cell", STRATIFIED)).set_index("population")
    assert plan.loc[STRATIFIED, "leveugle"] == plan.loc["cell", "leveugle"]
    assert plan.loc[STRATIFIED, "adaptive"] < 0.6 * plan.loc["cell", "adaptive"]


def test_the_cells_of_a_stratified_campaign_need_its_fault_list():
    from hsiseu.faults.campaign import cell_summary

    outcomes = pd.DataFrame({"fault": [0], "set": ["a/kernel"], "bit": [30], "error_rate": [0.0],
                             "error_rate_labelled": [0.0], "changed": [False], "nonfinite": [False]})
    sets = pd.DataFrame({"order": [0], "name": ["a/kernel"], "kind": ["kernel"], "layer": ["a"], "shape": ["10"],
                         "size": [10], "dtype": ["float32"], "n_bits": [32]})
    with pytest.raises(ValueError, match="need its fault list"):
        cell_summary(outcomes, sets, {"method": "adaptive", "error_margin": 0.3, "confidence": 0.95,
                                      "strata": ["sign"]}, [30])
