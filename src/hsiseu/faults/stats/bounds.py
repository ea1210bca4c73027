"""An anytime-valid confidence sequence for the mean of [0, 1]-bounded outcomes.

Why this bound. Adaptive sampling looks at the outcomes after every round and decides whether to
go on. A fixed-n interval (Wald, Wilson, Clopper-Pearson) is only valid at one look decided in
advance; used after every round its error rate adds up over the looks. A *confidence sequence*
(CS) holds at every n simultaneously: P(exists n: mu not in [L_n, U_n]) <= alpha, so it stays
valid at a data-dependent stopping time with no alpha split over the rounds.

The CS. Hedged betting of Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
betting", JRSS-B 86(1), 2024 (online 2023; arXiv 2010.09686): the hedged capital process and its
without-replacement version. For a candidate mean m, a gambler bets on the next outcome X_t being above or below
its conditional mean under m,

    mu_t(m) = (N m - sum_{i<t} X_i) / (N - t + 1)     (finite population N, drawn without
                                                        replacement: the mean of what remains)
    mu_t(m) = m                                        (infinite population / with replacement)

and the two capital processes

    K+_t(m) = prod_i (1 + l+_i(m) (X_i - mu_i(m))),   l+_i = min(lambda_i, c / mu_i(m))
    K-_t(m) = prod_i (1 - l-_i(m) (X_i - mu_i(m))),   l-_i = min(lambda_i, c / (1 - mu_i(m)))

are, at the true mean, non-negative martingales with initial value 1 (each factor has
conditional expectation 1 because E[X_t | past] = mu_t(mu), and is >= 1 - c > 0 because the
caps keep the bet inside [-1/(1-mu_t), 1/mu_t]). So is their mixture K = K+/2 + K-/2, and by
Ville's inequality P(exists t: K_t(mu) >= 1/alpha) <= alpha. The CS is {m : max(K+/2, K-/2) <
1/alpha}, a superset of {m : K < 1/alpha}. ``lambda_i`` is the paper's predictable plug-in
(a function of X_1..X_{i-1} only, which is all the martingale argument needs):

    lambda_t = sqrt(2 ln(2/alpha) / (s2_{t-1} t ln(1 + t))),
    s2_t = (1/4 + sum_{i<=t} (X_i - m_i)^2) / (t + 1),   m_t = (1/2 + sum_{i<=t} X_i) / (t + 1).

Every factor of K+ is non-increasing in m and every factor of K- non-decreasing (mu_t(m) is
increasing in m; for X >= mu the bet and the deviation both shrink, for X < mu the loss
min(lambda, c/mu)(mu - X) grows), so the CS is an interval (L, U). Each end is found by regula
falsi (Illinois) from its rejected side, to 1e-7, and returned on that side: rounded
*outwards* (a superset of a valid CS is valid).

Finite population: with N known, [S_n / N, (S_n + N - n) / N] contains the mean with certainty
(the unseen N - n outcomes lie in [0, 1]); the CS is intersected with it, so that once the whole
population has been seen the interval is the exact mean, of zero width.

What it gives: all-zero outcomes -> U_n ~ ln(2/alpha) / (c n) ~ 4.9 / n at 95 % with c = 3/4
(ln(1/alpha) / n ~ 3 / n is the one-sided, un-hedged floor: P(n zeros | mean m) ~ e^{-m n}), and
no normal approximation anywhere.

The one-sided upper sequence (:func:`upper_sequence`) reaches that floor. It bets everything on
X_t being below its conditional mean: the stake 1 / (1 - mu_t(m)), the largest that keeps the
capital non-negative, gives

    K0_t(m) = prod_i (1 - X_i) / (1 - mu_i(m)),

again a non-negative martingale with initial value 1 at the true mean (E[1 - X_t | past] =
1 - mu_t), non-decreasing in m, so {m : K0 < 1/alpha} = [0, U0) holds at every n at once with
probability >= 1 - alpha. On all-zero outcomes it is the exact bound: K0_n(m) = 1 / P(n zeros)
for the population of N m ones and N (1 - m) zeros (the hypergeometric probability
C(N - N m, n) / C(N, n); (1 - m)^n with replacement), so U0 is where that probability is
alpha, about ln(1/alpha) / n; no population of [0, 1] values with mean m gives n zeros more often
(P(X > 0) >= m). Small non-zero outcomes cost it little (ln K0 ~ n (m - mean) - sum X_i^2 / 2),
but one outcome of 1 sets K0 to 0 for good: it is a bound for units whose outcomes are small,
to be combined with the two-sided sequence (:mod:`~hsiseu.faults.stats.adaptive` splits alpha
between them).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["confidence_sequence", "upper_sequence", "deterministic_range", "BET_CAP"]

#: the cap c on the bets (Waudby-Smith & Ramdas use 1/2 or 3/4): closer to 1 gives a tighter
#: bound on runs of zeros (the common case here: most faults change no pixel), at the price of
#: more capital lost when a rare large outcome arrives.
BET_CAP = 0.75

#: the ends are found to within this (absolute), then rounded outwards.
_TOL = 1e-7
_MAX_STEPS = 200


def deterministic_range(x: np.ndarray, population: int | None) -> tuple[float, float]:
    """The means possible at all once ``x`` (in [0, 1]) has been seen out of ``population``
    values: the unseen ones are 0 at the lowest and 1 at the highest. (0, 1) when ``population``
    is ``None`` (infinite)."""
    x = np.asarray(x, dtype=np.float64)
    if population is None:
        return 0.0, 1.0
    n, total = len(x), float(x.sum())
    # (population - n) first: with every value seen, total + population - n loses total's last
    # bits ((0.8 + 4) - 4 = 0.7999999999999998) and the range would exclude the exact mean
    return total / population, min(1.0, (total + (population - n)) / population)


def _bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bets lambda_1..lambda_n (lambda_t uses X_1..X_{t-1} only)."""
    n = len(x)
    t = np.arange(1, n + 1, dtype=np.float64)
    mean_hat = (0.5 + np.cumsum(x)) / (t + 1)
    var_hat = (0.25 + np.cumsum((x - mean_hat) ** 2)) / (t + 1)
    var_prev = np.concatenate([[0.25], var_hat[:-1]])
    return np.sqrt(2 * math.log(2 / alpha) / (var_prev * t * np.log1p(t)))


