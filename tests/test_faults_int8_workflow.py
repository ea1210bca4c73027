"""The int8 campaign in the DAG: train -> prune -> quantize -> faults -> Figs. 7 and 8."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_snakemake, tiny_config, write_config

FIG7 = "reports/figures/fig7_bitflip_heatmap_relu_quantized.png"
FIG8 = "reports/figures/fig8_mean_bitflip_error_quantized.png"


def test_fig7_and_fig8_are_targets_of_their_own_and_run_the_quantized_campaign(workflow_copy):
    from test_workflow_dryrun import dry_run

    for target in (FIG7, FIG8):
        dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", [target])


@pytest.mark.slow
def test_fig7_and_fig8_build_from_a_tiny_real_int8_campaign(workflow_copy):
    cfg = tiny_config()
    cfg["pruning"]["sparsities"] = [0.3, 0.6]
    cfg["pruning"]["finetune"]["epochs"] = {"relu": 1, "sigmoid": 1, "hard_sigmoid": 1}
    cfg["quantization"].update(representative_samples=3, fps_repeats=2)
    cfg["faults"].update(
        sampling={"error_margin": 0.25, "confidence": 0.95, "p": 0.5, "fixed_n": 1},
        bits=[31, 30, 7, 6, 0],
        test_images=1,
        shards=2,
        checkpoint_faults=16,
        batch_size=4,
    )
    path = write_config(workflow_copy, cfg)
    proc = run_snakemake(workflow_copy, FIG7, FIG8, "--cores", "2", "--configfile", str(path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
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
        # bits 31, 30 exist only in the int32 biases; 7, 6, 0 in both.
        per_kind = cells.groupby("kind")["bit"].apply(lambda b: sorted(set(b)))
        assert per_kind["kernel"] == [0, 6, 7] and per_kind["bias"] == [0, 6, 7, 30, 31]
        assert ((outcomes["error_rate"] >= 0) & (outcomes["error_rate"] <= 100)).all()
