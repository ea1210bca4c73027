"""Backoff: the largest FLOPs target of one iteration whose fine-tuned model passes acceptance.

The paper's protocol reads "the pruning ratio is the largest that keeps the degradation within
1.5 points". Each candidate costs a fine-tune, so the search must reach a good ratio in few of
them. It is a bisection between the largest target known to pass (0 = the unpruned input model,
which is not itself a result) and the smallest known to fail (at first the requested target, tried
first): each next target is the midpoint, snapped to a grid of ``step``, until the two are one step
apart or ``max_attempts`` targets have been tried. The fine-tuned outcome is noisy, so a pass above
a fail is possible in principle; the search never tries a target outside the current bracket, so
it stays bounded and the kept target is the largest one that passed.

Without ``refine`` the search stops at its first passing target: it halves the target until one
passes (requested, 1/2, 1/4, ... of it), which spends fine-tunes only on finding a valid model;
``refine`` goes on bisecting upwards from there (3/4, 5/8, ...) while attempts remain. On the
default config the refinement was the costliest part of the search (one extra fine-tune per
backed-off iteration, of which about half failed), so it is the paper config's choice only.

The function is pure (targets in, next target out): the caller runs the fine-tunes and the tests
drive it with a stub judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["best_passing", "next_target"]

_EPS = 1e-9


def _snap(value: float, step: float) -> float:
    """``value`` on the grid of ``step`` (nearest point, ties down), rounded against float noise."""
    return round(math.floor(value / step + 0.5 - _EPS) * step, 10)


def next_target(
    requested: float,
    tried: Sequence[tuple[float, bool]],
    *,
    step: float,
    max_attempts: int,
    refine: bool = True,
) -> float | None:
    """The next FLOPs target to try after the (target, passed) outcomes in ``tried``, or None.

    None means stop: the requested target passed, ``max_attempts`` targets were tried, a target
    passed and ``refine`` is off, or no grid point lies strictly between the largest passing and
    the smallest failing target.
    """
    if step <= 0 or max_attempts < 1:
        raise ValueError(f"need step > 0 and max_attempts >= 1, got {step!r}, {max_attempts!r}")
    if not tried:
        return float(requested)
    if len(tried) >= max_attempts:
        return None
    if not refine and any(ok for _, ok in tried):
        return None
    lo = max((t for t, ok in tried if ok), default=0.0)
    hi = min((t for t, ok in tried if not ok and t > lo), default=None)
    if hi is None:  # everything tried above the best pass passed too: nothing left to gain
        return None
    done = {round(t, 10) for t, _ in tried}
    mid = 0.5 * (lo + hi)
    below, above = round(math.floor(mid / step) * step, 10), round(math.ceil(mid / step) * step, 10)
    for candidate in (_snap(mid, step), below, above):
        if lo + _EPS < candidate < hi - _EPS and candidate not in done:
            return candidate
    return None


def best_passing(tried: Sequence[tuple[float, bool]]) -> int | None:
    """Index in ``tried`` of the largest passing target (the first of equals), or None."""
    passing = [(t, -i) for i, (t, ok) in enumerate(tried) if ok]
    return -max(passing)[1] if passing else None
