"""Adaptive sampling's statistical core (``hsiseu.faults.stats``): the reported interval covers
the true mean of an enumerated outcome population at least as often as the confidence level,
with a half-width <= e, while running a prefix of Leveugle's list; the confidence sequence
holds at every look; candidate lists and stopping points are seeded and resumable.

Coverage is measured by resampling: every outcome of a population is computed once (a real
int8 U-Net's cells enumerated fault by fault, and synthetic worst cases), then the procedure is
repeated with RUNS seeds, each drawing its own without-replacement order through
``candidate_faults``. Run with ``-s`` to see the measured figures.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults import faultlist
from hsiseu.faults.campaign import CELL_COLUMNS
from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.sampling import leveugle_n
from hsiseu.faults.stats.adaptive import UnitState, adaptive_candidates, fewest_draws, zero_stop
from hsiseu.faults.stats.bounds import BET_CAP, confidence_sequence, upper_sequence
from hsiseu.faults.stats.candidates import candidate_faults, pending_faults, unit_state, units
from hsiseu.faults.stats.intervals import normal_interval, variance_p, wald_interval
from hsiseu.faults.stats.projection import expected_faults, two_point

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
Z = NormalDist().inv_cdf(1 - ALPHA / 2)
RUNS = 200
#: the scatter allowed around the confidence level where the interval is Leveugle's own (p* =
#: 1/2, a nominal normal interval: its measured share over RUNS runs has a binomial SE of 1.5 %).
MARGIN = 2.5 * math.sqrt(CONFIDENCE * ALPHA / RUNS)


def sampling(method: str, error_margin: float) -> dict:
    return {"method": method, "error_margin": error_margin, "confidence": CONFIDENCE, "p": 0.5, "fixed_n": None}


# -- resampling an enumerated population ----------------------------------------------------


@dataclass
class Coverage:
    covered: float  # share of runs whose interval holds the true mean
    max_half_width: float
    mean_n: float
    max_n: int
    candidates: int
    wald_covered: float  # the plain Wald interval (sample variance) on the same faults

    def line(self, name: str, method: str, e: float) -> str:
        return (f"{name} {method} e={e}: covered {self.covered:.3f}, max half-width {self.max_half_width:.4f}, "
                f"n mean {self.mean_n:.0f} max {self.max_n} of {self.candidates}, Wald {self.wald_covered:.3f}")


def resample(outcome_of_faults, sets: list[ParameterSet], bits, population: str, method: str,
             error_margin: float, truth: dict[str, float], runs: int = RUNS) -> dict[str, Coverage]:
    """Run ``method`` ``runs`` times per unit, each time on a fresh seeded candidate order;
    ``outcome_of_faults(frame)`` gives the error fractions of candidate rows."""
    cfg = sampling(method, error_margin)
    table = units(sets, bits, population, cfg)
    ends = np.cumsum(table["candidates"].to_numpy())
    stats: dict[str, dict[str, list]] = {u: {"cov": [], "hw": [], "n": [], "wald": []} for u in table["unit"]}
    for seed in range(runs):
        frame = candidate_faults(sets, bits, population, cfg, seed=seed)
        values_all = outcome_of_faults(frame)
        for row, start, stop in zip(table.itertuples(index=False), ends - table["candidates"], ends, strict=True):
            values = values_all[start:stop]  # the unit's candidates, by rank
            state = unit_state(row._asdict(), cfg).run(lambda r, v=values: v[r.start:r.stop])
            got = state.interval()
            s = stats[row.unit]
            s["cov"].append(got.low <= truth[row.unit] <= got.high)
            s["hw"].append(got.half_width)
            s["n"].append(state.n)
            wald = wald_interval(values[:state.n], CONFIDENCE, state.population)
            s["wald"].append(wald.low <= truth[row.unit] <= wald.high)
    assert frame["rank"].tolist() == [r for c in table["candidates"] for r in range(c)]
    return {u: Coverage(float(np.mean(s["cov"])), float(np.max(s["hw"])), float(np.mean(s["n"])),
                        int(np.max(s["n"])), int(c), float(np.mean(s["wald"])))
            for (u, s), c in zip(stats.items(), table["candidates"], strict=True)}


def synthetic_set(values: np.ndarray, name: str = "synthetic/kernel") -> tuple[list[ParameterSet], callable]:
    """One int8 'set' whose bit 0 cell has the outcomes ``values``."""
    pset = ParameterSet(name, "kernel", name.split("/")[0], (len(values),), "int8")
    return [pset], lambda rows: values[rows["index"].to_numpy()]


def synthetic_populations() -> dict[str, np.ndarray]:
    """Worst cases for a normal interval, N = 20 000 each."""
    rng = np.random.default_rng(123)
    n = 20_000

    def sparse(k: int, draw) -> np.ndarray:
        x = np.zeros(n)
        x[rng.choice(n, k, replace=False)] = draw(k)
        return x

    return {
        # many exact zeros and a few large values: mean 0.29 %, a sample of 200 is all zero 37 %
        # of the time, where the sample variance is 0
        "mixture": sparse(100, lambda k: rng.uniform(0.2, 1.0, k)),
        "mixture_10pc": sparse(2000, lambda k: rng.uniform(0.5, 1.0, k)),
        "bernoulli_0.02": sparse(400, np.ones),  # 2 % of faults turn every pixel (NaN outputs)
        "bernoulli_0.45": sparse(9000, np.ones),  # the worst variance, p* = 1/2 throughout
        "zeros": np.zeros(n),
    }


POPULATIONS = synthetic_populations()

#: (population, e, whether p* = 1/2 throughout so that the interval is Leveugle's nominal one)
SYNTHETIC_CASES = [
    ("mixture", 0.025, False),
    ("bernoulli_0.02", 0.025, False),
    ("bernoulli_0.45", 0.025, True),
    ("zeros", 0.025, False),
    ("mixture_10pc", 0.1, False),
    ("bernoulli_0.45", 0.1, True),
]


@functools.cache
def synthetic_coverage(name: str, error_margin: float, method: str) -> Coverage:
    values = POPULATIONS[name]
    sets, lookup = synthetic_set(values)
    unit = f"{sets[0].name}:0"
    return resample(lookup, sets, [0], "cell", method, error_margin, {unit: float(values.mean())})[unit]


@pytest.mark.parametrize("name,error_margin,nominal", SYNTHETIC_CASES)
@pytest.mark.parametrize("method", ["adaptive", "leveugle"])
def test_reported_interval_covers_the_true_mean_of_synthetic_worst_cases(name, error_margin, nominal, method):
    values = POPULATIONS[name]
    got = synthetic_coverage(name, error_margin, method)
    print("\n" + got.line(name, method, error_margin))
    # Where the data earn a tighter variance bound than 1/4 (or leveugle's p = 1/2 is loose), the
    # interval is conservative: at least the confidence level. Where p* = 1/2 it *is* Leveugle's
    # normal interval, nominal, and its share scatters around 0.95 by the binomial noise of RUNS.
    floor = CONFIDENCE - MARGIN if nominal else CONFIDENCE
    assert got.covered >= floor
    assert got.max_half_width <= error_margin + 1e-12
    assert got.max_n <= got.candidates == adaptive_candidates(len(values), error_margin, CONFIDENCE)
    if method == "leveugle":
        assert got.mean_n == got.candidates


def test_plain_wald_interval_with_the_sample_variance_fails_on_the_mixture():
    """The margin has teeth: the broken method misses on the same faults the adaptive rule ran."""
    got = synthetic_coverage("mixture", 0.025, "adaptive")
    print(f"\nmixture: adaptive {got.covered:.3f}, Wald with the sample variance {got.wald_covered:.3f}")
    assert got.covered >= CONFIDENCE
    assert got.wald_covered < CONFIDENCE - MARGIN - 0.2


# -- a real int8 U-Net, enumerated -----------------------------------------------------------

REAL_SETS = ("cnv_4/kernel", "cnv_4/bias")


@pytest.fixture(scope="module")
def int8_outcomes():
    """Every fault of one conv layer of the tiny int8 U-Net: its int8 kernel (576 values x 8 bits)
    and int32 bias (8 x 32), error fractions as an array (value, bit) per set; a few seconds."""
    from hsiseu.faults.litert.backend import TFLiteBackend
    from hsiseu.faults.outcomes import outcome_of
    from hsiseu.model import build_unet
    from hsiseu.quantization.convert import quantize_int8

    rng = np.random.default_rng(0)
    calib = rng.random((4, 16, 32, 3), dtype=np.float32)
    x = rng.random((2, 16, 32, 3), dtype=np.float32)
    model = build_unet(height=16, width=32, bands=3, n_classes=5, af="relu", pools=2, base_filters=4, seed=0)
    backend = TFLiteBackend(quantize_int8(model, calib), x, kernels="builtin", engine="fast")
    golden = backend.golden()
    labelled = np.ones(golden.shape, dtype=bool)
    sets = [s for s in backend.parameter_sets() if s.name in REAL_SETS]
    table = {}
    for pset in sets:
        faults = [faultlist.Fault(0, pset.name, i, b) for i in range(pset.size) for b in range(pset.n_bits)]
        rates = [outcome_of(golden, p, labelled)["error_rate"] / 100.0 for p in backend.run(faults)]
        table[pset.name] = np.asarray(rates).reshape(pset.size, pset.n_bits)
    return sets, table


def real_lookup(table):
    def lookup(rows: pd.DataFrame) -> np.ndarray:
        names, index, bit = rows["set"].to_numpy(), rows["index"].to_numpy(), rows["bit"].to_numpy()
        out = np.empty(len(rows))
        for name in np.unique(names):
            mask = names == name
            out[mask] = table[name][index[mask], bit[mask]]
        return out
    return lookup


@pytest.mark.parametrize("population,error_margin", [("cell", 0.025), ("set", 0.025), ("network", 0.025)])
@pytest.mark.parametrize("method", ["adaptive", "leveugle"])
def test_reported_interval_covers_the_true_mean_of_real_int8_units(int8_outcomes, population, error_margin, method):
    sets, table = int8_outcomes
    # cells: the highest, a middle and the lowest bit of the larger kernel (its most-zero cell)
    bits = [7, 3, 0] if population == "cell" else None
    chosen = [s for s in sets if s.name == "cnv_4/kernel"] if population == "cell" else sets
    truth = {}
    for u in units(chosen, bits, population, sampling(method, error_margin)).itertuples(index=False):
        if population == "cell":
            truth[u.unit] = float(table[u.set][:, u.bit].mean())
        elif population == "set":
            truth[u.unit] = float(table[u.set].mean())
        else:
            truth[u.unit] = float(np.concatenate([table[s.name].ravel() for s in chosen]).mean())
    got = resample(real_lookup(table), chosen, bits, population, method, error_margin, truth)
    for unit, cov in got.items():
        print(f"\n{cov.line(f'int8 {population} {unit} (mean {truth[unit]:.4f})', method, error_margin)}")
        assert cov.covered >= CONFIDENCE
        assert cov.max_half_width <= error_margin + 1e-12
        assert cov.max_n <= cov.candidates


# -- the confidence sequence -----------------------------------------------------------------


def test_confidence_sequence_of_zeros_is_of_order_log_one_over_alpha_over_n():
    for n in (32, 128, 512):
        low, high = confidence_sequence(np.zeros(n), CONFIDENCE, None)
        assert low == 0.0
        # between the one-sided floor ln(1/alpha)/n ~ 3/n and the hedged bet's ln(2/alpha)/(c n)
        assert math.log(1 / ALPHA) / n < high <= 1.05 * math.log(2 / ALPHA) / (BET_CAP * n)


def test_confidence_sequence_is_exact_once_the_whole_population_is_seen():
    values = np.random.default_rng(1).random(300)
    low, high = confidence_sequence(values, CONFIDENCE, 300)
    assert low == high == pytest.approx(values.mean(), abs=1e-15)
    one_left = confidence_sequence(values[:-1], CONFIDENCE, 300)
    assert one_left[0] <= values.mean() <= one_left[1] and one_left[1] - one_left[0] <= 1 / 300 + 1e-12


def test_confidence_sequence_holds_at_every_look_at_once():
    """P(mu outside [L, U] at any of the looks) <= alpha, without replacement, on a skewed
    population: counted per run, not per look."""
    rng = np.random.default_rng(7)
    pop = np.where(rng.random(1000) < 0.08, rng.uniform(0.3, 1.0, 1000), 0.0)
    mu = pop.mean()
    looks = (16, 32, 64, 128, 256, 512)
    missed = 0
    for seed in range(RUNS):
        order = np.random.default_rng(seed).permutation(1000)
        missed += any(not (lo <= mu <= hi) for lo, hi in
                      (confidence_sequence(pop[order[:k]], CONFIDENCE, 1000) for k in looks))
    print(f"\nconfidence sequence: missed at some look in {missed}/{RUNS} runs")
    assert missed / RUNS <= ALPHA


def test_upper_sequence_of_zeros_is_the_exact_bound_and_small_outcomes_cost_it_little():
    for population in (None, 2000):
        for n in (9, 146, 600):
            upper = upper_sequence(np.zeros(n), 1 - ALPHA, population)
            ones = upper if population is None else upper * population
            assert zero_probability(population, n, ones) == pytest.approx(ALPHA, rel=1e-4)
    # tiny non-zero outcomes (a few pixels changed) move U0 by about their mean
    tiny = np.random.default_rng(3).exponential(0.002, 146).clip(0, 1)
    zero = upper_sequence(np.zeros(146), 0.975, 2000)
    assert upper_sequence(tiny, 0.975, 2000) - zero == pytest.approx(tiny.mean(), rel=0.1)
    # one outcome of 1 ends the all-in bet: the deterministic top is left
    assert upper_sequence(np.r_[np.zeros(100), 1.0], 0.975, 2000) == (1 + 2000 - 101) / 2000
    values = np.random.default_rng(1).random(300) * 0.9
    assert upper_sequence(values, 0.975, 300) == pytest.approx(values.mean(), abs=1e-15)


def test_upper_sequence_holds_at_every_look_at_once():
    """P(mu > U0 at any of the looks) <= alpha, counted per run, on the population where the
    all-in bet is tightest (0s and 1s, all-zero prefixes likely) and on one of small values."""
    rng = np.random.default_rng(8)
    populations = {"ones": np.r_[np.ones(52), np.zeros(1948)],
                   "small": np.where(rng.random(2000) < 0.5, rng.exponential(0.03, 2000).clip(0, 1), 0.0)}
    looks = (16, 32, 64, 128, 256)
    for name, pop in populations.items():
        mu, missed = pop.mean(), 0
        for seed in range(1000):
            order = np.random.default_rng(seed).permutation(2000)
            missed += any(upper_sequence(pop[order[:k]], 1 - ALPHA, 2000) < mu for k in looks)
        print(f"\nU0 on {name} (mean {mu:.4f}): below the mean at some look in {missed}/1000 runs")
        assert missed / 1000 <= ALPHA


def test_variance_p_is_the_point_of_the_interval_nearest_one_half():
    assert variance_p(0.2, 0.7) == 0.5
    assert variance_p(0.0, 0.03) == 0.03
    assert variance_p(0.8, 0.9) == 0.8


def test_normal_interval_at_p_of_leveugles_n_has_half_width_at_most_e():
    for n_pop, e, p in ((10**9, 0.025, 0.5), (20_000, 0.025, 0.05), (576, 0.1, 0.3), (50, 0.025, 0.01)):
        n = leveugle_n(n_pop, e, CONFIDENCE, p)
        got = normal_interval(np.zeros(min(n, n_pop)), CONFIDENCE, n_pop, p)
        assert got.half_width <= e


# -- the stopping rule -----------------------------------------------------------------------


def zero_probability(population: int | None, n: int, ones: float) -> float:
    """P(the first n draws are all zero) from ``population`` values of which ``ones`` are 1 (a
    hypergeometric probability, continued to a real ``ones``); ``population`` None: with
    replacement, ``ones`` the share of ones."""
    if population is None:
        return (1 - ones) ** n
    t = np.arange(n, dtype=np.float64)
    return float(np.prod(np.maximum(0.0, population - t - ones) / (population - t)))


def exact_zero_n(population: int | None, error_margin: float, alpha: float, integer: bool = False) -> int:
    """The exact one-sided bound for all-zero samples: the smallest n at which n zeros have
    probability <= alpha when the mean is e (N e ones, the rest zeros; ``integer``: floor(e N) + 1
    ones, the fewest non-zero values a population of [0, 1] values with mean > e can have)."""
    ones = error_margin if population is None else (
        math.floor(error_margin * population) + 1 if integer else error_margin * population)
    return next(n for n in range(1, population or 10**6) if zero_probability(population, n, ones) <= alpha)


@pytest.mark.parametrize("population", [None, 2000])
@pytest.mark.parametrize("error_margin", [0.025, 0.1, 0.3])
def test_an_all_zero_unit_stops_at_the_exact_bound_at_alpha_over_2_and_reports_it(population, error_margin):
    """A run of zeros stops where the all-in bound U0 (alpha / 2 of the budget) reaches e: the exact
    hypergeometric / binomial bound at alpha / 2 (146 at 2.5 %, 36 at 10 %, 11 at 30 %; the
    two-sided sequence alone needed ~176 and 48), and reports [0, U0] with U0 <= e."""
    size = 10**9 if population is None else population
    state = UnitState(size, error_margin=error_margin, confidence=CONFIDENCE).run(lambda r: np.zeros(len(r)))
    exact = exact_zero_n(population, error_margin, ALPHA / 2)
    tightest = exact_zero_n(population, error_margin, ALPHA / 2, integer=population is not None)
    got = state.interval()
    print(f"\nall-zero unit N = {size}, e = {error_margin}: stops at {state.n} (rounds {state.round_ends}); "
          f"exact bound at alpha/2 {tightest}, at alpha {exact_zero_n(population, error_margin, ALPHA, True)}; "
          f"leveugle {state.candidates}; interval [{got.low}, {got.high}]")
    assert state.n == min(exact, state.candidates) <= 1.1 * tightest
    assert state.round_ends[-1] == state.n and len(state.round_ends) <= 4  # no round past the stop
    assert got.mean == got.low == 0.0 and got.half_width == got.high <= error_margin
    # U0 is the exact bound at the stop: n zeros have probability alpha / 2 when the mean is U0
    ones = got.high if population is None else got.high * population
    assert zero_probability(population, state.n, ones) == pytest.approx(ALPHA / 2, rel=1e-4)


@pytest.mark.parametrize("population", [8, 32, 64, 100, 576, 2000, 36864])
@pytest.mark.parametrize("error_margin", [0.025, 0.1])
def test_the_floor_is_the_fewest_zeros_that_exclude_every_mean_above_e(population, error_margin):
    """``fewest_draws``: with one draw fewer, the population of floor(e N) + 1 ones (mean just
    above e) gives all zeros more often than alpha, so a rule stopping there on zeros would miss
    it more often than its confidence allows; at the floor it does not. The rule's all-zero stop
    (alpha / 2) and Leveugle's n lie at or above it."""
    n = fewest_draws(population, error_margin, CONFIDENCE)
    ones = math.floor(error_margin * population) + 1
    assert ones / population > error_margin
    assert zero_probability(population, n, ones) <= ALPHA < zero_probability(population, n - 1, ones)
    assert n <= zero_stop(population, error_margin, CONFIDENCE) <= adaptive_candidates(population, error_margin, CONFIDENCE)


