"""How many faults per (parameter set, bit) cell: Leveugle et al. (DATE 2009).

    n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))

with N the population (the set's size: one fault per value for a fixed bit), e the error
margin, t the normal quantile of the confidence level and p the assumed failure probability
(0.5 maximises n). e = 2.5 %, 95 %, p = 0.5 gives 1537 for N -> infinity; the paper injected a
fixed 1550. When n reaches N the cell is enumerated exhaustively.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

__all__ = ["leveugle_n", "cell_sample_size"]


def leveugle_n(population: float, error_margin: float, confidence: float, p: float = 0.5) -> int:
    """Leveugle's sample size, rounded up; ``population`` may be ``math.inf``."""
    if not 0 < error_margin < 1:
        raise ValueError(f"error_margin must be in (0, 1), got {error_margin!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    t = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    k = error_margin**2 / (t**2 * p * (1 - p))
    if math.isinf(population):
        n = 1 / k
    else:
        if population < 1:
            return 0
        n = population / (1 + k * (population - 1))
    # 1e-9 absorbs float noise so that an exact integer is not rounded up past itself.
    return int(math.ceil(n - 1e-9))


def cell_sample_size(population: int, sampling: Mapping[str, Any]) -> int:
    """Faults to draw from a cell of ``population`` values under the config's ``faults.sampling``
    (``fixed_n`` wins when set); never more than the population."""
    fixed = sampling.get("fixed_n")
    if fixed is not None:
        n = int(fixed)
    else:
        n = leveugle_n(population, float(sampling["error_margin"]), float(sampling["confidence"]),
                       float(sampling["p"]))
    return min(n, int(population))