class _Capital:
    """log K+(m) and log K-(m) after the outcomes ``x``: mu_t(m) = a_t m - b_t."""

    def __init__(self, x: np.ndarray, alpha: float, population: int | None, c: float) -> None:
        n = len(x)
        self.x, self.c, self.lam = x, c, _bets(x, alpha)
        if population is None:
            self.a, self.b = np.ones(n), np.zeros(n)
        else:
            remaining = population - np.arange(n, dtype=np.float64)
            self.a = population / remaining
            self.b = np.concatenate([[0.0], np.cumsum(x)[:-1]]) / remaining

    def _mu(self, m: float) -> np.ndarray:
        return np.clip(self.a * m - self.b, 0.0, 1.0)

    def up(self, m: float) -> float:
        mu = self._mu(m)
        bet = np.minimum(self.lam, self.c / np.maximum(mu, 1e-300))
        return float(np.log1p(bet * (self.x - mu)).sum())

    def down(self, m: float) -> float:
        mu = self._mu(m)
        bet = np.minimum(self.lam, self.c / np.maximum(1.0 - mu, 1e-300))
        return float(np.log1p(bet * (mu - self.x)).sum())


def _edge(score, outside: float, s_out: float, inside: float, s_in: float) -> float:
    """The CS's end between ``outside`` (score >= 0: rejected) and ``inside`` (score < 0), for a
    score monotone along the segment: regula falsi with the Illinois fix, bisecting whenever
    the bracket fails to halve in two steps. Returns a rejected point within ``_TOL`` of the end
    (rounded outwards)."""
    side, widths = 0, []
    for _ in range(_MAX_STEPS):
        width = abs(inside - outside)
        if width <= _TOL:
            break
        if len(widths) >= 2 and width > 0.5 * widths[-2]:
            point = (outside + inside) / 2
        else:
            point = outside + (inside - outside) * s_out / (s_out - s_in)
            lo, hi = min(outside, inside), max(outside, inside)
            point = min(max(point, lo + _TOL / 4), hi - _TOL / 4)
        widths.append(width)
        s = score(point)
        if s >= 0:
            outside, s_out = point, s
            if side == -1:
                s_in /= 2
            side = -1
        else:
            inside, s_in = point, s
            if side == 1:
                s_out /= 2
            side = 1
    return outside


