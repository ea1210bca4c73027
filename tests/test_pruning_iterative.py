"""One pruning iteration end to end on a tiny model: outputs, self-check, and the three policies."""

from __future__ import annotations

import copy

import keras
import pandas as pd
import pytest

from conftest import tiny_config
from hsiseu.io import read_json, write_json
from hsiseu.model import build_unet, complexity
from hsiseu.pruning.iterative import assemble_pruned, prune_iteration
from hsiseu.pruning.sensitivity import run_sensitivity
from hsiseu.settings import model_kwargs
from hsiseu.synthetic import generate_dataset
from hsiseu.runtime import configure_tensorflow
from hsiseu.training import evaluate_splits


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    configure_tensorflow(threads=2, seed=0)
    root = tmp_path_factory.mktemp("prune")
    cfg = tiny_config()
    cfg["data"]["root"] = str(root / "data")
    generate_dataset(cfg["data"]["root"], **cfg["data"]["synthetic"])
    cfg["pruning"]["flops_tolerance"] = 0.05
    model = build_unet(**model_kwargs(cfg, "sigmoid"))
    model.save(root / "original.keras")
    write_json(root / "original.json", {"params": complexity(model).params, **evaluate_splits(model, cfg)})
    run_sensitivity(cfg, "sigmoid", model_path=root / "original.keras", out_csv=root / "sens.csv")
    return cfg, root


def _iterate(cfg, root, out, epochs=0, **acceptance):
    """One iteration; without fine-tuning unless asked, which is what the policies are about."""
    cfg = copy.deepcopy(cfg)
    cfg["pruning"]["finetune"]["epochs"]["sigmoid"] = epochs
    cfg["pruning"]["acceptance"].update(acceptance)
    return prune_iteration(
        cfg, "sigmoid", 1,
        model_path=root / "original.keras", sensitivity_path=root / "sens.csv",
        reference_metrics_path=root / "original.json",
        out_model=out / "model.keras", out_ratios=out / "ratios.csv",
        out_history=out / "history.csv", out_summary=out / "summary.json",
    )


def test_iteration_writes_a_smaller_fine_tuned_model_and_its_record(setup, tmp_path):
    cfg, root = setup
    summary = _iterate(cfg, root, tmp_path, epochs=1, policy="warn")
    slim = keras.saving.load_model(tmp_path / "model.keras")
    original = keras.saving.load_model(root / "original.keras")
    assert complexity(slim).flops == summary["flops_after"] < complexity(original).flops
    assert abs(summary["reached"] - cfg["pruning"]["ratios"]["sigmoid"][0]) <= 0.05
    assert summary["mask_vs_slim_max_abs_diff"] < 1e-5
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1
    ratios = pd.read_csv(tmp_path / "ratios.csv")
    for row in ratios.itertuples():
        assert slim.get_layer(row.layer).filters == row.kept
    assert read_json(tmp_path / "summary.json")["outcome"] in {"passed", "failed_warned"}

    # Assembling a one-iteration run: per-layer ratios and metrics in the original's shape.
    out = tmp_path / "final"
    metrics = assemble_pruned(
        dict(cfg, pruning=dict(cfg["pruning"], ratios={"sigmoid": cfg["pruning"]["ratios"]["sigmoid"][:1]})),
        "sigmoid",
        original_model_path=root / "original.keras", reference_metrics_path=root / "original.json",
        iteration_models=[tmp_path / "model.keras"], iteration_summaries=[tmp_path / "summary.json"],
        out_model=out / "model.keras", out_metrics=out / "metrics.json", out_layer_ratios=out / "ratios.csv",
    )
    assert {"validation", "test", "params", "flops", "pruning"} <= set(metrics)
    assert metrics["pruning"]["reached_overall"] == pytest.approx(summary["reached"])
    layer_ratios = pd.read_csv(out / "ratios.csv").set_index("layer")
    assert layer_ratios.loc["cnv_out", "ratio"] == 0 and not layer_ratios.loc["cnv_out", "prunable"]
    merged = ratios.set_index("layer")["ratio"]
    pd.testing.assert_series_equal(layer_ratios.loc[merged.index, "ratio"], merged, check_names=False)


def test_fail_policy_stops_on_a_model_below_the_floor(setup, tmp_path):
    cfg, root = setup
    with pytest.raises(RuntimeError, match="acceptance"):
        _iterate(cfg, root, tmp_path, policy="fail", min_global_iou=100.0)
    assert not (tmp_path / "model.keras").exists()


def test_warn_policy_keeps_the_failing_model_and_records_it(setup, tmp_path):
    cfg, root = setup
    summary = _iterate(cfg, root, tmp_path, policy="warn", min_global_iou=100.0)
    assert summary["outcome"] == "failed_warned" and not summary["acceptance"]["passed"]
    assert (tmp_path / "model.keras").exists()


def test_backoff_lowers_the_target_until_the_model_passes(setup, tmp_path):
    cfg, root = setup
    # No drop at all is allowed: only targets whose pruned model does not lose validation
    # Global/Weighted IoU pass, at the latest target 0 (the unpruned input model).
    summary = _iterate(cfg, root, tmp_path, policy="backoff", max_drop=0.0, backoff_step=0.25)
    targets = [a["target"] for a in summary["attempts"]]
    first = cfg["pruning"]["ratios"]["sigmoid"][0]
    assert targets == [max(0.0, round(first - 0.25 * i, 10)) for i in range(len(targets))]
    assert all(not a["acceptance"]["passed"] for a in summary["attempts"][:-1])
    assert summary["acceptance"]["passed"]
    assert summary["outcome"] == ("passed" if len(targets) == 1 else "passed_after_backoff")
    if summary["target"] == 0.0:
        assert complexity(keras.saving.load_model(tmp_path / "model.keras")).flops == summary["flops_before"]