def test_adaptive_runs_a_prefix_of_leveugles_list_and_never_more():
    sets, _ = synthetic_set(POPULATIONS["mixture"])
    adaptive = candidate_faults(sets, [0], "cell", sampling("adaptive", 0.025), seed=3)
    leveugle = faultlist.generate(sets, sampling=sampling("leveugle", 0.025), bits=[0], seed=3)
    # the same faults as today's fault list, in a seeded order
    assert sorted(adaptive["index"]) == list(leveugle["index"])
    values = POPULATIONS["mixture"][adaptive["index"].to_numpy()]
    state = UnitState(len(POPULATIONS["mixture"]), error_margin=0.025, confidence=CONFIDENCE)
    ran = []
    while not state.done:
        ranks = state.next_round()
        assert ranks.start == state.n  # rounds are consecutive ranks: a prefix
        ran.extend(ranks)
        state.record(values[ranks.start:ranks.stop])
    assert ran == list(range(state.n)) and state.n <= len(leveugle)


def test_fixed_runs_its_n_in_one_round_and_reports_the_earned_bound():
    state = UnitState(20_000, method="fixed", error_margin=float("nan"), confidence=CONFIDENCE, candidates=100)
    assert state.next_round() == range(0, 100)
    state.record(np.zeros(100))
    assert state.done and state.next_round() == range(100, 100)
    got = state.interval()
    assert got.p == pytest.approx(confidence_sequence(np.zeros(100), CONFIDENCE, 20_000)[1])