def confidence_sequence(x: np.ndarray, confidence: float, population: int | None = None, *,
                        c: float | None = None) -> tuple[float, float]:
    """(L, U) after the outcomes ``x`` (in [0, 1], in draw order), valid at every n at once.

    ``population`` is N when ``x`` is drawn without replacement from N values (a uniformly
    random order: any prefix of a seeded permutation), ``None`` for independent draws. With no
    outcome the interval is the deterministic range; with all N seen it is the exact mean.
    """
    x, population = _checked(x, confidence, population)
    c = BET_CAP if c is None else c
    if not 0 < c < 1:
        raise ValueError(f"the bet cap c must be in (0, 1), got {c!r}")
    lo_det, hi_det = deterministic_range(x, population)
    if len(x) == 0 or hi_det - lo_det <= 0:
        return lo_det, hi_det
    alpha = 1 - confidence
    capital = _Capital(x, alpha, population, c)
    # reject m when K+/2 or K-/2 reaches 1/alpha; scores >= 0 mean rejected
    threshold = math.log(2 / alpha)

    def up(m: float) -> float:
        return capital.up(m) - threshold

    def down(m: float) -> float:
        return capital.down(m) - threshold

    up_lo, up_hi, down_lo, down_hi = up(lo_det), up(hi_det), down(lo_det), down(hi_det)
    if up_hi >= 0 or down_lo >= 0:
        # K+ rejects even the highest possible mean (or K- the lowest): the CS is empty, which
        # happens with probability <= alpha. Keep the range's end nearest the data, a point.
        point = hi_det if up_hi >= 0 else lo_det
        return point, point
    # K+ is non-increasing in m, K- non-decreasing: L is where K+ stops rejecting, U where K-
    # starts; each found from the side that is rejected, so both are rounded outwards.
    low = lo_det if up_lo < 0 else _edge(up, lo_det, up_lo, hi_det, up_hi)
    high = hi_det if down_hi < 0 else _edge(down, hi_det, down_hi, lo_det, down_lo)
    return float(low), float(high)


def _checked(x: np.ndarray, confidence: float, population: int | None) -> tuple[np.ndarray, int | None]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
        raise ValueError("outcomes must be finite and in [0, 1]")
    if population is not None:
        population = int(population)
        if len(x) > population:
            raise ValueError(f"{len(x)} outcomes drawn from a population of {population}")
    return x, population


#: mu_t(m) is kept below 1 - this in the all-in bet (a smaller stake there: still a supermartingale)
_MU_MAX = 1.0 - 1e-12


def upper_sequence(x: np.ndarray, confidence: float, population: int | None = None) -> float:
    """U0: the upper end of the one-sided confidence sequence of the all-in bet on outcomes below
    the mean (module docstring), valid at every n at once: P(exists n: mu > U0_n) <= 1 -
    ``confidence``. ``population`` as for :func:`confidence_sequence`. The exact (hypergeometric,
    resp. binomial) bound on all-zero outcomes; the deterministic range's top once an outcome of 1
    has been seen."""
    x, population = _checked(x, confidence, population)
    lo_det, hi_det = deterministic_range(x, population)
    if len(x) == 0 or hi_det - lo_det <= 0 or x.max() >= 1:
        return hi_det
    n = len(x)
    if population is None:
        a, b = np.ones(n), np.zeros(n)
    else:
        remaining = population - np.arange(n, dtype=np.float64)
        a = population / remaining
        b = np.concatenate([[0.0], np.cumsum(x)[:-1]]) / remaining
    kept = float(np.log1p(-x).sum())
    threshold = math.log(1 / (1 - confidence))

    def score(m: float) -> float:  # log K0(m) - log(1/alpha): >= 0 means m is rejected
        mu = np.clip(a * m - b, 0.0, _MU_MAX)
        return kept - float(np.log1p(-mu).sum()) - threshold

    s_lo, s_hi = score(lo_det), score(hi_det)
    if s_lo >= 0:  # even the lowest possible mean is rejected (probability <= alpha): a point
        return lo_det
    if s_hi < 0:
        return hi_det
    return float(_edge(score, hi_det, s_hi, lo_det, s_lo))
