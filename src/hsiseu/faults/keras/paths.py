"""Which downstream a batch of faulty states takes where both are exact: their changed pixels
as rows, or whole tensors.

The changed-pixel path (:class:`~hsiseu.faults.keras.pixels.PixelTail`) pays per changed pixel
for gathering rows and the layers' calls on them; the whole-tensor path pays per pixel of every
state, with no gather. Which is cheaper depends on the share of pixels a fault changes (after
ReLU about a third on the default U-Net, after a sigmoid nine in ten) and on the machine's
kernels, so it is measured rather than fixed: the first batch at a chain end runs both paths
twice, and the second (warm: the first compiles) call of each gives its time per unit of work,
which predicts every later batch's cost on either. Both give the same outcomes; only the time
differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["PIXELS", "WHOLE", "PathTimes"]

PIXELS, WHOLE = "pixels", "whole"


class PathTimes:
    """Seconds per unit of work of the two paths at one chain end: per changed pixel for
    :data:`PIXELS`, per pixel of every state for :data:`WHOLE`."""

    def __init__(self) -> None:
        self.per_unit: dict[str, float] = {}

    @property
    def measured(self) -> bool:
        return len(self.per_unit) == 2

    def measure(self, runs: dict[str, tuple[Callable[[], bool], int]]) -> None:
        """Each path's ``run`` (False: it could not run these states) twice, the second call
        timed per its units of work."""
        for path, (run, units) in runs.items():
            run()
            t0 = time.perf_counter()
            ran = run()
            self.per_unit[path] = (time.perf_counter() - t0) / max(units, 1) if ran else float("inf")

    def choose(self, changed: int, whole: int) -> str:
        """The path predicted cheaper for a batch changing ``changed`` of its ``whole`` pixels."""
        return PIXELS if self.per_unit[PIXELS] * changed <= self.per_unit[WHOLE] * whole else WHOLE