# -- determinism and resume ------------------------------------------------------------------


def two_sets() -> list[ParameterSet]:
    return [ParameterSet("a/kernel", "kernel", "a", (40, 50), "int8"),
            ParameterSet("b/bias", "bias", "b", (300,), "int32")]


@pytest.mark.parametrize("population", ["cell", "set", "network"])
def test_same_seed_gives_byte_identical_candidates_and_other_seeds_differ(population):
    cfg = sampling("adaptive", 0.05)
    first = candidate_faults(two_sets(), [31, 7, 0], population, cfg, seed=11)
    again = candidate_faults(two_sets(), [31, 7, 0], population, cfg, seed=11)
    other = candidate_faults(two_sets(), [31, 7, 0], population, cfg, seed=12)
    assert first.to_csv(index=False).encode() == again.to_csv(index=False).encode()
    assert not first.equals(other)
    table = units(two_sets(), [31, 7, 0], population, cfg)
    assert first.groupby("unit", sort=False).size().tolist() == table["candidates"].tolist()
    # every candidate is a distinct fault that exists (bits only where the set has them)
    assert not first.duplicated(["set", "bit", "index"]).any()
    sizes = {s.name: (s.size, s.n_bits) for s in two_sets()}
    assert all(0 <= i < sizes[s][0] and b < sizes[s][1] for s, b, i in first[["set", "bit", "index"]].itertuples(index=False))
    assert first["fault"].tolist() == list(range(len(first)))


