"""The real workflow on the tiny config: Table I and the data check come out of one real run."""

from __future__ import annotations

import pandas as pd
import pytest

from hsiseu.io import read_json

pytestmark = pytest.mark.slow


def test_real_run_produces_table1_with_classes_as_rows_and_afs_as_columns(tiny_run):
    wf, cfg = tiny_run
    table = pd.read_csv(wf / "reports/tables/table1_iou_float.csv", index_col=0)
    assert list(table.columns) == ["ReLU", "Sigmoid", "Hard Sigmoid"]
    assert list(table.index) == ["Road", "Marks", "Vegetation", "Sky", "Others", "Global", "Weighted"]
    for af, col in zip(cfg["afs"], table.columns):
        metrics = read_json(wf / f"results/{af}/rep0/original/metrics.json")
        assert table.loc["Global", col] == pytest.approx(metrics["test"]["global_iou"], abs=0.005)
        assert (wf / f"logs/train/{af}.log").read_text().count("val GIoU") == cfg["training"]["epochs"][af]
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
        assert set(iou[af]) == set(faults[af]) == {"original", "pruned", "quantized"}
