"""The stratified adaptive rule's coverage on enumerated populations, where the truth is known:
RUNS seeded without-replacement orders of N = 2000 values split into strata, each fed round by
round to the real :class:`~hsiseu.faults.stats.adaptive.UnitState` with its
:class:`~hsiseu.faults.stats.strata.Strata`.

The regimes: the bimodal exponent-MSB cell the strata are for (one sign near 0.85, the other
near 0); a stratum at the smallest share allowed holding every error, with a mean just above e
(the all-zero look and the U0 / W_h cap are what can miss there); and homogeneous Bernoulli
strata at e = 25 % and 30 %, where Leveugle's n is small and the stratified normal interval is
only nominal. Run with ``-s`` to see the measured figures.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from hsiseu.faults.stats.adaptive import UnitState, adaptive_candidates, zero_stop
from hsiseu.faults.stats.strata import MIN_SHARE, Strata

CONFIDENCE = 0.95
N = 2000
RUNS = 2000
#: binomial SE of a 95 % share over RUNS runs (0.49 %)
SE = math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / RUNS)


def _bimodal() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    codes = (np.arange(N) >= N // 2).astype(np.int64)
    values = np.where(codes == 0, np.clip(rng.normal(0.85, 0.03, N), 0, 1),
                      np.where(rng.random(N) < 0.05, 1.0, 0.0))
    return values, codes


def _rare_stratum() -> tuple[np.ndarray, np.ndarray]:
    """The smallest stratum allowed (MIN_SHARE of N = 100 values), 60 of them 1: mean 3 % > e."""
    small = int(MIN_SHARE * N)
    codes = (np.arange(N) < small).astype(np.int64)
    values = np.zeros(N)
    values[:60] = 1.0
    return values, codes


def _bernoulli(p: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    codes = (np.arange(N) % 2).astype(np.int64)
    values = np.zeros(N)
    values[rng.choice(N, size=round(p * N), replace=False)] = 1.0
    return values, codes


POPULATIONS = {"bimodal": _bimodal(), "rare stratum": _rare_stratum(), "bernoulli 25 %": _bernoulli(0.25),
               "bernoulli 31 %": _bernoulli(0.31)}


@functools.cache
def measure(name: str, error_margin: float, runs: int) -> tuple[float, float, float]:
    """(share of runs covering the mean, largest half-width, mean faults)."""
    values, codes = POPULATIONS[name]
    mu, candidates = float(values.mean()), adaptive_candidates(N, error_margin, CONFIDENCE)
    sizes = np.bincount(codes)
    rng = np.random.default_rng(2025)
    covered, half, n = [], [], []
    for _ in range(runs):
        order = rng.choice(N, size=candidates, replace=False)
        state = UnitState(N, error_margin=error_margin, confidence=CONFIDENCE,
                          strata=Strata(codes[order], sizes)).run(lambda r, o=order: values[o[r.start:r.stop]])
        got = state.interval()
        covered.append(got.low <= mu <= got.high)
        half.append(max(got.high - got.mean, got.mean - got.low))
        n.append(state.n)
    return float(np.mean(covered)), float(np.max(half)), float(np.mean(n))


CASES = [
    ("bimodal", 0.025, False),
    ("rare stratum", 0.025, False),
    ("bernoulli 25 %", 0.25, True),
    ("bernoulli 31 %", 0.3, True),
]


@pytest.mark.parametrize("name,error_margin,nominal", CASES)
def test_stratified_interval_covers_the_mean_at_the_confidence_level(name, error_margin, nominal):
    covered, max_half, mean_n = measure(name, error_margin, RUNS)
    print(f"\n{name} (mean {POPULATIONS[name][0].mean():.4f}) e={error_margin}: covered {covered:.4f} over "
          f"{RUNS} runs, n mean {mean_n:.1f} (leveugle {adaptive_candidates(N, error_margin, CONFIDENCE)})")
    assert covered >= (CONFIDENCE - 2.5 * SE if nominal else CONFIDENCE)
    assert max_half <= error_margin + 1e-12


def test_strata_cut_the_bimodal_cell_and_leave_an_all_zero_unit_at_the_exact_bound():
    """What the strata are for: the bimodal cell needs far fewer faults with them than without
    (the unstratified rule's variance bound there is near 1/4); a unit of zeros still stops at
    the unit-level exact bound, since sampling stays uniform over the unit."""
    values, codes = POPULATIONS["bimodal"]
    order = np.random.default_rng(3).choice(N, size=adaptive_candidates(N, 0.025, CONFIDENCE), replace=False)
    plain = UnitState(N, error_margin=0.025, confidence=CONFIDENCE).run(lambda r: values[order[r.start:r.stop]])
    _, _, stratified = measure("bimodal", 0.025, RUNS)
    print(f"\nbimodal: {plain.n} faults without strata, {stratified:.0f} on average with them")
    assert stratified < 0.7 * plain.n
    zeros = UnitState(N, error_margin=0.025, confidence=CONFIDENCE,
                      strata=Strata(codes[order], np.bincount(codes))).run(lambda r: np.zeros(len(r)))
    assert zeros.n == zero_stop(N, 0.025, CONFIDENCE)