def test_pending_faults_are_each_units_next_round_and_stop_when_every_unit_is_done():
    cfg = sampling("adaptive", 0.05)
    frame = candidate_faults(two_sets(), [7, 0], "cell", cfg, seed=2)
    table = units(two_sets(), [7, 0], "cell", cfg)
    states = {row.unit: unit_state(row._asdict(), cfg) for row in table.itertuples(index=False)}
    rounds = 0
    while len(todo := pending_faults(frame, states)):
        rounds += 1
        for unit, rows in todo.groupby("unit", sort=False):
            assert rows["rank"].tolist() == list(states[unit].next_round())
            states[unit].record(np.zeros(len(rows)))
    assert rounds >= 2 and all(s.done for s in states.values())
    # all-zero units at 5 %: the exact bound at alpha / 2 of their size (2000: 71, 300: 64)
    assert {u: s.n for u, s in states.items()} == {
        row.unit: exact_zero_n(row.population, 0.05, ALPHA / 2) for row in table.itertuples(index=False)}


def test_cell_candidates_are_todays_fault_list_in_a_seeded_order():
    cfg = sampling("leveugle", 0.05)
    today = faultlist.generate(two_sets(), sampling=cfg, bits=[31, 7, 0], seed=4)
    cells = candidate_faults(two_sets(), [31, 7, 0], "cell", cfg, seed=4)

    def faults(frame: pd.DataFrame) -> list[tuple]:
        return sorted(frame[["set", "bit", "index"]].itertuples(index=False, name=None))

    assert faults(cells) == faults(today)
    assert cells["index"].tolist() != sorted(cells["index"])  # drawn order, not sorted


