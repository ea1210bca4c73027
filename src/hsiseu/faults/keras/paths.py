"""Which downstream a batch of faulty states takes where both are exact: their changed pixels
as rows, or whole tensors.

The changed-pixel path (:class:`~hsiseu.faults.keras.pixels.PixelTail`) pays per changed pixel
for gathering rows and the layers' calls on them; the whole-tensor path pays per pixel of every
state, with no gather. Which is cheaper depends on the share of pixels a fault changes (after
ReLU about a third on the default U-Net, after a sigmoid nine in ten) and on the machine's
kernels, so it is measured rather than fixed: the first batch at a chain end runs both paths
three times, and the faster of the two warm calls of each (the first compiles; the machine's
speed drifts) gives its time per unit of work, which predicts every later batch's cost on
either. Both give the same outcomes; only the time differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["PIXELS", "WHOLE", "PathTimes", "wall_seconds"]

PIXELS, WHOLE = "pixels", "whole"


def wall_seconds(run: Callable[[], object]) -> float:
    """Wall seconds of one call of ``run``."""
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


class PathTimes:
    """Seconds per unit of work of the two paths at one chain end: per changed pixel for
    :data:`PIXELS`, per pixel of every state for :data:`WHOLE`."""

    def __init__(self) -> None:
        self.per_unit: dict[str, float] = {}

    @property
    def measured(self) -> bool:
        return len(self.per_unit) == 2

    def measure(self, runs: dict[str, tuple[Callable[[], bool], int]]) -> None:
        """Each path's ``run`` (False: it could not run these states) three times, the faster
        of the last two timed per its units of work."""
        for path, (run, units) in runs.items():
            best = float("inf") if not run() else min(wall_seconds(run) for _ in range(2))
            self.per_unit[path] = best / max(units, 1)

    def choose(self, changed: int, whole: int) -> str:
        """The path predicted cheaper for a batch changing ``changed`` of its ``whole`` pixels."""
        return PIXELS if self.per_unit[PIXELS] * changed <= self.per_unit[WHOLE] * whole else WHOLE
