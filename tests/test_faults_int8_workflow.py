"""The int8 campaign in the DAG: train -> prune -> quantize -> faults -> Figs. 7 and 8."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import TINY_FAULT_BITS

FIG7 = "reports/figures/fig7_bitflip_heatmap_relu_quantized.png"
FIG8 = "reports/figures/fig8_mean_bitflip_error_quantized.png"


def test_fig7_and_fig8_are_targets_of_their_own_and_run_the_quantized_campaign(workflow_copy):
    from test_workflow_dryrun import dry_run

    for target in (FIG7, FIG8):
        dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", [target])


@pytest.mark.slow
def test_fig7_and_fig8_build_from_a_tiny_real_int8_campaign(tiny_run):
    workflow_copy, cfg = tiny_run
    for target in (FIG7, FIG8):
        assert (workflow_copy / target).stat().st_size > 1000
    for af in ("relu", "sigmoid", "hard_sigmoid"):
        faults_dir = workflow_copy / "results" / af / "quantized" / "faults"
        faults = pd.read_csv(faults_dir / "fault_list.csv")
        outcomes = pd.read_csv(faults_dir / "outcomes.csv")
        assert outcomes["fault"].tolist() == faults["fault"].tolist()
        sets = pd.read_csv(faults_dir / "parameter_sets.csv")
        assert set(sets["kind"]) == {"kernel", "bias"} and set(sets["dtype"]) == {"int8", "int32"}
        cells = pd.read_csv(faults_dir / "cells.csv")
        # bits above 7 exist only in the int32 biases; 7, 6, 0 in both.
        per_kind = cells.groupby("kind")["bit"].apply(lambda b: sorted(set(b)))
        assert per_kind["kernel"] == [0, 6, 7] and per_kind["bias"] == sorted(TINY_FAULT_BITS)
        assert ((outcomes["error_rate"] >= 0) & (outcomes["error_rate"] <= 100)).all()
