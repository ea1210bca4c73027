"""The fault-injection part of the DAG: figures are targets of their own, built by a real run."""

from __future__ import annotations

import pandas as pd
import pytest

TARGETS = (
    "reports/figures/fig2_bitflip_heatmap_{af}_original.png",  # the first AF's
    "reports/figures/fig3_mean_bitflip_error_original.png",
    "reports/figures/fig4_msb_minus_range_original.png",
    "reports/figures/fig5_mean_bitflip_error_pruned.png",
    "reports/figures/fig6_msb_minus_range_pruned.png",
)


@pytest.mark.slow
def test_fault_figures_build_from_a_tiny_real_campaign(tiny_run):
    workflow_copy, cfg = tiny_run
    for target in TARGETS:
        assert (workflow_copy / target.format(af=cfg["afs"][0])).stat().st_size > 1000
    for af, stage in ((af, stage) for af in cfg["afs"] for stage in ("original", "pruned")):
        faults_dir = workflow_copy / "results" / af / "rep0" / stage / "faults"
        faults = pd.read_csv(faults_dir / "fault_list.csv")
        outcomes = pd.read_csv(faults_dir / "outcomes.csv")
        assert outcomes["fault"].tolist() == faults["fault"].tolist()
        cells = pd.read_csv(faults_dir / "cells.csv")
        sets = pd.read_csv(faults_dir / "parameter_sets.csv")
        # sign / exponent bits 31, 30, 23 are cells; the mantissa bits 22, 7, 6, 0 one pooled unit
        # per set (faults.sampling.mantissa_population: set), whose one fault lands in one of them
        mantissa = cells["bit"] < 23
        assert len(cells) == 4 * len(sets) and (cells["n"] == 1).all()
        assert cells.loc[mantissa, "unit"].str.endswith(":mantissa").all() and (cells.loc[mantissa, "unit_bits"] == 4).all()
        assert sorted(cells.loc[~mantissa, "bit"].unique()) == [23, 30, 31]
        assert set(sets["kind"]) == {"kernel", "bias", "gamma", "beta"}
        assert ((outcomes["error_rate"] >= 0) & (outcomes["error_rate"] <= 100)).all()
        # the cells the figures read are the per-(set, bit) groupby of these outcomes
        per_cell = outcomes.groupby(["set", "bit"])["error_rate"].agg(["size", "mean"])
        got = cells.set_index(["set", "bit"]).loc[per_cell.index]
        assert len(got) == len(cells)
        assert got["n"].tolist() == per_cell["size"].tolist()
        assert got["error_rate"].to_numpy() == pytest.approx(per_cell["mean"].to_numpy(), abs=1e-9)
