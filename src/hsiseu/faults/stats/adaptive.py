"""Adaptive sampling of one population unit: run faults in rounds, stop once the data have
earned +- e: Leveugle's n at the variance bound they support, or a confidence sequence that
itself lies within +- e.

Why. Leveugle's n at p = 1/2 (1537 at e = 2.5 %, 95 %) assumes the worst variance. A unit whose
faults rarely change a pixel has variance <= mu (1 - mu) << 1/4, and needs far fewer faults for
the same +- e at the same confidence. The rule:

1. the unit's candidates are its Leveugle list at p = 1/2 (finite-population corrected, capped
   at the unit's size) in a seeded uniformly random order
   (:func:`~hsiseu.faults.stats.candidates.candidate_faults`); a run is always a prefix of it,
   so it never exceeds ``leveugle``'s n and a prefix is a without-replacement sample;
2. after each round: (L, U) = the two-sided anytime-valid confidence sequence
   (:func:`~hsiseu.faults.stats.bounds.confidence_sequence`) at alpha / 2, intersected with
   [0, U0], U0 the all-in upper sequence (:func:`~hsiseu.faults.stats.bounds.upper_sequence`)
   at alpha / 2 (:data:`UPPER_SHARE`): by the union bound, mu is in [L, U] at every look at
   once with probability >= 1 - alpha; p* = the p in [L, U] nearest 1/2
   (:func:`~hsiseu.faults.stats.intervals.variance_p`);
3. stop when the candidates are exhausted, or when [L, U] lies within mean +- e (report [L, U]
   itself: no normal approximation), or -- unless every outcome so far is 0 -- when n >=
   ``leveugle_n(N, e, confidence, p*)`` (report
   :func:`~hsiseu.faults.stats.intervals.normal_interval` with p*, whose half-width is then
   <= e). :meth:`UnitState.interval` is that report.

Why the all-in bound, and why alpha / 2. Outcomes are error fractions in [0, 1], so P(X > 0) >=
mu, and a unit that shows no error after n draws has mu <= e with confidence 1 - alpha' as soon
as n zeros have probability <= alpha' under a mean of e (hypergeometric without replacement,
(1 - e)^n with it): the exact bound, ~ln(1/alpha') / e. On zeros the two-sided sequence gives
U ~ ln(2/alpha) / (c n) only (its bets are capped at c = 3/4 and hedged over both sides), and the
rule without U0 stopped at the normal interval's n at p* = U: ~176 faults at e = 2.5 %. U0 is
the exact bound on all-zero samples, so an all-zero unit stops at it: 146 faults at 2.5 % (141
at N = 2000), 36 at 10 %, 11 at 30 % (= Leveugle's n there). On outcomes of a few pixels (the
usual sign/exponent cell: rarely zero, never large) U0 moves by about their mean, so such a
unit stops near the same n. An all-zero stop reports [0, U0], a one-sided interval: it can only
miss above, and alpha' = alpha / 2 is the tail a two-sided 1 - alpha interval allows there. A
larger share was measured to cost coverage where Leveugle's n is small and the normal interval
only nominal (alpha' = 0.04: 94.4 % at e = 30 % on a mean of 31 %, where the rule without U0 had
95.2 %); at alpha / 2 the rule is unchanged there, and the all-zero look misses just under
alpha / 2 at a mean just above e (``tests/test_faults_adaptive_coverage.py``). Units with errors
pay for the two-sided sequence at alpha / 2 instead of alpha with up to ~3 % more faults. Why not
the normal interval on all-zero samples: at p-hat = 0 it is a Wald interval, [0, t sqrt(p* (1 -
p*) / n)], narrower than the exact bound allows once U0 is large (e >= ~0.2), and stopping on
it undercovers; so a run of zeros stops on U0 alone.

Looking after every round is free because both sequences hold at every n at once. Rounds: the
first ``min_round`` faults (or the all-zero stop, :func:`zero_stop`, where one round and a short
one would reach it), then aimed at the projected stop (:meth:`UnitState.projected_stop`; 3 %
past it unless every outcome is 0, where it is exact), at least ``min_round / 2`` and at most
``n`` (so sizes at most double: O(log n) rounds; ``n / 2`` with strata), leaving a last round of at least
``min_round / 2`` that lands on the target, never past the candidates. Everything is a function
of the outcomes seen, so a unit is fully described by its parameters and its outcomes in rank
order: :meth:`UnitState.to_dict` / :meth:`UnitState.from_dict` resume it exactly, and the same
seed gives the same faults and the same stopping point. (Outcomes recorded under an earlier rule
need not replay under this one: the replay checks every round end and refuses them.)

With strata (:mod:`~hsiseu.faults.stats.strata`, adaptive only) the draw stays uniform; the
two-sided sequence becomes one per stratum at 1 / H of its alpha, combined with the strata's exact
shares; the mean is the post-stratified one, and the normal stop is the stratified normal
interval with each stratum's p*; U0 and the all-zero stop are the unit's, unchanged.

``leveugle`` and ``fixed`` are the same object with one round holding every candidate
(Leveugle's n at the configured p, resp. ``fixed_n``); ``leveugle`` reports the interval with
p = 1/2, ``fixed`` the one with p* from the two-sided sequence at alpha (its half-width is
whatever ``fixed_n`` gives).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hsiseu.faults.sampling import leveugle_n
from hsiseu.faults.stats.bounds import confidence_sequence, upper_sequence
from hsiseu.faults.stats.intervals import Interval, clipped_interval, normal_interval, variance_p
from hsiseu.faults.stats.strata import Strata

__all__ = ["METHODS", "MIN_ROUND", "UPPER_SHARE", "UnitState", "adaptive_candidates", "required_n", "zero_stop"]

METHODS = ("fixed", "leveugle", "adaptive")

#: the first round's size (or the all-zero stop, where that is smaller): large enough that a
#: run of zeros already bounds the mean near 0.1, small enough not to overshoot the ~140 faults
#: an all-zero unit needs at 2.5 %.
MIN_ROUND = 32

#: the share of alpha spent on the all-in upper bound U0 (exact on all-zero outcomes); the
#: two-sided confidence sequence gets the rest (module docstring: why 1/2).
UPPER_SHARE = 0.5

#: rounds aim 3 % past the projected stop, so that a slightly optimistic projection does not
#: cost a round of its own.
_OVERSHOOT = 1.03


def adaptive_candidates(population: int, error_margin: float, confidence: float) -> int:
    """Candidates of an adaptive unit of ``population`` values: Leveugle's n at p = 1/2,
    never more than the population."""
    return min(int(population), leveugle_n(population, error_margin, confidence, 0.5))


def required_n(population: int, error_margin: float, confidence: float, p: float) -> int:
    """Leveugle's n at variance bound p (1 - p); 0 when the bound is 0 (the mean is known)."""
    if not 0 < p < 1:
        return 0
    return min(int(population), leveugle_n(population, error_margin, confidence, p))


