"""The real workflow from training through pruning to Tables III and IV on a tiny config."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from hsiseu.activations import af_label
from hsiseu.io import read_json


@pytest.mark.slow
def test_table3_and_table4_are_built_from_trained_pruned_quantized_models(tiny_run):
    workflow_copy, cfg = tiny_run
    assert cfg["quantization"]["recovery"]["min_drop"] < 0  # recovery forced on in the tiny config

    table3 = pd.read_csv(workflow_copy / "reports/tables/table3_iou_int8.csv", index_col=0)
    means = [c for c in table3.columns if not re.search(r" (sd|rep\d+)$", c)]  # beside: sd and rep<r> columns
    assert means == [af_label(af) for af in cfg["afs"]]
    assert {"Road", "Global", "Weighted", "Agreement with float"} <= set(table3.index)
    for af in cfg["afs"]:
        m = read_json(workflow_copy / f"results/{af}/rep0/quantized/metrics.json")
        assert m["integer_only"] and (workflow_copy / f"results/{af}/rep0/quantized/model.tflite").stat().st_size > 0
        assert m["recovery"]["applied"] and set(m["recovery"]["before"]) == {"validation", "test"}
        assert table3.loc["Global", f"{af_label(af)} rep0"] == pytest.approx(m["test"]["global_iou"], abs=0.01)
    assert "LOGISTIC" in read_json(workflow_copy / "results/sigmoid/rep0/quantized/metrics.json")["ops"]
    table4 = pd.read_csv(workflow_copy / "reports/tables/table4_deployment.csv", index_col=0)
    assert table4.loc["Activation on the CPU (not on the DPU)", "Sigmoid"] == "LOGISTIC"
    assert table4.loc["Power (W), ours", "ReLU"] == "not measured"
    md = (workflow_copy / "reports/tables/table3_iou_int8.md").read_text()
    assert "Table III" in md and f"{cfg['quantization']['kernels']} kernels" in md
    for af in cfg["afs"]:
        assert read_json(workflow_copy / f"results/{af}/rep0/quantized/metrics.json")["kernels"] == cfg["quantization"]["kernels"]
        assert read_json(workflow_copy / f"results/{af}/rep0/quantized/throughput.json")["kernels"] == cfg["quantization"]["kernels"]

    # Another kernel choice redoes every int8 result, and nothing of the float models.
    import copy

    from conftest import run_snakemake, write_config

    other = copy.deepcopy(cfg)
    other["quantization"]["kernels"] = "builtin" if cfg["quantization"]["kernels"] == "xnnpack" else "xnnpack"
    path = write_config(workflow_copy, other, "other_kernels.yaml")
    proc = run_snakemake(workflow_copy, "-n", "--configfile", str(path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", text, flags=re.M))
    assert {"quantize", "throughput", "table3", "table4", "fault_shard"} <= jobs
    assert not {"train", "prune_iteration"} & jobs
    outputs = re.findall(r"output: ([^\n]+)", text)
    shards = [o for o in outputs if "/faults/shards/" in o]
    assert shards and all("/quantized/" in o for o in shards)


def test_table3_and_table4_are_targets_of_their_own(workflow_copy):
    from test_workflow_dryrun import dry_run

    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", ["reports/tables/table3_iou_int8.md"])
    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", ["reports/tables/table4_deployment.md"])
