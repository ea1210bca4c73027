"""The real workflow from training through pruning to Tables III and IV on a tiny config."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_snakemake, tiny_config, write_config
from hsiseu.io import read_json


@pytest.mark.slow
def test_table3_and_table4_are_built_from_trained_pruned_quantized_models(workflow_copy):
    cfg = tiny_config()
    cfg["afs"] = ["relu", "sigmoid"]
    cfg["pruning"]["sparsities"] = [0.3, 0.6]
    cfg["pruning"]["finetune"]["epochs"] = {"relu": 1, "sigmoid": 1, "hard_sigmoid": 1}
    cfg["quantization"].update(representative_samples=3, fps_repeats=2)
    # Force the recovery path to run, so that its before/after record is exercised too.
    cfg["quantization"]["recovery"] = {"method": "bias_correction", "min_drop": -100.0}
    config = write_config(workflow_copy, cfg)
    targets = ["reports/tables/table3_iou_int8.md", "reports/tables/table4_deployment.md"]
    proc = run_snakemake(workflow_copy, *targets, "--configfile", str(config), "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    table3 = pd.read_csv(workflow_copy / "reports/tables/table3_iou_int8.csv", index_col=0)
    assert list(table3.columns) == ["ReLU", "Sigmoid"]
    assert {"Road", "Global", "Weighted", "Agreement with float"} <= set(table3.index)
    for af in cfg["afs"]:
        m = read_json(workflow_copy / f"results/{af}/quantized/metrics.json")
        assert m["integer_only"] and (workflow_copy / f"results/{af}/quantized/model.tflite").stat().st_size > 0
        assert m["recovery"]["applied"] and set(m["recovery"]["before"]) == {"validation", "test"}
        assert table3.loc["Global", {"relu": "ReLU", "sigmoid": "Sigmoid"}[af]] == pytest.approx(
            m["test"]["global_iou"], abs=0.01)
    assert "LOGISTIC" in read_json(workflow_copy / "results/sigmoid/quantized/metrics.json")["ops"]
    table4 = pd.read_csv(workflow_copy / "reports/tables/table4_deployment.csv", index_col=0)
    assert table4.loc["Activation on the CPU (not on the DPU)", "Sigmoid"] == "LOGISTIC"
    assert table4.loc["Power (W), ours", "ReLU"] == "not measured"
    assert "Table III" in (workflow_copy / "reports/tables/table3_iou_int8.md").read_text()


def test_table3_and_table4_are_targets_of_their_own(workflow_copy):
    from test_workflow_dryrun import dry_run

    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", ["reports/tables/table3_iou_int8.md"])
    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", ["reports/tables/table4_deployment.md"])
