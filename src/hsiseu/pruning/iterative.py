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
from hsiseu.pruning.acceptance import POLICIES, describe, judge, margin
from hsiseu.pruning.finetune import finetune
from hsiseu.pruning.groups import PRODUCERS, prunable_groups
from hsiseu.pruning.ratios import select_ratios
from hsiseu.pruning.search import best_passing, next_target
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


def _removal_key(removal) -> tuple:
    return tuple(sorted((name, tuple(int(i) for i in idx)) for name, idx in removal.items()))


def _min_kept(sel) -> int | None:
    """Fewest channels any prunable layer keeps in a selection (None without prunable layers)."""
    return int(sel.table["kept"].min()) if len(sel.table) else None


def _drops(verdict) -> str:
    return ", ".join(f"{m} drop {c['drop']:+.2f}" for m, c in verdict["checks"].items())


def _failure_message(af, iteration, requested, attempts, acc, policy) -> str:
    tried = "; ".join(
        f"target {a['target']:.3f} (reached {a['reached']:.3f}): "
        + (_drops(a["acceptance"]) if a["removed_channels"] else "nothing removed")
        for a in attempts
    )
    split, max_drop = acc["split"], acc["max_drop"]
    if policy == "backoff":
        head = (
            f"pruning {af}, iteration {iteration}: no FLOPs target up to the requested {requested:.3f} "
            f"gave a model passing the acceptance rule in {len(attempts)} attempts"
        )
        keys = (
            f"pruning.acceptance.max_attempts ({acc['max_attempts']}), "
            f"pruning.acceptance.backoff_step ({acc['backoff_step']}), "
        )
    else:
        head = (
            f"pruning {af}, iteration {iteration}: the model at FLOPs target {requested:.3f} fails "
            "the acceptance rule"
        )
        keys = "pruning.acceptance.policy (backoff searches a smaller target), "
    return (
        f"{head} ({split} Global and Weighted IoU drop <= {max_drop:g} points vs the original; "
        f"{tried}). Config keys: {keys}pruning.acceptance.max_drop ({max_drop:g}), "
        f"pruning.acceptance.min_channels ({acc.get('min_channels', 1)}), "
        f"pruning.finetune.epochs.{af}, pruning.ratios.{af}; pruning.acceptance.policy: warn keeps "
        "a failing model"
    )


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

    Judged against the original model's metrics (``reference_metrics_path``) on
    ``pruning.acceptance.split``. Policy ``backoff`` (the paper's protocol: the largest ratio that
    keeps the drop within the rule) searches the target (:func:`hsiseu.pruning.search.next_target`:
    the requested one first, then halving until one passes and, with ``backoff_refine``,
    bisecting upwards; at most ``max_attempts`` fine-tunes) and keeps the largest passing one;
    ``fail`` tries the requested target only; both stop the run with an error when no model
    passes, except that ``backoff`` after iteration 1 ends with target 0: the model entering the
    iteration, which passed the rule in the iteration before (outcome ``kept_entering_model``;
    the largest passing target of the protocol is then 0). ``warn`` tries the requested target
    and keeps it whatever its verdict.
    Every layer keeps at least ``pruning.acceptance.min_channels`` channels. Attempts whose
    selection removes the same channels as an earlier one reuse its outcome (no fine-tune).
    """
    from hsiseu.runtime import configure_tensorflow
    from hsiseu.training import evaluate_splits

    seed = int(config["seed"])
    configure_tensorflow(threads, seed)
    pcfg = config["pruning"]
    acc = pcfg["acceptance"]
    policy = acc["policy"]
    if policy not in POLICIES:
        raise ValueError(f"pruning.acceptance.policy must be one of {POLICIES}, got {policy!r}")
    ratios = list(per_af(config, "pruning.ratios", af))
    if not 1 <= iteration <= len(ratios):
        raise ValueError(f"iteration {iteration} out of range: pruning.ratios.{af} has {len(ratios)} entries")
    requested = float(ratios[iteration - 1])
    min_channels = int(acc.get("min_channels", 1))
    max_attempts = int(acc.get("max_attempts", 1)) if policy == "backoff" else 1
    step = float(acc["backoff_step"])
    epochs = int(per_af(config, "pruning.finetune.epochs", af))
    reference = read_json(reference_metrics_path)
    sensitivity = pd.read_csv(sensitivity_path)
    x_check = _first_batch(config)
    t_start = time.perf_counter()
    model = keras.saving.load_model(model_path)  # left unchanged: slim_model builds a new model
    groups = prunable_groups(model)

    attempts: list[dict[str, Any]] = []
    kept: list[tuple] = []  # (slim model, selection, history) of each attempt
    tried: list[tuple[float, bool]] = []
    seen: dict[tuple, int] = {}
    reused = 0
    refine = bool(acc.get("backoff_refine", False))

    def targets():
        while (t := next_target(requested, tried, step=step, max_attempts=max_attempts + reused,
                                refine=refine)) is not None:
            yield t
        # backoff's last resort after iteration 1: target 0, the model entering this iteration,
        # which passed the rule in the one before (no fine-tune, judged like any attempt)
        if policy == "backoff" and iteration > 1 and best_passing(tried) is None and requested > 0:
            yield 0.0

    for target in targets():
        sel = select_ratios(
            model, groups, sensitivity, target,
            tolerance=float(pcfg["flops_tolerance"]), min_channels=min_channels,
        )
        log.info(
            "%s iteration %d, attempt %d: target %.3f, threshold %.6g -> FLOPs reduction %.4f (%d -> %d), "
            "fewest channels kept %s",
            af, iteration, len(attempts) + 1, target, sel.threshold, sel.reached, sel.before.flops,
            sel.after.flops, _min_kept(sel),
        )
        if not sel.within_tolerance:
            log.warning(
                "%s iteration %d: FLOPs reduction %.4f is not within %.3f of the target %.3f (one "
                "channel is a coarse step in narrow layers; pruning.acceptance.min_channels %d may "
                "cap the reachable reduction)", af, iteration, sel.reached, sel.tolerance, target, min_channels,
            )
        key = _removal_key(sel.removal)
        if key in seen:
            first = seen[key]
            reused += 1
            record = {**attempts[first], "target": target, "same_as_attempt": first + 1,
                      "finetune_seconds": 0.0}
            attempts.append(record)
            kept.append(kept[first])
            tried.append((target, tried[first][1]))
            log.info("%s iteration %d: target %.3f removes the same channels as attempt %d", af, iteration,
                     target, first + 1)
            continue
        seen[key] = len(attempts)
        if sel.removal:
            slim = slim_model(model, groups, sel.removal)
            diff = mask_vs_slim_difference(model, groups, sel.removal, slim, x_check)
            history, best_epoch, ft_seconds = finetune(
                slim, config, epochs=epochs, seed=seed + iteration, reference=reference, verbose=verbose
            )
        else:
            slim, diff, history, best_epoch, ft_seconds = model, 0.0, pd.DataFrame(), 0, 0.0
        cost = complexity(slim)
        if cost != sel.after:
            raise RuntimeError(f"slim model cost {cost} differs from the predicted {sel.after}")
        reports = evaluate_splits(slim, config)
        verdict = judge(reference, reports, acc)
        removed = int(sum(len(v) for v in sel.removal.values()))
        # An attempt that removes nothing is the input model, not a pruning result (unless the
        # configured target is 0: no pruning asked of this iteration).
        passed = bool(verdict["passed"] and (removed > 0 or target == 0.0))
        log.info("%s iteration %d, target %.3f: %s", af, iteration, target, describe(verdict))
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
                "removed_channels": removed,
                "min_kept_channels": _min_kept(sel),
                "mask_vs_slim_max_abs_diff": diff,
                "finetune_epochs": epochs if sel.removal else 0,
                "finetune_best_epoch": best_epoch,
                "finetune_seconds": round(ft_seconds, 2),
                "validation": {k: reports["validation"][k] for k in ("global_iou", "weighted_iou")},
                "test": {k: reports["test"][k] for k in ("global_iou", "weighted_iou")},
                "acceptance": verdict,
                "margin": margin(verdict),
                "passed": passed,
            }
        )
        kept.append((slim, sel, history))
        tried.append((target, passed))
        if not passed and policy == "backoff":
            log.warning("%s iteration %d: target %.3f fails acceptance (%s)", af, iteration, target, _drops(verdict))

    best = best_passing(tried)
    if best is None:
        if policy != "warn":
            raise RuntimeError(_failure_message(af, iteration, requested, attempts, acc, policy))
        best = len(attempts) - 1
        outcome = "failed_warned"
        log.warning("%s iteration %d keeps a model failing acceptance: %s", af, iteration,
                    describe(attempts[best]["acceptance"]))
    elif attempts[best]["target"] == 0.0 and requested > 0:
        outcome = "kept_entering_model"
        log.warning("%s iteration %d: no target in (0, %.3f] passed in %d attempts; keeping the model "
                    "entering the iteration (FLOPs reduction 0 here)", af, iteration, requested, len(attempts) - 1)
    else:
        outcome = "passed" if best == 0 else "passed_after_backoff"
    final = attempts[best]
    slim, sel, _ = kept[best]
    # Every fine-tune's epochs, the kept attempt's marked: the failing attempts show how far off
    # they were, epoch by epoch.
    frames = [
        h.assign(attempt=i + 1, target=attempts[i]["target"], kept=(i == best))
        for i, (_, _, h) in enumerate(kept)
        if len(h) and "same_as_attempt" not in attempts[i]
    ]
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    finetunes = sum(1 for a in attempts if "same_as_attempt" not in a and a["finetune_epochs"] > 0)
    summary = {
        "af": af,
        "iteration": iteration,
        "requested_target": requested,
        **{k: v for k, v in final.items() if k not in ("acceptance", "same_as_attempt", "passed")},
        "acceptance": final["acceptance"],
        "outcome": outcome,
        "policy": policy,
        "min_channels": min_channels,
        "kept_attempt": best + 1,
        "n_attempts": len(attempts),
        "finetunes": finetunes,
        "finetune_seconds_total": round(sum(a["finetune_seconds"] for a in attempts), 2),
        "attempts": attempts,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    log.info(
        "%s iteration %d: kept target %.3f of the requested %.3f (FLOPs reduction %.4f), %s after %d "
        "attempts (%d fine-tunes, %.1f s)", af, iteration, final["target"], requested, final["reached"],
        outcome, len(attempts), finetunes, summary["seconds"],
    )
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
            # Per iteration (lists, one entry each): the paper's (configured) target, the target
            # the acceptance search kept, and the FLOPs reduction reached, each a fraction of the
            # model entering the iteration; then the attempts and fine-tunes that cost.
            "requested_targets": [s["requested_target"] for s in summaries],
            "targets": [s["target"] for s in summaries],
            "reached": [s["reached"] for s in summaries],
            "attempts": [s.get("n_attempts", len(s.get("attempts", [])) or 1) for s in summaries],
            "finetunes": [s.get("finetunes", 1) for s in summaries],
            "thresholds": [s["threshold"] for s in summaries],
            # Overall, fractions of the original model's FLOPs.
            "requested_overall": composed_ratio([s["requested_target"] for s in summaries]),
            "target_overall": composed_ratio([s["target"] for s in summaries]),
            "reached_overall": 1.0 - after.flops / before.flops,
            "min_channels": config["pruning"]["acceptance"].get("min_channels", 1),
            "min_kept_channels": (
                int(table.loc[table["prunable"], f"iter{len(models)}"].min()) if prunable else None
            ),
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
                    else "kept_entering_model" if "kept_entering_model" in outcomes
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
