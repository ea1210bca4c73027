"""One pruning iteration end to end on a tiny model: outputs, self-check, and the three policies."""

from __future__ import annotations

import copy

import keras
import pandas as pd
import pytest

from conftest import tiny_config
from hsiseu.io import read_json, write_json
from hsiseu.model import build_unet, complexity
from hsiseu.pruning.groups import prunable_groups
from hsiseu.pruning.iterative import assemble_pruned, prune_iteration
from hsiseu.pruning.ratios import select_ratios
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
    # The tiny model's narrowest layers have 4 channels: no floor, unless a test sets one.
    cfg["pruning"]["acceptance"]["min_channels"] = 1
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


def test_fail_policy_stops_with_a_message_naming_af_iteration_drops_and_keys(setup, tmp_path):
    cfg, root = setup
    with pytest.raises(RuntimeError) as err:
        _iterate(cfg, root, tmp_path, policy="fail", min_global_iou=100.0)
    message = str(err.value)
    for part in ("pruning sigmoid, iteration 1", "global_iou drop", "weighted_iou drop",
                 "pruning.acceptance.max_drop", "pruning.acceptance.policy", "pruning.ratios.sigmoid",
                 "pruning.finetune.epochs.sigmoid", "pruning.acceptance.min_channels"):
        assert part in message, (part, message)
    assert not (tmp_path / "model.keras").exists()


def test_warn_policy_keeps_the_failing_model_and_records_it(setup, tmp_path):
    cfg, root = setup
    summary = _iterate(cfg, root, tmp_path, policy="warn", min_global_iou=100.0)
    assert summary["outcome"] == "failed_warned" and not summary["acceptance"]["passed"]
    assert summary["n_attempts"] == 1 and summary["target"] == summary["requested_target"]
    assert (tmp_path / "model.keras").exists()


def _flops_judged(monkeypatch, root, points_per_unit):
    """Validation IoUs that drop by ``points_per_unit`` x the FLOPs reduction of the judged model:
    a stub judge whose passing targets are known, on the real pruning and surgery."""
    import hsiseu.training

    real = hsiseu.training.evaluate_splits
    reference = read_json(root / "original.json")
    original_flops = complexity(keras.saving.load_model(root / "original.keras")).flops

    def fake(model, config, *args, **kwargs):
        reports = real(model, config, *args, **kwargs)
        drop = points_per_unit * (1.0 - complexity(model).flops / original_flops)
        for metric in ("global_iou", "weighted_iou"):
            reports["validation"][metric] = reference["validation"][metric] - drop
        return reports

    monkeypatch.setattr(hsiseu.training, "evaluate_splits", fake)


def _reached(cfg, root, target):
    model = keras.saving.load_model(root / "original.keras")
    sel = select_ratios(model, prunable_groups(model), pd.read_csv(root / "sens.csv"), target, tolerance=0.05)
    return sel.reached


@pytest.mark.parametrize("refine", [False, True])
def test_backoff_keeps_the_largest_passing_target_within_its_attempts(setup, tmp_path, monkeypatch, refine):
    cfg, root = setup
    cfg = copy.deepcopy(cfg)
    cfg["pruning"]["ratios"]["sigmoid"] = [0.6]  # then 0.3 and, refining, 0.45
    low, high = _reached(cfg, root, 0.3), _reached(cfg, root, 0.45)
    assert low < high <= _reached(cfg, root, 0.6)
    # The drop grows with the FLOPs reduction so that exactly the reductions up to the midpoint of
    # those of targets 0.3 and 0.45 pass: 0.6 fails, 0.3 passes, 0.45 fails.
    _flops_judged(monkeypatch, root, 2.5 / (0.5 * (low + high)))
    # (one fine-tuning epoch where the kept attempt is not the last: the costlier case)
    epochs = 1 if refine else 0
    summary = _iterate(cfg, root, tmp_path, epochs=epochs, policy="backoff", max_drop=2.5, backoff_step=0.05,
                       max_attempts=3, backoff_refine=refine)
    attempts = summary["attempts"]
    assert [a["target"] for a in attempts] == ([0.6, 0.3, 0.45] if refine else [0.6, 0.3])
    assert [a["passed"] for a in attempts] == ([False, True, False] if refine else [False, True])
    assert summary["n_attempts"] == len(attempts) and summary["finetunes"] == epochs * len(attempts)
    assert summary["requested_target"] == 0.6
    # The kept model is the largest passing target's (attempt 2), not the last attempt's.
    best = attempts[1]
    assert summary["target"] == 0.3 and summary["reached"] == best["reached"] and summary["kept_attempt"] == 2
    assert summary["outcome"] == "passed_after_backoff" and summary["acceptance"]["passed"]
    assert complexity(keras.saving.load_model(tmp_path / "model.keras")).flops == best["flops_after"]
    assert pd.read_csv(tmp_path / "ratios.csv")["removed"].sum() == best["removed_channels"]
    if epochs:
        history = pd.read_csv(tmp_path / "history.csv")  # every fine-tune's epochs, the kept one marked
        assert list(history["attempt"]) == list(range(1, len(attempts) + 1))
        assert list(history["kept"]) == [i == 2 for i in range(1, len(attempts) + 1)]


