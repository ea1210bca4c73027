"""The interval of a claim over replicates, and its verdict.

What is estimated. A claim compares AFs, stages or bits "in general": not in the one model that
one training run gave, but in the population of models the training recipe produces (retraining
with another seed, or on another CPU, moves a model's error rate far beyond its fault-sampling
interval: DESIGN.md, "What a model's answer depends on"). Replicate r (r = 1..R) trains every AF's
chain anew and yields one value d_r of the claim's statistic (e.g. set_mean(ReLU) -
set_mean(Sigmoid), both from replicate r's models), itself an *estimate* from replicate r's
fault samples. The target is theta = E[D_r], the mean over models of the models' true values.

Why a t interval over the d_r covers both sources (the ultimate-cluster argument of two-stage
sampling; Hansen, Hurwitz & Madow 1953; Wolter, *Introduction to Variance Estimation*, 2007).
Write d_r = D_r + e_r, with D_r the value replicate r's models truly have (first stage: drawing
models) and e_r the fault-sampling error of its estimate (second stage: drawing faults inside
those models, E[e_r | D_r] = 0). The replicates are independent and identically distributed, so

    Var(d_r) = Var(D_r) + E[Var(e_r | D_r)]      (between models + within a model)

and the sample variance s^2 of d_1..d_R estimates Var(d_r) without bias: the spread of the
per-replicate *estimates* already holds the fault-sampling noise, so nothing is to be added
(adding each replicate's own sampling variance would count it twice). The interval

    mean(d) +- t_{R-1, 1 - alpha/2} s / sqrt(R)

is exact when d_r is normal and otherwise rests on the mean of R values being near normal; a
model estimate is a stratified mean of thousands of faults and a paired difference is roughly
symmetric, which ``tests/test_findings_coverage.py`` checks on a simulated two-level population
(R = 3 and 5). The t quantile, not the normal one, pays for s being estimated from R values.

What R = 1 means. One model per AF gives one d_1 and no estimate of the between-model spread:
the interval is undefined (NaN) and every verdict is ``inconclusive``, whatever the model's own
fault-sampling interval says. (That interval only says what *this* model does.)

Verdict. A claim states a direction and a threshold ("difference > 0", "drop < 1.5"): it
``holds`` when the whole interval lies on the claimed side, is ``reversed`` when the whole
interval lies on the other side, and is ``inconclusive`` otherwise. Each row is a separate 95 %
statement; no correction is made for the number of rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["DIRECTIONS", "VERDICTS", "ReplicateInterval", "replicate_interval", "t_quantile", "verdict"]

#: ``>``: the claim is that the statistic exceeds the threshold; ``<``: that it stays below.
DIRECTIONS = (">", "<")
VERDICTS = ("holds", "reversed", "inconclusive")


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df (Abramowitz & Stegun 26.7.3-4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        term, total = 1.0, 1.0
        for k in range(1, (df - 3) // 2 + 1):  # 1 + (2/3) c^2 + (2*4)/(3*5) c^4 + ...
            term *= (2 * k) / (2 * k + 1) * c2
            total += term
        return 2 / math.pi * (theta + (s * math.cos(theta) * total if df > 1 else 0.0))
    term, total = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):  # 1 + (1/2) c^2 + (1*3)/(2*4) c^4 + ...
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p in [1/2, 1)) of Student's t with integer ``df`` >= 1, by bisection on
    the exact CDF (no SciPy here). t_quantile(0.975, 2) = 4.3027."""
    if not 0.5 <= p < 1:
        raise ValueError(f"p must be in [0.5, 1), got {p!r}")
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    target = 2 * p - 1  # P(|T| <= t)
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, int(df)) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided(mid, int(df)) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class ReplicateInterval:
    """A claim's statistic over replicates: ``estimate`` (the mean of ``values``), the t interval
    ``[low, high]`` at ``confidence`` (NaN with fewer than 2 finite values) and the values."""

    estimate: float
    low: float
    high: float
    replicates: int
    confidence: float
    values: tuple[float, ...]


def replicate_interval(values: Iterable[float], confidence: float) -> ReplicateInterval:
    """mean +- t_{R-1, 1-alpha/2} s / sqrt(R) over the per-replicate values (module docstring).

    A non-finite value (a statistic undefined in one replicate, e.g. a correlation over sets
    whose share is constant) makes the whole interval NaN: dropping it would select replicates
    by their outcome."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(list(values), dtype=np.float64)
    r = len(x)
    if r == 0 or not np.isfinite(x).all():
        return ReplicateInterval(float(np.mean(x)) if r else math.nan, math.nan, math.nan, r, confidence,
                                 tuple(map(float, x)))
    mean = float(x.mean())
    if r < 2:
        return ReplicateInterval(mean, math.nan, math.nan, r, confidence, tuple(map(float, x)))
    half = t_quantile(1 - (1 - confidence) / 2, r - 1) * float(x.std(ddof=1)) / math.sqrt(r)
    return ReplicateInterval(mean, mean - half, mean + half, r, confidence, tuple(map(float, x)))


def verdict(interval: ReplicateInterval, direction: str, threshold: float) -> str:
    """``holds`` if the whole interval is on the claimed side of ``threshold`` (``direction``
    ``>`` or ``<``), ``reversed`` if it is wholly on the other side,
    else ``inconclusive`` (also when the interval is undefined: R < 2)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    low, high = interval.low, interval.high
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    above, below = low > threshold, high < threshold
    if direction == ">":
        return "holds" if above else "reversed" if below else "inconclusive"
    return "holds" if below else "reversed" if above else "inconclusive"
