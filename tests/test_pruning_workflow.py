"""The pruning rules run for real in a copy of the workflow, through Figure 1 and Table II."""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest

from conftest import run_snakemake, write_config
from hsiseu.activations import af_label
from hsiseu.pruning.iterative import composed_ratio
from hsiseu.settings import per_af

TARGETS = ("reports/figures/fig1_pruning_ratio_per_layer.png", "reports/tables/table2_complexity.md")


def _jobs(dry_run_output: str) -> set[str]:
    return set(re.findall(r"^rule (\w+):", dry_run_output, flags=re.M)) | set(
        re.findall(r"^localrule (\w+):", dry_run_output, flags=re.M)
    )


@pytest.mark.slow
def test_tiny_workflow_prunes_every_af_and_draws_fig1_and_table2(tiny_run):
    workflow_copy, cfg = tiny_run

    for af in cfg["afs"]:
        pruned = workflow_copy / "results" / af / "rep0" / "pruned"
        metrics = json.loads((pruned / "metrics.json").read_text())
        original = json.loads((workflow_copy / "results" / af / "rep0" / "original" / "metrics.json").read_text())
        assert {"validation", "test"} <= set(metrics) and set(original["test"]) == set(metrics["test"])
        assert metrics["flops"] < original["flops"] and metrics["params"] < original["params"]
        info = metrics["pruning"]
        ratios = per_af(cfg, "pruning.ratios", af)
        assert len(info["iterations"]) == len(ratios)
        assert info["reached_overall"] == pytest.approx(1 - metrics["flops"] / original["flops"])
        assert info["mask_vs_slim_max_abs_diff"] < 1e-5
        assert info["acceptance"]["outcome"] in {"passed", "passed_after_backoff", "kept_entering_model", "failed_warned"}
        n = len(info["iterations"])
        assert len(info["requested_targets"]) == len(info["reached"]) == len(info["attempts"]) == n
        assert info["requested_overall"] == pytest.approx(composed_ratio(ratios))
        for k in range(1, len(info["iterations"]) + 1):
            for name in ("sensitivity.csv", "ratios.csv", "history.csv", "summary.json", "model.keras"):
                assert (pruned / f"iter{k}" / name).exists()
        ratios = pd.read_csv(pruned / "layer_ratios.csv")
        assert ((ratios["ratio"] >= 0) & (ratios["ratio"] < 1)).all()

    assert (workflow_copy / TARGETS[0]).stat().st_size > 10_000
    table = pd.read_csv(workflow_copy / "reports/tables/table2_complexity.csv", index_col=0)
    # per model: the mean over replicates, then "<model> sd" and "<model> rep<r>" columns
    means = [c for c in table.columns if not c.endswith(" sd") and not re.search(r" rep\d+$", c)]
    assert means == ["Original", *(f"{af_label(af)} pruned" for af in cfg["afs"])]
    assert (table.loc["Params (M)", means[1:]] < table.loc["Params (M)", "Original"]).all()
    params = table.loc["Params (M)", means].astype(float)
    assert table.loc["Memory (MB)", means].astype(float).tolist() == pytest.approx((params * 8).tolist(), abs=1e-3)

    # The sensitivity analysis is cached: changing the fine-tuning redoes the iterations only.
    cfg = copy.deepcopy(cfg)
    cfg["pruning"]["finetune"]["epochs"]["relu"] = 2
    path = write_config(workflow_copy, cfg, "edited_finetune.yaml")
    proc = run_snakemake(workflow_copy, *TARGETS, "-n", "--configfile", str(path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(proc.stdout + proc.stderr)
    assert "prune_iteration" in jobs
    text = proc.stdout + proc.stderr
    assert not any("iter1/sensitivity.csv" in out for out in re.findall(r"output: ([^\n]+)", text))
