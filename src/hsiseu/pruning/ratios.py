"""Per-layer pruning ratios for a FLOPs target, from the sensitivity curves and one threshold.

For a threshold ``t`` (metric points) each layer gets the largest sparsity whose drop stays within
``t``: "stays" read as at that sparsity and every smaller one (the running maximum of the drop,
counted from 0 at sparsity 0), so one lucky point past a collapse does not count. Between the
analysed sparsities the curve is interpolated linearly, and a slope of ``EPS`` points per unit
sparsity is added so that flat curves (no drop at all) are crossed gradually instead of all at
once: the reachable FLOPs then move one channel at a time and the target can be met closely.
``t`` is found by bisection, since the FLOPs reduction grows monotonically with it.

A floor (``min_channels``) caps every layer's removal so that it keeps at least that many
channels (a layer already at or below the floor is left whole). The single-layer analysis cannot
see what a layer cut to one or two channels does once every other layer is cut too: on the
default small U-Net the threshold search sent the bottleneck to 1 channel and the fine-tuned
model lost 11 to 19 WIoU points. With a floor the FLOPs target is met by the other layers, or
not at all (the reached reduction then falls short of the target, which is logged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from hsiseu.model import Complexity
from hsiseu.pruning.groups import Group
from hsiseu.pruning.surgery import l1_norms, layer_flops, n_removed, pruned_complexity

__all__ = ["EPS", "Selection", "allowed_sparsity", "select_ratios"]

EPS = 1e-6


def allowed_sparsity(sparsities: Sequence[float], drops: Sequence[float], threshold: float) -> float:
    """Largest sparsity (continuous, up to the largest analysed) whose drop stays within ``threshold``."""
    s = np.concatenate([[0.0], np.asarray(sparsities, dtype=float)])
    d = np.concatenate([[0.0], np.asarray(drops, dtype=float)])
    order = np.argsort(s, kind="stable")
    s, d = s[order], d[order]
    envelope = np.maximum.accumulate(np.maximum(d, 0.0)) + EPS * s
    if threshold < 0:
        return 0.0
    return float(np.interp(threshold, envelope, s))


@dataclass
class Selection:
    """The outcome of the threshold search for one iteration."""

    target: float
    threshold: float
    reached: float
    before: Complexity
    after: Complexity
    tolerance: float
    removal: dict[str, np.ndarray] = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    min_channels: int = 1

    @property
    def within_tolerance(self) -> bool:
        return abs(self.reached - self.target) <= self.tolerance + 1e-12


def _curves(sensitivity: pd.DataFrame, groups: Sequence[Group]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for g in groups:
        rows = sensitivity[sensitivity["layer"] == g.producer]
        if rows.empty:
            raise ValueError(f"the sensitivity file has no rows for prunable layer {g.producer!r}")
        if int(rows["channels"].iloc[0]) != g.channels:
            raise ValueError(
                f"the sensitivity file was made for {int(rows['channels'].iloc[0])} channels of "
                f"{g.producer!r}, the model has {g.channels}: stale sensitivity analysis"
            )
        out[g.producer] = (rows["sparsity"].to_numpy(float), rows["drop"].to_numpy(float))
    return out


def select_ratios(
    model: keras.Model,
    groups: Sequence[Group],
    sensitivity: pd.DataFrame,
    target: float,
    tolerance: float = 0.01,
    iterations: int = 100,
    min_channels: int = 1,
) -> Selection:
    """Per-layer ratios whose slim model cuts FLOPs by ``target`` (a fraction of the current model's).

    Bisection finds the smallest threshold reaching the target; the threshold just below it is the
    other candidate, and whichever lands closer to the target wins (ties go to the one reaching it).
    Every layer keeps at least ``min_channels`` channels (all of them if it has no more).
    """
    if not 0.0 <= target < 1.0:
        raise ValueError(f"FLOPs reduction target must be in [0, 1), got {target!r}")
    if int(min_channels) < 1:
        raise ValueError(f"min_channels must be at least 1, got {min_channels!r}")
    min_channels = int(min_channels)
    curves = _curves(sensitivity, groups)
    flops = layer_flops(model)
    before = pruned_complexity(model, groups, {}, flops)
    # The L1 ranking once per layer (as channels_to_remove ranks them: stable argsort).
    order = {g.producer: np.argsort(l1_norms(model, g.producer), kind="stable") for g in groups}
    max_removed = {g.producer: max(0, g.channels - min_channels) for g in groups}

    def removal_at(t: float) -> dict[str, np.ndarray]:
        out = {}
        for g in groups:
            n = min(n_removed(allowed_sparsity(*curves[g.producer], t), g.channels), max_removed[g.producer])
            if n:
                out[g.producer] = np.sort(order[g.producer][:n])
        return out

    def reduction(t: float) -> tuple[float, Complexity]:
        cost = pruned_complexity(model, groups, removal_at(t), flops)
        return 1.0 - cost.flops / before.flops, cost

    all_drops = np.concatenate([d for _, d in curves.values()]) if curves else np.zeros(1)
    lo, hi = -1.0, float(max(all_drops.max(), 0.0)) + 1.0
    if target == 0.0:
        hi = lo
    elif reduction(hi)[0] >= target:
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if reduction(mid)[0] >= target:
                hi = mid
            else:
                lo = mid
    candidates = [(hi, *reduction(hi)), (lo, *reduction(lo))]
    t, reached, cost = min(candidates, key=lambda c: (abs(c[1] - target), c[1] < target))
    removal = removal_at(t)
    rows = []
    for g in groups:
        n = len(removal.get(g.producer, ()))
        rows.append(
            {
                "layer": g.producer,
                "channels": g.channels,
                "allowed_sparsity": allowed_sparsity(*curves[g.producer], t),
                "removed": n,
                "kept": g.channels - n,
                "ratio": n / g.channels,
            }
        )
    return Selection(
        target=float(target),
        threshold=float(t),
        reached=float(reached),
        before=before,
        after=cost,
        tolerance=float(tolerance),
        removal=removal,
        table=pd.DataFrame(rows),
        min_channels=min_channels,
    )