class UnitState:
    """The sampling state of one unit: parameters plus the outcomes seen, in rank order.

    Use: ``positions = state.next_round()`` (a range of ranks into the unit's candidate order,
    empty once ``state.done``), run those faults, ``state.record(outcomes)`` with the error
    fractions in [0, 1] in the same order; repeat. ``state.interval()`` is the report.
    """

    def __init__(self, population: int, *, method: str = "adaptive", error_margin: float,
                 confidence: float, candidates: int | None = None, min_round: int = MIN_ROUND,
                 strata: Strata | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")
        if int(population) < 1:
            raise ValueError(f"a unit needs a population >= 1, got {population!r}")
        if int(min_round) < 1:
            raise ValueError(f"min_round must be >= 1, got {min_round!r}")
        self.population = int(population)
        self.method = method
        self.error_margin = float(error_margin)
        self.confidence = float(confidence)
        self.min_round = int(min_round)
        if candidates is None:
            if method != "adaptive":
                raise ValueError(f"method {method!r}: give the unit's candidates (its sample size)")
            candidates = adaptive_candidates(self.population, self.error_margin, self.confidence)
        self.candidates = int(candidates)
        if not 0 < self.candidates <= self.population:
            raise ValueError(f"candidates {self.candidates} outside 1..{self.population}")
        if method == "adaptive" and self.candidates < adaptive_candidates(
                self.population, self.error_margin, self.confidence):
            raise ValueError("adaptive candidates fewer than Leveugle's n at p = 1/2: the stopping "
                             "rule could run out before its n")
        if strata is not None:
            if method != "adaptive":
                raise ValueError(f"method {method!r}: strata are a part of the adaptive rule only")
            if len(strata.ids) != self.candidates or int(strata.sizes.sum()) != self.population:
                raise ValueError(f"strata of {len(strata.ids)} candidates over {int(strata.sizes.sum())} values "
                                 f"do not fit a unit of {self.candidates} candidates over {self.population}")
        self.strata = strata
        self.outcomes: list[float] = []
        self.round_ends: list[int] = []
        self._bound: tuple[float, float] | None = None
        self._parts_seen: tuple[float, float, float] = (0.0, 1.0, 1.0)
        self._strata_seen: tuple[np.ndarray, np.ndarray] | None = None
        self._next: range | None = None

    # -- the rule ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self.outcomes)

    def _parts(self, x: np.ndarray) -> tuple[float, float, float]:
        """(L, U) of the two-sided sequence and U0 of the all-in one, after ``x`` (adaptive: at
        confidence 1 - (1 - share) alpha, resp. 1 - share alpha; else (L, U) at 1 - alpha, U0 = 1).
        With strata, (L, U) = sum_h W_h (L_h, U_h), each stratum's sequence at 1 / H of that
        alpha (:mod:`~hsiseu.faults.stats.strata`); the strata's own bounds, each capped at
        U0 / W_h (mu_h <= mu / W_h), are kept for the stratified normal interval."""
        if self.method != "adaptive":
            return (*confidence_sequence(x, self.confidence, self.population), 1.0)
        alpha = 1 - self.confidence
        upper = upper_sequence(x, 1 - UPPER_SHARE * alpha, self.population)
        if self.strata is None:
            low, high = confidence_sequence(x, 1 - (1 - UPPER_SHARE) * alpha, self.population)
            return low, high, upper
        lows, highs = self.strata.bounds(x, 1 - (1 - UPPER_SHARE) * alpha / len(self.strata))
        weights = self.strata.weights
        self._strata_seen = (lows, np.maximum(lows, np.minimum(highs, upper / weights)))
        return float(weights @ lows), float(weights @ highs), upper

    def estimate(self) -> float:
        """The unit's mean: the outcomes' mean, or with strata sum_h W_h mean_h."""
        x = np.asarray(self.outcomes)
        if self.strata is not None:
            return self.strata.estimate(x)
        return float(x.mean()) if len(x) else 0.0

    @staticmethod
    def _joined(low: float, high: float, upper: float) -> tuple[float, float]:
        # the intersection [L, min(U, U0)]; if it is empty (probability <= alpha), the point U0
        high = min(high, upper)
        return min(low, high), high

    def bound(self) -> tuple[float, float]:
        """(L, U): the confidence sequence after the outcomes seen (cached per round); for
        ``adaptive`` the intersection of the two-sided sequence at (1 - UPPER_SHARE) alpha and the
        all-in upper bound at UPPER_SHARE alpha, which holds at every look with >= 1 - alpha."""
        if self._bound is None:
            self._parts_seen = self._parts(np.asarray(self.outcomes))
            self._bound = self._joined(*self._parts_seen)
        return self._bound

    def p_star(self) -> float:
        return variance_p(*self.bound())

    def required(self) -> int:
        """Leveugle's n at p* (adaptive); the candidates (fixed, leveugle)."""
        if self.method != "adaptive":
            return self.candidates
        return required_n(self.population, self.error_margin, self.confidence, self.p_star())

    def _within(self, mean: float, low: float, high: float) -> bool:
        return max(high - mean, mean - low) <= self.error_margin

    def within_margin(self) -> bool:
        """Whether the confidence sequence itself lies within mean +- e (adaptive, n > 0): then
        it is the report, with no normal approximation."""
        if self.method != "adaptive" or self.n == 0:
            return False
        return self._within(self.estimate(), *self.bound())

    def _stops(self, n: int, mean: float, low: float, high: float,
               split: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> bool:
        """The rule at n outcomes with these bounds (``split``: the strata's counts and bounds)."""
        if n >= self.candidates or self._within(mean, low, high):
            return True
        # all zeros: the bound itself or nothing (the normal interval at mean 0 is a Wald
        # interval at p-hat = 0, narrower than the exact bound U0 allows where U0 is large)
        if mean <= 0:
            return False
        if split is None:
            return n >= required_n(self.population, self.error_margin, self.confidence, variance_p(low, high))
        return self.strata.normal_half_width(*split, self.confidence) <= self.error_margin

    def _split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The strata's counts and bounds after the outcomes seen (``None`` without strata)."""
        if self.strata is None:
            return None
        self.bound()
        return (self.strata.counts(self.n), *self._strata_seen)

    @property
    def done(self) -> bool:
        if self.n >= self.candidates:
            return True
        if self.method != "adaptive" or self.n == 0:
            return False
        return self._stops(self.n, self.estimate(), *self.bound(), self._split())

    def zero_stop(self) -> int:
        """Where an adaptive unit whose outcomes are all zero stops (a function of the
        parameters: :func:`zero_stop`)."""
        return zero_stop(self.population, self.error_margin, self.confidence, self.candidates)

    def next_round(self) -> range:
        """Ranks (positions in the unit's candidate order) to run next; empty when done."""
        if self._next is None:
            self._next = self._plan()
        return self._next

    def _plan(self) -> range:
        if self.done:
            return range(self.n, self.n)
        floor = max(1, self.min_round // 2)
        if self.method != "adaptive":
            size = self.candidates - self.n
        elif self.n == 0:  # the all-zero stop if a first round and a short one would reach it
            zero = self.zero_stop()
            size = zero if zero <= self.min_round + floor else self.min_round
        else:
            projected = self.projected_stop()
            if any(self.outcomes):  # the projection is exact for a run of zeros
                projected = math.ceil(_OVERSHOOT * projected)
            rest = projected - self.n
            # land on the target: in one round if that at most doubles n, else leave at least
            # `floor` for a last round that does
            # a stratified unit's projection is cautious (its strata's bounds shrink faster than
            # 1/sqrt(n) where their outcomes are nearly constant): its rounds grow by half
            step = self.n if self.strata is None else self.n // 2
            size = max(floor, rest if rest <= max(step, 2 * floor) else min(step, rest - floor))
        return range(self.n, min(self.candidates, self.n + size))

    def projected_stop(self) -> int:
        """Where the rule is expected to stop, for sizing the next round only (the decision to
        stop is always the rule itself at a round's end, so this never affects validity).

        A run of zeros stops at :meth:`zero_stop` if it goes on. Otherwise the two-sided
        sequence's distances to the mean are assumed to shrink like 1/sqrt(n), and U0's like 1/n
        down to the outcomes' own penalty in it (the mean of -ln(1 - X) - X); the projected stop
        is the smallest n' at which the rule would stop on the projected bounds, found by
        bisection (the projected bounds are nested, so the rule's condition is monotone in n').
        With strata, each stratum's bounds shrink the same way around its own mean, and its
        counts at n' are known (the candidates' strata are).
        """
        if not any(self.outcomes):
            return self.zero_stop()
        self.bound()
        low, high, upper = self._parts_seen
        n = self.n
        x = np.asarray(self.outcomes)
        plain, mean = float(x.mean()), self.estimate()
        # U0's distance to the mean: the outcomes' own penalty, plus a part that shrinks like 1/n
        reach = max(0.0, upper - plain)
        penalty = float(np.mean(-np.log1p(-np.minimum(x, 1 - 1e-12)) - x)) if x.max() < 1 else math.inf
        if self.strata is not None:
            lows, highs = self._strata_seen
            means = np.array([p.mean() if len(p) else 0.5 for p in self.strata.split(x)])

        def shrunk(centre, lo, hi, factor):
            return np.maximum(0.0, centre - (centre - lo) * factor), np.minimum(1.0, centre + (hi - centre) * factor)

        def stops(k: int) -> bool:
            shrink = math.sqrt(n / k)
            up = min(1.0, plain + min(reach, penalty) + max(0.0, reach - penalty) * n / k)
            if self.strata is None:
                lo, hi = self._joined(*shrunk(mean, low, high, shrink), up)
                return self._stops(k, mean, float(lo), float(hi))
            lo_h, hi_h = shrunk(means, lows, highs, shrink)
            weights = self.strata.weights
            lo, hi = self._joined(float(weights @ lo_h), float(weights @ hi_h), up)
            return self._stops(k, mean, lo, hi, (self.strata.counts(k), lo_h, hi_h))

        # stops(candidates) always holds
        return n if stops(n) else _first_stop(n, self.candidates, stops)

    def record(self, outcomes: Sequence[float] | np.ndarray) -> None:
        """Outcomes (error fractions in [0, 1]) of the faults at :meth:`next_round`, in order."""
        values = np.asarray(outcomes, dtype=np.float64).ravel()
        expected = len(self.next_round())
        if len(values) != expected:
            raise ValueError(f"{len(values)} outcomes recorded, the round holds {expected}")
        if expected == 0:
            return
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            raise ValueError("outcomes must be error fractions in [0, 1] (error_rate / 100)")
        self.outcomes.extend(float(v) for v in values)
        self.round_ends.append(self.n)
        self._bound = self._next = None

    def interval(self) -> Interval:
        """The unit's report: p = 1/2 for ``leveugle``, p* for ``fixed``; for ``adaptive`` the
        confidence sequence [L, U] itself where it lies within mean +- e (``half_width`` = the
        larger distance from the mean to an end, ``p`` = p*), else the normal interval with p*
        (both from :meth:`bound`)."""
        x = np.asarray(self.outcomes)
        if self.method != "adaptive":
            return normal_interval(x, self.confidence, self.population,
                                   0.5 if self.method == "leveugle" else None)
        if self.within_margin():
            mean, (low, high) = self.estimate(), self.bound()
            return Interval(mean, low, high, max(high - mean, mean - low), self.n, self.population, self.p_star())
        if self.strata is None:
            return normal_interval(x, self.confidence, self.population, self.p_star())
        half = self.strata.normal_half_width(*self._split(), self.confidence)
        if half > self.error_margin:  # candidates run out first: Leveugle's own interval
            return normal_interval(x, self.confidence, self.population, 0.5)
        return clipped_interval(x, self.population, half, float("nan"), mean=self.estimate())

    def run(self, outcome_at: Any) -> "UnitState":
        """Run to the end with ``outcome_at(ranks: range) -> outcomes`` (tests, projections)."""
        while not self.done:
            self.record(outcome_at(self.next_round()))
        return self

    # -- resume ------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        strata = None if self.strata is None else {"ids": self.strata.ids.tolist(), "sizes": self.strata.sizes.tolist()}
        return {"population": self.population, "method": self.method, "error_margin": self.error_margin,
                "confidence": self.confidence, "candidates": self.candidates, "min_round": self.min_round,
                "strata": strata}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: the parameters, the outcomes in rank order and the round ends (a
        check: they follow from the outcomes). JSON writes floats exactly (shortest repr)."""
        return {**self.params(), "outcomes": list(self.outcomes), "round_ends": list(self.round_ends)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UnitState":
        """Rebuild a state by replaying its outcomes round by round through the rule; the
        stored round ends must match the replay (else the outcomes belong to another rule)."""
        state = cls(int(data["population"]), method=str(data["method"]),
                    error_margin=float(data["error_margin"]), confidence=float(data["confidence"]),
                    candidates=int(data["candidates"]), min_round=int(data["min_round"]),
                    strata=Strata(data["strata"]["ids"], data["strata"]["sizes"]) if data.get("strata") else None)
        return state.replay(data["outcomes"], data.get("round_ends"))

    def replay(self, outcomes: Sequence[float] | np.ndarray, round_ends: Sequence[int] | None = None) -> "UnitState":
        """Feed the outcomes of ranks 0.. (e.g. read back from an outcomes table) through the
        rule: a trailing partial round is an error, since the rule only decides at round ends."""
        values = np.asarray(outcomes, dtype=np.float64).ravel()
        while self.n < len(values):
            positions = self.next_round()
            if len(positions) == 0 or positions.stop > len(values):
                raise ValueError(f"{len(values)} outcomes do not end a round of this rule "
                                 f"(rounds end at {self.round_ends}, next at {positions.stop})")
            self.record(values[positions.start:positions.stop])
        if round_ends is not None and list(round_ends) != self.round_ends:
            raise ValueError(f"stored round ends {list(round_ends)} != replayed {self.round_ends}")
        return self


@functools.lru_cache(maxsize=4096)
def zero_stop(population: int, error_margin: float, confidence: float, candidates: int | None = None) -> int:
    """Where an adaptive unit of ``population`` values whose outcomes are all zero stops: the
    smallest n at which the rule's condition holds on n zeros (found by bisection: the bounds of
    zeros shrink as n grows)."""
    probe = UnitState(population, error_margin=error_margin, confidence=confidence, candidates=candidates)

    def stops(k: int) -> bool:
        return probe._stops(k, 0.0, *probe._joined(*probe._parts(np.zeros(k))))

    return _first_stop(0, probe.candidates, stops)


@functools.lru_cache(maxsize=4096)
def fewest_draws(population: int, error_margin: float, confidence: float) -> int:
    """The fewest faults with which any sampling rule could give a unit of ``population``
    values the guarantee (its estimate, the sample mean, within +- e of the true mean at
    ``confidence``): the n at which n zeros, the cheapest outcomes there are, exclude every
    mean above e. Outcomes lie in [0, 1], so such a mean needs at least K = floor(e N) + 1
    non-zero values, and n draws without replacement miss them all with probability
    C(N - K, n) / C(N, n); a rule that stopped on fewer zeros would report [0, e] for that
    population more often than alpha allows. No design of n draws does better than simple
    random sampling here: averaged over where the K values lie, every design misses them all as
    often. A floor to measure a campaign against, not a rule: this project's rule spends alpha /
    2 on zeros (:func:`zero_stop`)."""
    n_all, alpha = int(population), 1.0 - confidence
    k = math.floor(error_margin * n_all) + 1
    if k > n_all:
        return 0

    def log_choose(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    def stops(n: int) -> bool:
        return n > n_all - k or log_choose(n_all - k, n) - log_choose(n_all, n) <= math.log(alpha)

    return _first_stop(0, n_all, stops)


def _first_stop(lo: int, hi: int, stops: Callable[[int], bool]) -> int:
    """The smallest k in (lo, hi] at which ``stops`` holds, given that it holds at ``hi`` and,
    once it holds, at every larger k (bisection)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if stops(mid):
            hi = mid
        else:
            lo = mid
    return hi
