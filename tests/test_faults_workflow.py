"""The fault-injection part of the DAG: figures are targets of their own, built by a real run."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_snakemake, tiny_config, write_config

TARGETS = (
    "reports/figures/fig2_bitflip_heatmap_relu_original.png",
    "reports/figures/fig3_mean_bitflip_error_original.png",
    "reports/figures/fig4_msb_minus_range_original.png",
)


@pytest.mark.slow
def test_fault_figures_build_from_a_tiny_real_campaign(workflow_copy):
    cfg = tiny_config()
    cfg["faults"].update(
        sampling={"error_margin": 0.25, "confidence": 0.95, "p": 0.5, "fixed_n": 1},
        bits=[31, 30, 23, 22, 0],
        test_images=1,
        shards=2,
        checkpoint_faults=16,
        batch_size=4,
    )
    path = write_config(workflow_copy, cfg)
    proc = run_snakemake(workflow_copy, "--cores", "2", *TARGETS, "--configfile", str(path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for target in TARGETS:
        assert (workflow_copy / target).stat().st_size > 1000
    for af in ("relu", "sigmoid", "hard_sigmoid"):
        faults_dir = workflow_copy / "results" / af / "original" / "faults"
        faults = pd.read_csv(faults_dir / "fault_list.csv")
        outcomes = pd.read_csv(faults_dir / "outcomes.csv")
        assert outcomes["fault"].tolist() == faults["fault"].tolist()
        cells = pd.read_csv(faults_dir / "cells.csv")
        sets = pd.read_csv(faults_dir / "parameter_sets.csv")
        assert len(cells) == 5 * len(sets) and (cells["n"] == 1).all()
        assert set(sets["kind"]) == {"kernel", "bias", "gamma", "beta"}
        assert ((outcomes["error_rate"] >= 0) & (outcomes["error_rate"] <= 100)).all()
