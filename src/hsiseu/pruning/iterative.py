"""One pruning iteration (select ratios, cut, fine-tune, judge) and the assembled pruned model.

Each iteration's ratio is a FLOPs reduction *of the model entering it*, so iterations compose
multiplicatively: overall = 1 - prod(1 - r_k). The paper's 0.5 then 0.5 is 0.75 overall, 0.4 then
0.2 is 0.52, 0.5 then 0.4 is 0.7. Iteration ``k`` reads the sensitivity curves of its own input
model (the previous iteration's fine-tuned slim model), which the workflow computes once and
caches; a backoff retry reuses them, since its input model is the same.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from hsiseu.io import atomic_path, read_json, write_json
from hsiseu.settings import per_af
from hsiseu.model import complexity
from hsiseu.pruning.acceptance import POLICIES, describe, judge
from hsiseu.pruning.groups import PRODUCERS, prunable_groups
from hsiseu.pruning.ratios import select_ratios
from hsiseu.pruning.surgery import masked, slim_model

__all__ = ["assemble_pruned", "composed_ratio", "layer_channels", "mask_vs_slim_difference", "prune_iteration"]

log = logging.getLogger(__name__)


def composed_ratio(ratios: Sequence[float]) -> float:
    """Overall FLOPs reduction of iterations that each cut the current model by ``r_k``."""
    return float(1.0 - np.prod([1.0 - float(r) for r in ratios]))


def layer_channels(model: keras.Model) -> dict[str, int]:
    """Output channels of every convolution, by name (names survive surgery)."""
    return {layer.name: int(layer.filters) for layer in model.layers if isinstance(layer, PRODUCERS)}


def mask_vs_slim_difference(model, groups, removal, slim, x: np.ndarray) -> float:
    """Largest absolute output difference between the masked and the slim model on ``x``."""
    with masked(model, groups, removal):
        y_masked = keras.ops.convert_to_numpy(model(x, training=False))
    y_slim = keras.ops.convert_to_numpy(slim(x, training=False))
    return float(np.max(np.abs(y_masked - y_slim)))


def _first_batch(config) -> np.ndarray:
    from hsiseu.training import split_dataset

    for x, _ in split_dataset(config, "validation"):
        return np.asarray(x)
    raise ValueError(f"validation split of {config['data']['root']} is empty")


def _finetune(model, config, af: str, seed: int, verbose: int) -> tuple[pd.DataFrame, int, float]:
    from hsiseu.training import fit, split_dataset

    ft = config["pruning"]["finetune"]
    epochs = int(per_af(config, "pruning.finetune.epochs", af))
    tcfg = config["training"]
    # Fine-tuning optimises the same loss as training did (same class weighting, if configured).
    extra = {"class_weighting": tcfg["class_weighting"]} if "class_weighting" in tcfg else {}
    t0 = time.perf_counter()
    if epochs == 0:
        return pd.DataFrame(), 0, 0.0
    history, best = fit(
        model,
        split_dataset(config, "training", shuffle=True, seed=seed),
        split_dataset(config, "validation"),
        epochs=epochs,
        learning_rate=float(ft["learning_rate"]),
        monitor=tcfg["monitor"],
        n_classes=int(config["model"]["n_classes"]),
        verbose=int(verbose),
        **extra,
    )
    return history, int(best), time.perf_counter() - t0


def prune_iteration(
    config: Mapping[str, Any],
    af: str,
    iteration: int,
    *,
    model_path: str | Path,
    sensitivity_path: str | Path,
    reference_metrics_path: str | Path,
    out_model: str | Path,
    out_ratios: str | Path,
    out_history: str | Path,
    out_summary: str | Path,
    threads: int | None = None,
    verbose: int = 2,
) -> dict[str, Any]:
    """Prune the model at ``model_path`` by this iteration's FLOPs target and fine-tune it
    (``verbose``: Keras's progress output, an argument so that changing it re-runs nothing).

    Judged against the original model's metrics (``reference_metrics_path``); a failing model
    stops the run (policy ``fail``), is kept with the failure recorded (``warn``), or the iteration
    is redone at a target smaller by ``backoff_step`` until it passes (``backoff``; target 0 keeps
    the input model, which passed the previous iteration).
    """
    from hsiseu.runtime import configure_tensorflow
    from hsiseu.training import evaluate_splits

    seed = int(config["seed"])
    configure_tensorflow(threads, seed)
    pcfg = config["pruning"]
    acc = pcfg["acceptance"]
    if acc["policy"] not in POLICIES:
        raise ValueError(f"pruning.acceptance.policy must be one of {POLICIES}, got {acc['policy']!r}")
    ratios = list(per_af(config, "pruning.ratios", af))
    if not 1 <= iteration <= len(ratios):
        raise ValueError(f"iteration {iteration} out of range: pruning.ratios.{af} has {len(ratios)} entries")
    target = float(ratios[iteration - 1])
    reference = read_json(reference_metrics_path)
    sensitivity = pd.read_csv(sensitivity_path)
    x_check = _first_batch(config)
    t_start = time.perf_counter()

    attempts: list[dict[str, Any]] = []
    while True:
        model = keras.saving.load_model(model_path)
        groups = prunable_groups(model)
        sel = select_ratios(model, groups, sensitivity, target, tolerance=float(pcfg["flops_tolerance"]))
        log.info(
            "%s iteration %d: target %.3f, threshold %.6g -> FLOPs reduction %.4f (%d -> %d)",
            af, iteration, target, sel.threshold, sel.reached, sel.before.flops, sel.after.flops,
        )
        if not sel.within_tolerance:
            log.warning(
                "%s iteration %d: FLOPs reduction %.4f is not within %.3f of the target %.3f (one "
                "channel is a coarse step in narrow layers)", af, iteration, sel.reached, sel.tolerance, target,
            )
        if sel.removal:
            slim = slim_model(model, groups, sel.removal)
            diff = mask_vs_slim_difference(model, groups, sel.removal, slim, x_check)
            history, best_epoch, ft_seconds = _finetune(slim, config, af, seed + iteration, verbose)
        else:
            slim, diff, history, best_epoch, ft_seconds = model, 0.0, pd.DataFrame(), 0, 0.0
        cost = complexity(slim)
        if cost != sel.after:
            raise RuntimeError(f"slim model cost {cost} differs from the predicted {sel.after}")
        reports = evaluate_splits(slim, config)
        verdict = judge(reference, reports, acc)
        log.info("%s iteration %d: %s", af, iteration, describe(verdict))
        attempts.append(
            {
                "target": target,
                "threshold": sel.threshold,
                "reached": sel.reached,
                "within_tolerance": sel.within_tolerance,
                "params_before": sel.before.params,
                "params_after": cost.params,
                "flops_before": sel.before.flops,
                "flops_after": cost.flops,
                "mask_vs_slim_max_abs_diff": diff,
                "finetune_epochs": int(per_af(config, "pruning.finetune.epochs", af)) if sel.removal else 0,
                "finetune_best_epoch": best_epoch,
                "finetune_seconds": round(ft_seconds, 2),
                "validation": {k: reports["validation"][k] for k in ("global_iou", "weighted_iou")},
                "test": {k: reports["test"][k] for k in ("global_iou", "weighted_iou")},
                "acceptance": verdict,
            }
        )
        if verdict["passed"] or acc["policy"] != "backoff" or target <= 0.0:
            break
        target = max(0.0, round(target - float(acc["backoff_step"]), 10))
        log.warning("%s iteration %d failed acceptance; backing off to target %.3f", af, iteration, target)

    final = attempts[-1]
    if final["acceptance"]["passed"]:
        outcome = "passed" if len(attempts) == 1 else "passed_after_backoff"
    elif acc["policy"] == "fail":
        raise RuntimeError(
            f"pruned {af} model (iteration {iteration}, FLOPs target {target}) fails the acceptance "
            f"criterion ({describe(final['acceptance'])}); set pruning.acceptance.policy to 'warn' "
            "or 'backoff', or lower pruning.ratios"
        )
    else:
        outcome = "failed_warned"
        log.warning("%s iteration %d keeps a model failing acceptance: %s", af, iteration, describe(final["acceptance"]))
    summary = {
        "af": af,
        "iteration": iteration,
        "requested_target": float(ratios[iteration - 1]),
        **{k: v for k, v in final.items() if k != "acceptance"},
        "acceptance": final["acceptance"],
        "outcome": outcome,
        "policy": acc["policy"],
        "attempts": attempts,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    with atomic_path(out_model) as tmp:
        slim.save(tmp)
    with atomic_path(out_ratios) as tmp:
        sel.table.to_csv(tmp, index=False)
    with atomic_path(out_history) as tmp:
        history.to_csv(tmp, index=False)
    write_json(out_summary, summary)
    return summary


def assemble_pruned(
    config: Mapping[str, Any],
    af: str,
    *,
    original_model_path: str | Path,
    reference_metrics_path: str | Path,
    iteration_models: Sequence[str | Path],
    iteration_summaries: Sequence[str | Path],
    out_model: str | Path,
    out_metrics: str | Path,
    out_layer_ratios: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """The last iteration's model as the pruned model, with its metrics and per-layer ratios."""
    from hsiseu.runtime import configure_tensorflow
    from hsiseu.training import evaluate_splits

    configure_tensorflow(threads, int(config["seed"]))
    if not iteration_models or len(iteration_models) != len(iteration_summaries):
        raise ValueError("need one summary per iteration model, and at least one iteration")
    original = keras.saving.load_model(original_model_path)
    models = [keras.saving.load_model(p) for p in iteration_models]
    final = models[-1]
    summaries = [read_json(p) for p in iteration_summaries]
    reference = read_json(reference_metrics_path)

    prunable = {g.producer for g in prunable_groups(original)}
    table = pd.DataFrame({"original": layer_channels(original)})
    table.insert(0, "prunable", [name in prunable for name in table.index])
    for k, m in enumerate(models, start=1):
        table[f"iter{k}"] = pd.Series(layer_channels(m))
    table["ratio"] = 1.0 - table[f"iter{len(models)}"] / table["original"]
    table.index.name = "layer"
    before, after = complexity(original), complexity(final)
    reports = evaluate_splits(final, config)
    verdict = judge(reference, reports, config["pruning"]["acceptance"])
    outcomes = [s["outcome"] for s in summaries]
    metrics = {
        "af": af,
        "stage": "pruned",
        "params": after.params,
        "flops": after.flops,
        **reports,
        "pruning": {
            "metric": config["pruning"]["metric"],
            "requested_targets": [s["requested_target"] for s in summaries],
            "targets": [s["target"] for s in summaries],
            "reached": [s["reached"] for s in summaries],
            "thresholds": [s["threshold"] for s in summaries],
            "requested_overall": composed_ratio([s["requested_target"] for s in summaries]),
            "target_overall": composed_ratio([s["target"] for s in summaries]),
            "reached_overall": 1.0 - after.flops / before.flops,
            "params_reduction": 1.0 - after.params / before.params,
            "original_params": before.params,
            "original_flops": before.flops,
            "mask_vs_slim_max_abs_diff": max(s["mask_vs_slim_max_abs_diff"] for s in summaries),
            "seconds": round(sum(s["seconds"] for s in summaries), 2),
            "iterations": [{k: v for k, v in s.items() if k != "attempts"} for s in summaries],
            "acceptance": {
                **verdict,
                "policy": config["pruning"]["acceptance"]["policy"],
                "iteration_outcomes": outcomes,
                "outcome": (
                    "failed_warned" if not verdict["passed"]
                    else "passed_after_backoff" if "passed_after_backoff" in outcomes else "passed"
                ),
            },
        },
    }
    with atomic_path(out_model) as tmp:
        shutil.copyfile(iteration_models[-1], tmp)
    with atomic_path(out_layer_ratios) as tmp:
        table.reset_index().to_csv(tmp, index=False)
    write_json(out_metrics, metrics)
    log.info(
        "%s pruned: FLOPs -%.1f%% (target -%.1f%%), params -%.1f%%; test GIoU %.2f -> %.2f, WIoU %.2f -> %.2f",
        af, 100 * metrics["pruning"]["reached_overall"], 100 * metrics["pruning"]["target_overall"],
        100 * metrics["pruning"]["params_reduction"], reference["test"]["global_iou"],
        reports["test"]["global_iou"], reference["test"]["weighted_iou"], reports["test"]["weighted_iou"],
    )
    return metrics
