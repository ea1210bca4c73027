"""The interval reported for a sampled unit: Leveugle's normal interval with a variance bound.

Why this interval, and what it means. Leveugle et al. (DATE 2009) size a sample so that the
normal-approximation interval

    mean +- t * sqrt(p (1 - p) / n * (N - n) / (N - 1))

(t the normal quantile of the confidence, (N - n)/(N - 1) the finite-population correction of
drawing without replacement) has half-width e. Its meaning: p (1 - p) bounds the variance of one
outcome, so the interval covers the true mean with the stated confidence *up to the normal
approximation of the sample mean*. With p = 1/2 the bound always holds: an outcome in [0, 1]
has variance <= mu (1 - mu) <= 1/4.

Adaptive sampling keeps the interval and the meaning and only tightens the bound: with (L, U)
the anytime-valid confidence sequence of :mod:`~hsiseu.faults.stats.bounds`,

    p* = argmax_{m in [L, U]} m (1 - m)   (1/2 if L <= 1/2 <= U, else the end nearest 1/2)

and sigma^2 <= mu (1 - mu) <= p* (1 - p*) whenever mu lies in [L, U], an event that holds at
every look at once, hence at the data-dependent stopping n, with probability >= the confidence.
Stopping once n >= leveugle_n(N, e, confidence, p*) makes the half-width <= e by Leveugle's own
algebra (n >= N / (1 + e^2 (N - 1) / (t^2 p q)) <=> t^2 p q (N - n) / (n (N - 1)) <= e^2). So:
the same e, the same confidence level and the same (normal-approximation) meaning as
``leveugle``; what is new is a variance bound earned from the data instead of assumed. (A
strict union bound would charge the two approximations alpha each; the coverage tests in
``tests/test_faults_adaptive.py`` measure the actual coverage on enumerated populations.)

Both ends are clipped to [0, 1] and to the deterministic range of the finite population
(:func:`~hsiseu.faults.stats.bounds.deterministic_range`), which contains the mean with
certainty: the interval of an exhaustively enumerated unit is the exact mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from hsiseu.faults.stats.bounds import confidence_sequence, deterministic_range

__all__ = ["Interval", "variance_p", "normal_interval", "wald_interval", "two_sided_z",
           "finite_population_correction", "clipped_interval"]


@dataclass(frozen=True)
class Interval:
    """A unit's estimate: ``mean`` of ``n`` outcomes out of ``population`` (``None``: infinite),
    reported as ``[low, high]``; ``half_width`` is the +- before clipping, ``p`` the variance
    bound p (1 - p) it used (``nan`` for an interval built from the sample variance)."""

    mean: float
    low: float
    high: float
    half_width: float
    n: int
    population: int | None
    p: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def variance_p(low: float, high: float) -> float:
    """The p in [low, high] that maximises p (1 - p): 1/2 if the interval holds it, else the end
    nearest 1/2. Every mean in [low, high] has mu (1 - mu) <= p (1 - p)."""
    if low > high:
        raise ValueError(f"empty interval [{low}, {high}]")
    if low <= 0.5 <= high:
        return 0.5
    return high if high < 0.5 else low


def two_sided_z(confidence: float) -> float:
    """The normal quantile of a two-sided interval at ``confidence``: shared by every normal
    interval of the package (unit, stratified), so that all refuse the same bad levels."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def finite_population_correction(n: int, population: int | None) -> float:
    """(N - n) / (N - 1) for ``n`` drawn without replacement from ``population`` (None:
    infinite, 1): a unit's faults are sampled without replacement from its values."""
    if population is None:
        return 1.0
    if n > population:
        raise ValueError(f"{n} outcomes drawn from a population of {population}")
    return (population - n) / (population - 1) if population > 1 else 0.0


def clipped_interval(x: np.ndarray, population: int | None, half_width: float, p: float,
                     mean: float | None = None) -> Interval:
    """mean +- half_width (``mean``: the outcomes' own by default), clipped to [0, 1] and to the
    means possible at all after ``x``."""
    mean = float(x.mean()) if mean is None else float(mean)
    lo_det, hi_det = deterministic_range(x, population)
    low = max(0.0, lo_det, mean - half_width)
    high = min(1.0, hi_det, mean + half_width)
    return Interval(mean, low, high, half_width, len(x), population, p)


def normal_interval(x: np.ndarray, confidence: float, population: int | None = None,
                    p: float | None = None) -> Interval:
    """Leveugle's interval on the outcomes ``x`` (in [0, 1]) with variance bound p (1 - p).

    ``p=0.5`` is ``leveugle``'s report. ``p=None`` takes p* from the confidence sequence of
    ``x`` (:func:`variance_p` of it): ``adaptive``'s report, and ``fixed``'s (whose half-width
    is whatever its n gives, not bounded by e).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if len(x) == 0:
        raise ValueError("no outcomes: no interval")
    if p is None:
        p = variance_p(*confidence_sequence(x, confidence, population))
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    fpc = finite_population_correction(len(x), population)
    half = two_sided_z(confidence) * math.sqrt(p * (1 - p) / len(x) * fpc)
    return clipped_interval(x, population, half, p)


def wald_interval(x: np.ndarray, confidence: float, population: int | None = None) -> Interval:
    """The plain Wald interval, mean +- t s / sqrt(n) (s the sample standard deviation), with
    the finite-population correction. Not used for reports: it is the broken baseline the
    coverage tests show failing (a run of zeros gives s = 0 and an interval of zero width)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if len(x) < 2:
        raise ValueError("the Wald interval needs at least 2 outcomes")
    s2 = float(x.var(ddof=1))
    fpc = finite_population_correction(len(x), population)
    half = two_sided_z(confidence) * math.sqrt(s2 / len(x) * fpc)
    return clipped_interval(x, population, half, float("nan"))
