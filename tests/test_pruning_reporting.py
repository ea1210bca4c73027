"""Figure 1 and Table II read the pruning's result files and show them in the paper's shape."""

from __future__ import annotations

import pandas as pd
import pytest

from hsiseu.io import write_json
from hsiseu.reporting.tables import complexity_table, complexity_table_from_files
from hsiseu.reporting.pruning_figures import layer_ratio_frame, plot_layer_ratios


def test_table2_memory_is_the_papers_params_times_8_bytes():
    table = complexity_table({"Original": (31_130_000, 34_590_000_000, 124_600_000)})
    assert table.loc["Memory (MB)", "Original"] == pytest.approx(249.04)
    assert table.loc["Params (M)", "Original"] == pytest.approx(31.13)
    assert table.loc["OPS (G)", "Original"] == pytest.approx(34.59)
    assert table.loc["File size (MB)", "Original"] == pytest.approx(124.6)


def _files(tmp_path, name, params, flops, size):
    write_json(tmp_path / f"{name}.json", {"params": params, "flops": flops})
    (tmp_path / f"{name}.keras").write_bytes(b"x" * size)
    return tmp_path / f"{name}.json", tmp_path / f"{name}.keras"


def test_table2_has_one_original_column_for_a_shared_architecture(tmp_path):
    original = {af: _files(tmp_path, f"o_{af}", 1000, 5000, 40 + i) for i, af in enumerate(["relu", "sigmoid"])}
    pruned = {"relu": _files(tmp_path, "p_relu", 100, 900, 10), "sigmoid": _files(tmp_path, "p_sig", 300, 2000, 20)}
    table = complexity_table_from_files(original, pruned)
    assert list(table.columns) == ["Original", "ReLU pruned", "Sigmoid pruned"]
    assert table.loc["File size (MB)", "Sigmoid pruned"] == pytest.approx(20e-6, abs=1e-6)
    # Different originals (not the case for the paper's U-Net) each get their own column.
    original["sigmoid"] = _files(tmp_path, "o_other", 2000, 5000, 40)
    assert list(complexity_table_from_files(original, pruned).columns)[:2] == ["Original ReLU", "Original Sigmoid"]


def _ratios(tmp_path, af, values):
    layers = ["cnv_1", "tcnv_1", "cnv_2", "cnv_out"]
    path = tmp_path / f"{af}.csv"
    pd.DataFrame(
        {"layer": layers, "prunable": [True, True, True, False], "original": 8, "ratio": [*values, 0.0]}
    ).to_csv(path, index=False)
    return path


def test_fig1_shows_prunable_layers_in_graph_order_one_series_per_af_and_replicate(tmp_path):
    paths = {"relu": {0: _ratios(tmp_path, "relu", [0.5, 0.25, 0.75]), 1: _ratios(tmp_path, "relu1", [0.5, 0.5, 0.5])},
             "sigmoid": {0: _ratios(tmp_path, "sigmoid", [0.1, 0.2, 0.3])}}
    frame = layer_ratio_frame(paths)
    assert list(frame["layer"].cat.categories) == ["cnv_1", "tcnv_1", "cnv_2"]
    assert set(frame["af"]) == {"ReLU", "Sigmoid"}
    assert frame.set_index(["layer", "af", "rep"]).loc[("cnv_2", "ReLU", 0), "ratio"] == 0.75
    assert len(frame) == 9
    metrics = {af: {r: tmp_path / f"m_{af}{r}.json" for r in reps} for af, reps in paths.items()}
    for af, by_rep in metrics.items():
        for r, p in by_rep.items():
            write_json(p, {"pruning": {"reached_overall": 0.6 + 0.1 * r}})
    out = tmp_path / "fig1.png"
    plot_layer_ratios(paths, metrics, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
