"""The real workflow on the tiny config: Table I and the data check come out of one real run."""

from __future__ import annotations

import pandas as pd
import pytest

from hsiseu.activations import af_label
from hsiseu.io import read_json
from hsiseu.settings import per_af

pytestmark = pytest.mark.slow


def test_real_run_produces_table1_with_classes_as_rows_and_afs_as_columns_over_replicates(tiny_run):
    wf, cfg = tiny_run
    table = pd.read_csv(wf / "reports/tables/table1_iou_float.csv", index_col=0)
    reps = range(cfg["replicates"])
    labels = [af_label(af) for af in cfg["afs"]]
    assert labels == ["Tanh", "ReLU", "Sigmoid"]
    assert list(table.columns) == [c for label in labels for c in (label, f"{label} sd", *(f"{label} rep{r}" for r in reps))]
    assert list(table.index) == ["Road", "Marks", "Vegetation", "Sky", "Others", "Global", "Weighted"]
    for af, col in zip(cfg["afs"], labels):
        per_rep = [read_json(wf / f"results/{af}/rep{r}/original/metrics.json")["test"]["global_iou"] for r in reps]
        for r, value in zip(reps, per_rep):
            assert table.loc["Global", f"{col} rep{r}"] == pytest.approx(value, abs=0.005)
        assert table.loc["Global", col] == pytest.approx(sum(per_rep) / len(per_rep), abs=0.005)
        for r in reps:
            log = (wf / f"logs/train/{af}/rep{r}.log").read_text()
            assert log.count("val GIoU") == per_af(cfg, "training.epochs", af)
    assert "| Road |" in (wf / "reports/tables/table1_iou_float.md").read_text()


def test_real_run_checks_the_data_and_counts_its_classes(tiny_run):
    wf, cfg = tiny_run
    summary = read_json(wf / "results/data/summary.json")
    syn = cfg["data"]["synthetic"]
    assert summary["input_shape"] == [syn["height"], syn["width"], 25]
    assert summary["splits"]["training"]["images"] == syn["n_train"]


def test_metrics_summary_lists_every_model(tiny_run):
    wf, cfg = tiny_run
    iou = read_json(wf / "reports/metrics/iou.json")
    faults = read_json(wf / "reports/metrics/fault_error_rates.json")
    for af in cfg["afs"]:
        assert set(iou[af]) == set(faults[af]) == {f"rep{r}" for r in range(cfg["replicates"])}
        for rep in iou[af]:
            assert set(iou[af][rep]) == set(faults[af][rep]) == {"original", "pruned", "quantized"}
