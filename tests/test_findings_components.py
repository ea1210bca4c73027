"""The split of a replicated statistic's variance into between-model and fault-sampling parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.findings.components import cells_paths, estimates_from_cells, variance_components


def test_components_recover_a_simulated_two_level_split():
    rng = np.random.default_rng(3)
    between, within, reps = 2.0, 0.5, 4000
    truth = 10 + between * rng.standard_normal(reps)
    est = truth + within * rng.standard_normal(reps)
    frame = pd.DataFrame({"af": "relu", "stage": "original", "statistic": "set_mean", "rep": range(reps),
                          "mean": est, "within_var": within**2})
    row = variance_components(frame).iloc[0]
    assert row["between_sd"] == pytest.approx(between, rel=0.05)
    assert row["within_sd"] == pytest.approx(within)
    assert row["within_share"] == pytest.approx(within**2 / (between**2 + within**2), rel=0.1)


def _cells(path, mean, sd):
    rows = [{"order": i, "set": s, "kind": "kernel", "layer": s, "bit": b, "population": 100 * (i + 1), "n": 20,
             "error_rate": mean, "error_rate_std": sd, "error_rate_low": 0.0, "error_rate_high": 100.0}
            for i, s in enumerate(["a", "b"]) for b in (31, 30)]
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_within_variance_is_the_stratified_sample_variance_and_equal_replicates_have_no_between_part(tmp_path):
    for rep in range(3):
        _cells(tmp_path / f"relu/rep{rep}/pruned/faults/cells.csv", 5.0, 4.0)
    estimates = estimates_from_cells(cells_paths(tmp_path)).set_index("statistic")
    # set_mean: 4 cells, weight 1/2 each (2 bits per set); var = sum w^2 s^2/n fpc / (sum w)^2
    fpc = np.array([1 - 20 / 100, 1 - 20 / 100, 1 - 20 / 200, 1 - 20 / 200])
    expected = np.sum(0.25 * 16 / 20 * fpc) / 2.0**2
    assert estimates.loc["set_mean", "within_var"].iloc[0] == pytest.approx(expected)
    table = variance_components(estimates.reset_index()).set_index("statistic")
    assert table.loc["set_mean", "between_sd"] == 0.0 and table.loc["set_mean", "within_share"] == 1.0
    assert list(table["replicates"]) == [3, 3]


def test_a_folder_without_campaigns_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        cells_paths(tmp_path)
