"""Adaptive sampling of one population unit: run faults in rounds, stop when Leveugle's n at the
variance bound the data has earned is reached.

Why. Leveugle's n at p = 1/2 (1537 at e = 2.5 %, 95 %) assumes the worst variance. A unit whose
faults rarely change a pixel has variance <= mu (1 - mu) << 1/4, and needs far fewer faults for
the same +- e at the same confidence. The rule:

1. the unit's candidates are its Leveugle list at p = 1/2 (finite-population corrected, capped
   at the unit's size) in a seeded uniformly random order
   (:func:`~hsiseu.faults.stats.candidates.candidate_faults`); a run is always a prefix of it,
   so it never exceeds ``leveugle``'s n and a prefix is a without-replacement sample;
2. after each round: (L, U) from the anytime-valid confidence sequence
   (:func:`~hsiseu.faults.stats.bounds.confidence_sequence`), p* = the p in [L, U] nearest 1/2
   (:func:`~hsiseu.faults.stats.intervals.variance_p`), required n =
   ``leveugle_n(N, e, confidence, p*)``;
3. stop when n >= required n (or the candidates are exhausted, which implies it: p* (1 - p*) <=
   1/4); report :func:`~hsiseu.faults.stats.intervals.normal_interval` with p*, whose
   half-width is then <= e.

Looking after every round is free because the confidence sequence holds at every n at once
(no alpha split). Rounds: the first ``min_round`` faults, then up to 3 % past the projected
stopping n (:meth:`UnitState.projected_stop`), but at least ``min_round / 2`` and at most ``n``
(so sizes at most double: O(log n) rounds), never past the candidates. Everything is a
function of the outcomes seen, so a unit is fully described by its parameters and its outcomes
in rank order: :meth:`UnitState.to_dict` / :meth:`UnitState.from_dict` resume it exactly, and
the same seed gives the same faults and the same stopping point.

``leveugle`` and ``fixed`` are the same object with one round holding every candidate
(Leveugle's n at the configured p, resp. ``fixed_n``); ``leveugle`` reports the interval with
p = 1/2, ``fixed`` the one with p* (its half-width is whatever ``fixed_n`` gives).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hsiseu.faults.sampling import leveugle_n
from hsiseu.faults.stats.bounds import confidence_sequence
from hsiseu.faults.stats.intervals import Interval, normal_interval, variance_p

__all__ = ["METHODS", "MIN_ROUND", "UnitState", "adaptive_candidates", "required_n"]

METHODS = ("fixed", "leveugle", "adaptive")

#: the first round's size: large enough that a run of zeros already bounds the mean near 0.15
#: (U ~ 4.9 / n), small enough not to overshoot the ~170 faults an all-zero unit needs at 2.5 %.
MIN_ROUND = 32

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
                 confidence: float, candidates: int | None = None, min_round: int = MIN_ROUND) -> None:
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
        self.outcomes: list[float] = []
        self.round_ends: list[int] = []
        self._bound: tuple[float, float] | None = None

    # -- the rule ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self.outcomes)

    def bound(self) -> tuple[float, float]:
        """(L, U): the confidence sequence after the outcomes seen (cached per round)."""
        if self._bound is None:
            self._bound = confidence_sequence(np.asarray(self.outcomes), self.confidence, self.population)
        return self._bound

    def p_star(self) -> float:
        return variance_p(*self.bound())

    def required(self) -> int:
        """Leveugle's n at p* (adaptive); the candidates (fixed, leveugle)."""
        if self.method != "adaptive":
            return self.candidates
        return required_n(self.population, self.error_margin, self.confidence, self.p_star())

    @property
    def done(self) -> bool:
        if self.n >= self.candidates:
            return True
        if self.method != "adaptive" or self.n == 0:
            return False
        return self.n >= self.required()

    def next_round(self) -> range:
        """Ranks (positions in the unit's candidate order) to run next; empty when done."""
        if self.done:
            return range(self.n, self.n)
        if self.method != "adaptive":
            size = self.candidates - self.n
        elif self.n == 0:
            size = self.min_round
        else:
            target = math.ceil(_OVERSHOOT * self.projected_stop())
            size = max(max(1, self.min_round // 2), min(target - self.n, self.n))
        return range(self.n, min(self.candidates, self.n + size))

    def projected_stop(self) -> int:
        """Where the rule is expected to stop, for sizing the next round only (the decision to
        stop is always the rule itself at a round's end, so this never affects validity).

        The bound's distance to the mean is assumed to shrink like 1/n while every outcome so
        far is 0 (a run of zeros: U ~ 4.9 / n) and like 1/sqrt(n) otherwise; the projected stop
        is the smallest n' with n' >= leveugle_n(p* of the projected bound at n'), found by
        bisection (the projected bounds are nested, so the required n falls as n' grows).
        """
        low, high = self.bound()
        n = self.n
        mean = float(np.mean(self.outcomes))

        def need(k: int) -> int:
            shrink = n / k if mean == 0 else math.sqrt(n / k)
            p = variance_p(max(0.0, mean - (mean - low) * shrink), min(1.0, mean + (high - mean) * shrink))
            return required_n(self.population, self.error_margin, self.confidence, p)

        lo, hi = n, self.candidates  # need(candidates) <= candidates: p (1 - p) <= 1/4
        if n >= need(n):
            return n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mid >= need(mid):
                hi = mid
            else:
                lo = mid
        return hi

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
        self._bound = None

    def interval(self) -> Interval:
        """The unit's report: p = 1/2 for ``leveugle``, p* for ``adaptive`` and ``fixed``."""
        return normal_interval(np.asarray(self.outcomes), self.confidence, self.population,
                               0.5 if self.method == "leveugle" else None)

    def run(self, outcome_at: Any) -> "UnitState":
        """Run to the end with ``outcome_at(ranks: range) -> outcomes`` (tests, projections)."""
        while not self.done:
            self.record(outcome_at(self.next_round()))
        return self

    # -- resume ------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {"population": self.population, "method": self.method, "error_margin": self.error_margin,
                "confidence": self.confidence, "candidates": self.candidates, "min_round": self.min_round}

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
                    candidates=int(data["candidates"]), min_round=int(data["min_round"]))
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