def test_same_seed_gives_the_same_stopping_points_and_other_seeds_differ():
    values = POPULATIONS["mixture_10pc"]
    sets, lookup = synthetic_set(values)
    cfg = sampling("adaptive", 0.025)

    def stops(seed: int) -> list[int]:
        order = lookup(candidate_faults(sets, [0], "cell", cfg, seed=seed))
        return UnitState(len(values), error_margin=0.025, confidence=CONFIDENCE).run(
            lambda r: order[r.start:r.stop]).round_ends

    assert stops(5) == stops(5)
    assert len({tuple(stops(s)) for s in range(5)}) > 1


def test_a_state_restored_from_json_continues_with_exactly_the_same_faults():
    values = POPULATIONS["mixture_10pc"]
    sets, lookup = synthetic_set(values)
    order = lookup(candidate_faults(sets, [0], "cell", sampling("adaptive", 0.025), seed=9))

    def new() -> UnitState:
        return UnitState(len(values), error_margin=0.025, confidence=CONFIDENCE)

    whole, rounds = new(), []
    while not whole.done:
        rounds.append(whole.next_round())
        whole.record(order[rounds[-1].start:rounds[-1].stop])
    assert len(rounds) >= 4
    for k in (1, 2, len(rounds) - 1):
        part = new()
        for ranks in rounds[:k]:
            part.record(order[ranks.start:ranks.stop])
        restored = UnitState.from_dict(json.loads(json.dumps(part.to_dict())))
        assert restored.to_dict() == part.to_dict()
        rest = []
        while not restored.done:
            rest.append(restored.next_round())
            restored.record(order[rest[-1].start:rest[-1].stop])
        assert rest == rounds[k:]
        assert restored.to_dict() == whole.to_dict() and restored.interval() == whole.interval()
    # the outcomes alone (e.g. read back from an outcomes table) replay to the same state
    assert new().replay(whole.outcomes).round_ends == whole.round_ends
    with pytest.raises(ValueError, match="do not end a round"):
        new().replay(whole.outcomes[:40])


