"""The paper's acceptance criterion for a pruned model, and what to do when a model fails it.

Paper: "a maximum degradation of 1.5 points in both GIoU and WIoU has been accepted, ensuring both
remain above 90% and 80%". Drops are measured against the original (unpruned) model on one split
(the config's ``pruning.acceptance.split``; validation by default, so that the test split plays no
part in choosing the model). Policies: ``fail`` stops the workflow, ``warn`` keeps the model and
records the failure, ``backoff`` searches the largest FLOPs target whose model passes
(:mod:`hsiseu.pruning.search`) and stops the workflow if none does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["POLICIES", "describe", "judge", "margin"]

POLICIES = ("fail", "warn", "backoff")
_METRICS = {"global_iou": "min_global_iou", "weighted_iou": "min_weighted_iou"}


def judge(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    acceptance: Mapping[str, Any],
) -> dict[str, Any]:
    """Check ``candidate`` against ``reference`` (both ``{split: segmentation report}``).

    Returns a JSON-ready record: each metric's reference, value, drop, floor and verdict, and
    ``passed`` overall.
    """
    split = acceptance["split"]
    for name, reports in (("reference", reference), ("candidate", candidate)):
        if split not in reports:
            raise ValueError(f"{name} metrics have no {split!r} report (pruning.acceptance.split)")
    max_drop = float(acceptance["max_drop"])
    checks = {}
    for metric, floor_key in _METRICS.items():
        ref = float(reference[split][metric])
        value = float(candidate[split][metric])
        floor = acceptance.get(floor_key)
        drop = ref - value
        ok_drop = drop <= max_drop + 1e-9
        ok_floor = floor is None or value >= float(floor)
        checks[metric] = {
            "reference": ref,
            "value": value,
            "drop": drop,
            "max_drop": max_drop,
            "floor": None if floor is None else float(floor),
            "passed": bool(ok_drop and ok_floor),
        }
    return {"split": split, "checks": checks, "passed": all(c["passed"] for c in checks.values())}


def describe(verdict: Mapping[str, Any]) -> str:
    """One line for logs and error messages."""
    parts = []
    for metric, c in verdict["checks"].items():
        floor = "" if c["floor"] is None else f", floor {c['floor']:g}"
        parts.append(
            f"{metric} {c['value']:.2f} (drop {c['drop']:+.2f} of max {c['max_drop']:g}{floor}: "
            f"{'ok' if c['passed'] else 'FAIL'})"
        )
    return f"{verdict['split']}: " + "; ".join(parts)


def margin(verdict: Mapping[str, Any]) -> float:
    """Points by which the verdict's tightest check passes (> 0) or fails (< 0): the smallest of
    ``max_drop - drop`` and ``value - floor`` over the metrics."""
    slack = []
    for c in verdict["checks"].values():
        slack.append(c["max_drop"] - c["drop"])
        if c["floor"] is not None:
            slack.append(c["value"] - c["floor"])
    return float(min(slack))