def test_backoff_that_finds_no_passing_target_fails_after_max_attempts(setup, tmp_path, monkeypatch):
    cfg, root = setup
    _flops_judged(monkeypatch, root, 1000.0)  # every pruned model fails
    with pytest.raises(RuntimeError) as err:
        _iterate(cfg, root, tmp_path, policy="backoff", backoff_step=0.05, max_attempts=3)
    message = str(err.value)
    assert "in 3 attempts" in message and message.count("target 0.") == 3
    assert "pruning.acceptance.max_attempts (3)" in message
    assert not (tmp_path / "model.keras").exists()


def test_backoff_after_iteration_1_ends_with_the_entering_model_when_no_target_passes(setup, tmp_path, monkeypatch):
    cfg, root = setup
    cfg = copy.deepcopy(cfg)
    cfg["pruning"]["ratios"]["sigmoid"] = [0.3, 0.3]
    cfg["pruning"]["finetune"]["epochs"]["sigmoid"] = 0
    cfg["pruning"]["acceptance"].update(policy="backoff", backoff_step=0.05, max_attempts=2)
    _flops_judged(monkeypatch, root, 1000.0)  # every pruned model fails; the unpruned one passes
    # the original stands in for iteration 1's (passing) model
    summary = prune_iteration(
        cfg, "sigmoid", 2, model_path=root / "original.keras", sensitivity_path=root / "sens.csv",
        reference_metrics_path=root / "original.json", out_model=tmp_path / "model.keras",
        out_ratios=tmp_path / "ratios.csv", out_history=tmp_path / "history.csv",
        out_summary=tmp_path / "summary.json",
    )
    assert [a["target"] for a in summary["attempts"]] == [0.3, 0.15, 0.0]
    assert [a["passed"] for a in summary["attempts"]] == [False, False, True]
    assert summary["outcome"] == "kept_entering_model" and summary["target"] == 0.0
    assert summary["acceptance"]["passed"] and summary["removed_channels"] == 0
    kept, entering = (keras.saving.load_model(p) for p in (tmp_path / "model.keras", root / "original.keras"))
    assert complexity(kept) == complexity(entering)
    assert all((a == b).all() for a, b in zip(kept.get_weights(), entering.get_weights()))
    # iteration 1 has no passing model to fall back on: it still fails (the test above)


def test_channel_floor_holds_in_the_written_model(setup, tmp_path):
    cfg, root = setup
    summary = _iterate(cfg, root, tmp_path, policy="warn", min_channels=3)
    slim = keras.saving.load_model(tmp_path / "model.keras")
    original = keras.saving.load_model(root / "original.keras")
    ratios = pd.read_csv(tmp_path / "ratios.csv")
    for row in ratios.itertuples():
        assert slim.get_layer(row.layer).filters >= min(3, original.get_layer(row.layer).filters)
    assert summary["min_channels"] == 3 and summary["min_kept_channels"] >= 3