# -- projection and layout -------------------------------------------------------------------


def test_two_point_model_keeps_the_mean_and_std():
    q, b = two_point(0.02, 0.1)
    assert q * b == pytest.approx(0.02)
    assert math.sqrt(q * b * b - (q * b) ** 2) == pytest.approx(0.1)
    assert two_point(0.0, 0.0) == (0.0, 0.0)


def test_projection_counts_leveugle_exactly_and_adaptive_below_it_where_errors_are_rare():
    rows = []
    for order, (name, size) in enumerate((("a/kernel", 20_000), ("b/kernel", 600))):
        for bit, (mean, std) in zip((7, 6, 1, 0), ((45.0, 49.0), (5.0, 20.0), (0.0, 0.0), (0.0, 0.0))):
            rows.append({"order": order, "set": name, "kind": "kernel", "layer": name[0], "bit": bit,
                         "population": size, "n": 30, "error_rate": mean, "error_rate_std": std,
                         "error_rate_labelled": mean, "changed": 0.0, "nonfinite": 0.0})
    cells = pd.DataFrame(rows, columns=list(CELL_COLUMNS))
    got = expected_faults(cells, error_margin=0.025, confidence=CONFIDENCE, replicates=2).set_index("population")
    print("\n" + got.to_string())
    sizes = [20_000] * 4 + [600] * 4
    assert got.loc["cell", "leveugle"] == sum(adaptive_candidates(n, 0.025, CONFIDENCE) for n in sizes)
    assert got.loc["set", "leveugle"] == adaptive_candidates(80_000, 0.025, CONFIDENCE) + adaptive_candidates(2400, 0.025, CONFIDENCE)
    assert got.loc["network", "leveugle"] == adaptive_candidates(82_400, 0.025, CONFIDENCE)
    assert (got["adaptive"] <= got["leveugle"]).all()
    assert got.loc["cell", "adaptive"] < 0.6 * got.loc["cell", "leveugle"]  # 4 of 8 cells all zero
    zero = UnitState(20_000, error_margin=0.025, confidence=CONFIDENCE).run(lambda r: np.zeros(len(r))).n
    only_zeros = cells.assign(error_rate=0.0, error_rate_std=0.0)
    bigger = expected_faults(only_zeros, error_margin=0.025, confidence=CONFIDENCE, populations=["cell"],
                             sizes={"b/kernel": 20_000})
    assert bigger.loc[0, "adaptive"] == 8 * zero and bigger.loc[0, "population_faults"] == 8 * 20_000


def test_statistics_core_imports_no_tensorflow_nor_litert():
    code = ("import sys, hsiseu.faults.stats, hsiseu.faults.stats.projection\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'ai_edge_litert')]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_enumerated_unit_has_its_exact_mean_as_range_without_rounding_it_away():
    from hsiseu.faults.stats.bounds import deterministic_range

    x = np.array([0.8, 0.0, 0.0, 0.0])
    low, high = deterministic_range(x, 4)
    assert low == high == x.sum() / 4
