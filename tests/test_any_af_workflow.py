"""Any Keras activation, end to end: the tiny DAG with `afs: [relu6, tanh]`, whose per-AF keys
come from `default` entries alone, builds every table and figure with their labels, and no job
of an AF it does not name."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import copy_workflow, run_snakemake, tiny_config, write_config
from hsiseu.io import read_json

pytestmark = pytest.mark.slow

AFS = ["relu6", "tanh"]
LABELS = ["ReLU6", "Tanh"]


@pytest.fixture(scope="module")
def any_af_run(tmp_path_factory):
    dest = copy_workflow(tmp_path_factory.mktemp("any_af") / "wf")
    cfg = tiny_config()
    cfg["afs"] = AFS
    cfg["replicates"] = 1  # the AFs are the point here; the shared tiny run covers replicates
    cfg["training"]["epochs"] = {"relu": 5, "default": 2}
    cfg["pruning"]["ratios"] = {"default": [0.5]}
    cfg["pruning"]["finetune"]["epochs"] = {"default": 1}
    proc = run_snakemake(dest, "--cores", "2", "--configfile", str(write_config(dest, cfg)), timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return dest, proc.stdout + proc.stderr


def test_every_table_names_the_configured_afs_in_their_order(any_af_run):
    wf, _ = any_af_run
    # per AF: the mean over replicates, its sd, then one column per replicate (one here)
    columns = [c for label in LABELS for c in (label, f"{label} sd", f"{label} rep0")]
    for name in ("table1_iou_float", "table3_iou_int8", "table4_deployment"):
        table = pd.read_csv(wf / f"reports/tables/{name}.csv", index_col=0)
        assert list(table.columns) == columns, name
    for name in ("table1_iou_float", "table3_iou_int8"):
        table = pd.read_csv(wf / f"reports/tables/{name}.csv", index_col=0)
        assert table.loc["Global", LABELS].between(0, 100).all()
    table2 = pd.read_csv(wf / "reports/tables/table2_complexity.csv", index_col=0)
    assert [c for c in table2.columns if c.endswith("pruned")] == [f"{label} pruned" for label in LABELS]


def test_the_defaults_are_what_the_models_were_trained_and_pruned_with(any_af_run):
    wf, _ = any_af_run
    for af in AFS:
        assert read_json(wf / f"results/{af}/rep0/original/metrics.json")["epochs"] == 2
        assert (wf / f"results/{af}/rep0/pruned/iter1/model.keras").exists()
        assert not (wf / f"results/{af}/rep0/pruned/iter2").exists()
        faults = read_json(wf / "reports/metrics/fault_error_rates.json")[af]
        assert list(faults) == ["rep0"] and set(faults["rep0"]) == {"original", "pruned", "quantized"}


def test_figures_follow_the_first_af_and_no_other_af_runs(any_af_run):
    wf, log = any_af_run
    for name in ("fig2_bitflip_heatmap_relu6_original", "fig7_bitflip_heatmap_relu6_quantized",
                 "fig3_mean_bitflip_error_original", "fig8_mean_bitflip_error_quantized",
                 "fig1_pruning_ratio_per_layer"):
        assert (wf / f"reports/figures/{name}.png").stat().st_size > 0, name
    assert sorted(p.name for p in (wf / "results").iterdir()) == ["data", *AFS]
    assert not re.search(r"af=(relu|sigmoid|hard_sigmoid)\b", log)
