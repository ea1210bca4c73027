"""Coverage of the findings' interval over replicates on a simulated two-level population whose
truth is known (docs/statistics.md reports the numbers).

Two "AFs" are compared as the findings table compares them: replicate r trains one model per AF
(first stage: a model's true error rates drawn between models), runs a fault sample in each
(second stage: faults drawn without replacement from each parameter set's finite population of
bounded, bimodal outcomes, most of them 0), estimates each model's statistic (a weighted mean
over sets, like set_mean and network_rate) and takes the paired difference d_r. The target is
the expected difference over models. Few replicates (R = 3, 5), a between-model spread
comparable to the within-model sampling spread, and two regimes: outcome means near 1/2 and
small, skewed ones.

The number of repetitions is chosen so that 95 % is told from 93 %: with ``REPS`` repetitions
the coverage estimate has a binomial standard error sqrt(0.95 x 0.05 / REPS); the band asserted
is 0.95 +- 3 of them (at 20000: +- 0.0046), and 0.93 lies more than 12 of them below 0.95.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pytest

from hsiseu.findings.replicates import replicate_interval, t_quantile

REPS = 20000
NOMINAL = 0.95
BAND = 3 * math.sqrt(NOMINAL * (1 - NOMINAL) / REPS)


@dataclass(frozen=True)
class Regime:
    """Sets of ``sizes`` values, ``n`` faults each; an outcome is 1 (the whole image changes:
    NaN/Inf), ``small`` (a few pixels) or 0. A model's chance of a 1 in set s is ``scale[s]`` x u,
    u ~ Beta with mean ``mean[af]`` and sd ``between[af]`` (one u per model: the between-model
    spread); the chance of ``small`` is ``q[s]``. ``weights``: the statistic's weight per set."""

    sizes: tuple[int, ...]
    n: tuple[int, ...]
    scale: tuple[float, ...]
    q: tuple[float, ...]
    small: float
    mean: tuple[float, float]
    between: tuple[float, float]
    weights: tuple[float, ...]


HALF = Regime(sizes=(2000, 800, 300, 150), n=(100, 100, 100, 100), scale=(1.0, 0.9, 0.8, 1.0),
              q=(0.1, 0.1, 0.2, 0.1), small=0.05, mean=(0.50, 0.46), between=(0.03, 0.03), weights=(1, 1, 1, 1))
SMALL = Regime(sizes=(5000, 1200, 400, 150), n=(120, 120, 120, 120), scale=(1.0, 0.5, 0.3, 2.0),
               q=(0.05, 0.05, 0.1, 0.05), small=0.02, mean=(0.030, 0.022), between=(0.010, 0.008),
               weights=(5000, 1200, 400, 150))


def _beta(rng: np.random.Generator, mean: float, sd: float, shape: tuple[int, ...]) -> np.ndarray:
    k = mean * (1 - mean) / sd**2 - 1
    return rng.beta(mean * k, (1 - mean) * k, size=shape)


def _models(rng: np.random.Generator, regime: Regime, af: int, reps: int, r: int):
    """Per (repetition, replicate): the model's true statistic, its estimate and the estimate's
    within-model standard error (sample variance per set, finite-population corrected)."""
    sizes, n = np.array(regime.sizes), np.array(regime.n)
    w = np.array(regime.weights, dtype=float) / np.sum(regime.weights)
    u = _beta(rng, regime.mean[af], regime.between[af], (reps, r, 1))
    p1 = np.array(regime.scale) * u
    pa = np.broadcast_to(np.array(regime.q), p1.shape)
    big = rng.binomial(sizes, p1)  # the finite population of each set: how many 1s ...
    small = rng.binomial(sizes - big, pa / (1 - p1))  # ... and how many small outcomes
    hit = rng.hypergeometric(big + small, sizes - big - small, n)  # faults drawn without replacement
    hit_big = rng.hypergeometric(big, small, hit)
    hit_small = hit - hit_big
    true_set = (big + regime.small * small) / sizes
    est_set = (hit_big + regime.small * hit_small) / n
    second = (hit_big + regime.small**2 * hit_small) / n
    var_set = np.maximum(second - est_set**2, 0) * n / (n - 1) / n * (sizes - n) / (sizes - 1)
    return true_set @ w, est_set @ w, np.sqrt(var_set @ w**2)


def _truth(regime: Regime) -> float:
    w = np.array(regime.weights, dtype=float) / np.sum(regime.weights)
    per_af = [(np.array(regime.scale) * m + regime.small * np.array(regime.q)) @ w for m in regime.mean]
    return float(per_af[0] - per_af[1])


def simulate(regime: Regime, r: int, reps: int = REPS, seed: int = 0) -> dict[str, float]:
    """Coverage of the t interval over replicates and of a within-model-only interval, and the
    two variance components of d_r (between models, within a model)."""
    rng = np.random.default_rng(seed)
    true_a, est_a, se_a = _models(rng, regime, 0, reps, r)
    true_b, est_b, se_b = _models(rng, regime, 1, reps, r)
    d, se = est_a - est_b, np.sqrt(se_a**2 + se_b**2)
    truth = _truth(regime)
    mean, s = d.mean(axis=1), d.std(axis=1, ddof=1)
    half = t_quantile(1 - (1 - NOMINAL) / 2, r - 1) * s / math.sqrt(r)
    covered = np.abs(mean - truth) <= half
    # wrong: each replicate's own fault-sampling error only, as if the models were the population
    z = NormalDist().inv_cdf(1 - (1 - NOMINAL) / 2)
    wrong = np.abs(mean - truth) <= z * np.sqrt((se**2).sum(axis=1)) / r
    normal = np.abs(mean - truth) <= z * s / math.sqrt(r)  # right spread, normal quantile
    return {"coverage": float(covered.mean()), "within_only": float(wrong.mean()),
            "normal_quantile": float(normal.mean()),
            "between_sd": float((true_a - true_b).std()), "within_sd": float((d - (true_a - true_b)).std()),
            "truth": truth, "mean_half_width": float(half.mean())}


@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("regime", [HALF, SMALL], ids=["means_near_half", "small_skewed_means"])
def test_replicate_t_interval_covers_the_expected_difference_at_the_nominal_level(regime, r):
    result = simulate(regime, r)
    # the regime is the one asked for: between-model spread comparable to the within-model one
    assert 0.5 <= result["between_sd"] / result["within_sd"] <= 2.0, result
    assert NOMINAL - BAND <= result["coverage"] <= NOMINAL + BAND, result


@pytest.mark.parametrize("regime", [HALF, SMALL], ids=["means_near_half", "small_skewed_means"])
def test_an_interval_from_fault_sampling_alone_undercovers(regime):
    result = simulate(regime, 5)
    assert result["within_only"] < NOMINAL - 5 * BAND, result


def test_the_normal_quantile_in_place_of_t_undercovers_with_three_replicates():
    assert simulate(HALF, 3)["normal_quantile"] < NOMINAL - 5 * BAND


def test_the_simulation_estimates_match_the_library_interval():
    """The vectorised interval above is the library's replicate_interval."""
    values = [0.3, -0.1, 0.5]
    iv = replicate_interval(values, NOMINAL)
    half = t_quantile(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert iv.low == pytest.approx(np.mean(values) - half) and iv.high == pytest.approx(np.mean(values) + half)
