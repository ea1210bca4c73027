"""The int8 campaign in the DAG: train -> prune -> quantize -> faults -> Figs. 7 and 8."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import TINY_FAULT_BITS

#: Fig. 7 is the first AF's (relu in config/config.yaml)
FIG7 = "reports/figures/fig7_bitflip_heatmap_{af}_quantized.png"
FIG8 = "reports/figures/fig8_mean_bitflip_error_quantized.png"


def test_fig7_and_fig8_are_targets_of_their_own_and_run_the_quantized_campaign(workflow_copy):
    from test_workflow_dryrun import dry_run

    for target in (FIG7.format(af="relu"), FIG8):
        dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", [target])


@pytest.mark.slow
def test_fig7_and_fig8_build_from_a_tiny_real_int8_campaign(tiny_run):
    workflow_copy, cfg = tiny_run
    for target in (FIG7.format(af=cfg["afs"][0]), FIG8):
        assert (workflow_copy / target).stat().st_size > 1000
    for af in cfg["afs"]:
        faults_dir = workflow_copy / "results" / af / "rep0" / "quantized" / "faults"
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


@pytest.mark.slow
def test_an_adaptive_campaign_runs_through_the_dag_and_only_its_faults_are_listed_as_run(tiny_run, tmp_path):
    """faults.sampling.method: adaptive through Snakemake: list -> shards owning units round by
    round -> merge (audited) -> faults_run.csv and cells with intervals -> Fig 7 (in a copy of
    the shared run, whose other tests expect its own config's results)."""
    import copy
    import shutil

    from conftest import run_snakemake, write_config

    shared, cfg = tiny_run
    workflow_copy = tmp_path / "wf"
    shutil.copytree(shared, workflow_copy, symlinks=True)
    cfg = copy.deepcopy(cfg)
    cfg["faults"]["sampling"].update(method="adaptive", error_margin=0.1, fixed_n=None)
    cfg["faults"]["bits"] = [7, 31, 30]
    cfg["faults"]["engine"] = "fast"  # the default engine through the DAG
    path = write_config(workflow_copy, cfg, "adaptive.yaml")
    fig7 = FIG7.format(af=cfg["afs"][0])
    proc = run_snakemake(workflow_copy, fig7, "--cores", "2", "--configfile", str(path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    faults_dir = workflow_copy / "results" / cfg["afs"][0] / "rep0" / "quantized" / "faults"
    listed = pd.read_csv(faults_dir / "fault_list.csv")
    run = pd.read_csv(faults_dir / "faults_run.csv")
    assert {"unit", "rank"} <= set(listed.columns) and len(run) < len(listed)
    assert sorted(pd.read_csv(faults_dir / "outcomes.csv")["fault"]) == run["fault"].tolist()
    cells = pd.read_csv(faults_dir / "cells.csv")
    assert ((cells["error_rate_high"] - cells["error_rate_low"]) / 2 <= 10 + 1e-9).all()
    assert (workflow_copy / fig7).stat().st_size > 1000
