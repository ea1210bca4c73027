"""The split of a replicated statistic's variance into between-model and fault-sampling parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.findings.components import estimates_from_summary, variance_components
from hsiseu.io import write_json


def test_components_recover_a_simulated_two_level_split():
    rng = np.random.default_rng(3)
    between, within, reps = 2.0, 0.5, 4000
    truth = 10 + between * rng.standard_normal(reps)
    est = truth + within * rng.standard_normal(reps)
    half = 1.959964 * within
    frame = pd.DataFrame({"af": "relu", "stage": "original", "statistic": "set_mean", "rep": range(reps),
                          "mean": est, "low": est - half, "high": est + half})
    row = variance_components(frame).iloc[0]
    assert row["between_sd"] == pytest.approx(between, rel=0.05)
    assert row["within_sd"] == pytest.approx(within, rel=1e-6)
    assert row["within_share"] == pytest.approx(within**2 / (between**2 + within**2), rel=0.1)


def test_replicates_closer_than_their_fault_samples_have_no_between_part(tmp_path):
    summary = {"relu": {f"rep{r}": {"pruned": {"set_mean": 5.0 + 0.01 * r, "set_mean_low": 4.0 + 0.01 * r,
                                               "set_mean_high": 6.0 + 0.01 * r, "network_rate": 1.0,
                                               "network_rate_low": 0.5, "network_rate_high": 1.5}}
                        for r in range(3)}}
    write_json(tmp_path / "s.json", summary)
    table = variance_components(estimates_from_summary(tmp_path / "s.json")).set_index("statistic")
    assert table.loc["set_mean", "between_sd"] == 0.0 and table.loc["set_mean", "within_share"] == 1.0
    assert list(table["replicates"]) == [3, 3]


def test_a_summary_without_replicates_is_refused_naming_the_file(tmp_path):
    write_json(tmp_path / "s.json", {"relu": {"original": {"set_mean": 1.0}}})
    with pytest.raises(ValueError, match="s.json"):
        estimates_from_summary(tmp_path / "s.json")
