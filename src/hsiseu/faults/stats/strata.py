"""Strata inside a population unit, known from the weights before any fault is run.

Why. The exponent MSB cell of a float kernel is the costly one: flipping bit 30 of a weight
below 2 in magnitude multiplies it by 2**128, and whether that wipes the output or vanishes
behind the next ReLU depends mostly on the weight's *sign*. The cell's outcomes are bimodal, so a
rule that has to bound the cell's variance stops near Leveugle's n at p = 1/2. Within a sign they
sit near one mode: on 10 of the default ReLU model's 17 large bit-30 cells the variance is
0.12-0.18 within the cell and 0.000-0.013 within a sign (weighted by the signs' shares). A mean
known per sign is the cell's mean once the signs' exact shares are applied.

How. A key (:data:`KEYS`) maps each (value, bit) pair of a unit to a stratum from the stored
value alone: ``sign`` (the value is negative: the top stored bit, for floats and two's-complement
integers alike) and ``bit_value`` (the flipped bit is 1 now, so the flip clears it). Their
population shares W_h are exact (counted over the unit). The unit is still sampled uniformly
without replacement in its seeded order -- *post-stratification*: each stratum's faults, in
the order they arrive, are then a uniformly random without-replacement order of that stratum, so
a confidence sequence per stratum holds at every look, and the unit-level all-in bound U0 (the
exact bound on all-zero samples) keeps holding for the whole unit. The unit's mean is
sum_h W_h mean_h, and its bounds are

- ``sum_h W_h L_h, sum_h W_h U_h`` from per-stratum two-sided sequences at alpha_2 / H each (by
  the union bound all H hold together with probability >= 1 - alpha_2);
- the stratified normal interval, half-width ``t sqrt(sum_h W_h^2 p_h (1 - p_h) / n_h * fpc_h)``
  with p_h the variance bound each stratum's sequence earned (Cochran, Sampling Techniques,
  ch. 5, with the bound p* of :func:`~hsiseu.faults.stats.intervals.variance_p` in place of each
  stratum's variance: the same Leveugle interval, per stratum).

Why uniform sampling rather than Neyman allocation: it keeps U0 valid for the unit, so a unit
whose faults change nothing stops at the same exact bound as an unstratified one (146 faults at
e = 2.5 %, 95 %), and most units are of that kind. On the default ReLU model's 17 large bit-30
cells, a normal interval at their within-sign variances would need 1,689 faults with Neyman
allocation and 2,172 with the uniform one: the allocation matters little beside the variance
bound (the rule without strata ran 14,742 faults there, with them 8,666).

A stratum under :data:`MIN_SHARE` of its unit would get too few faults for its own bound to be
worth its share of alpha: a unit whose smallest stratum is that small is not stratified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
import numpy as np

from hsiseu.faults.stats.bounds import confidence_sequence
from hsiseu.faults.stats.intervals import finite_population_correction, two_sided_z, variance_p

__all__ = ["KEYS", "MIN_SHARE", "Strata", "stratum_codes", "unit_strata"]

KEYS = ("sign", "bit_value")

#: the smallest stratum share a stratified unit may hold (see the module docstring)
MIN_SHARE = 0.05


def _raw(values: np.ndarray) -> np.ndarray:
    """The stored bits of ``values`` as unsigned integers of the same width."""
    values = np.ascontiguousarray(values)
    return values.view(np.dtype(f"u{values.dtype.itemsize}")).astype(np.uint64)


def stratum_codes(values: np.ndarray, index: np.ndarray, bit: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """The stratum code of each fault (flip ``bit`` of value ``index`` of ``values``): key j
    contributes bit j of the code. Reads the stored bits only, so a float and an int8 tensor
    are the same case."""
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise ValueError(f"unknown faults.sampling.strata key(s) {unknown}; expected some of {list(KEYS)}")
    values = np.asarray(values).reshape(-1)
    raw = _raw(values)[np.asarray(index, dtype=np.int64)]
    width = 8 * values.dtype.itemsize
    code = np.zeros(len(raw), dtype=np.int64)
    for j, key in enumerate(keys):
        shift = np.full(len(raw), width - 1, dtype=np.uint64) if key == "sign" else np.asarray(bit, dtype=np.uint64)
        code |= ((raw >> shift) & np.uint64(1)).astype(np.int64) << j
    return code


def unit_strata(members: Sequence[tuple[np.ndarray, Sequence[int]]], keys: Sequence[str]) -> np.ndarray | None:
    """The population of each stratum code (0 .. 2**len(keys) - 1) over a unit's (value, bit)
    pairs, ``members`` = (values, bits) per parameter set of the unit; ``None`` when the unit is
    not stratified (no keys, a single stratum, or one under :data:`MIN_SHARE`)."""
    if not keys:
        return None
    sizes = np.zeros(2 ** len(keys), dtype=np.int64)
    for values, bits in members:
        values = np.asarray(values).reshape(-1)
        index = np.arange(len(values), dtype=np.int64)
        for b in bits:
            sizes += np.bincount(stratum_codes(values, index, np.full(len(values), b), keys), minlength=len(sizes))
    held = sizes[sizes > 0]
    if len(held) < 2 or held.min() < MIN_SHARE * sizes.sum():
        return None
    return sizes


@dataclass(frozen=True)
class Strata:
    """A unit's strata: ``ids`` the stratum (0..H-1) of each candidate in rank order, ``sizes``
    the population N_h of each (summing to the unit's population)."""

    ids: np.ndarray
    sizes: np.ndarray

    def __post_init__(self) -> None:
        ids, sizes = np.asarray(self.ids, dtype=np.int64), np.asarray(self.sizes, dtype=np.int64)
        if sizes.ndim != 1 or len(sizes) < 2 or sizes.min() < 1:
            raise ValueError(f"strata need >= 2 non-empty strata, got sizes {sizes.tolist()}")
        if len(ids) and (ids.min() < 0 or ids.max() >= len(sizes)):
            raise ValueError(f"stratum ids outside 0..{len(sizes) - 1}")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def from_codes(cls, codes: np.ndarray, sizes_by_code: Sequence[int]) -> "Strata":
        """From stratum codes (:func:`stratum_codes`) and the population of every code (empty
        codes dropped, the rest numbered in code order)."""
        sizes_by_code = np.asarray(sizes_by_code, dtype=np.int64)
        held = np.flatnonzero(sizes_by_code)
        renumber = np.full(len(sizes_by_code), -1, dtype=np.int64)
        renumber[held] = np.arange(len(held))
        ids = renumber[np.asarray(codes, dtype=np.int64)]
        if len(ids) and ids.min() < 0:
            raise ValueError("a candidate falls in a stratum of population 0")
        return cls(ids, sizes_by_code[held])

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def weights(self) -> np.ndarray:
        return self.sizes / self.sizes.sum()

    def counts(self, n: int) -> np.ndarray:
        """n_h of the first ``n`` candidates."""
        return np.bincount(self.ids[:n], minlength=len(self))

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """The outcomes of ranks 0..len(x)-1, per stratum, each in rank order."""
        ids = self.ids[: len(x)]
        return [x[ids == h] for h in range(len(self))]

    def estimate(self, x: np.ndarray) -> float:
        """sum_h W_h mean_h; the plain mean while a stratum has no outcome yet."""
        parts = self.split(x)
        if any(len(p) == 0 for p in parts):
            return float(np.mean(x)) if len(x) else 0.0
        return float(sum(w * p.mean() for w, p in zip(self.weights, parts)))

    def bounds(self, x: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """Each stratum's two-sided confidence sequence at ``confidence`` (its [0, 1] range
        before its first outcome)."""
        pairs = [confidence_sequence(p, confidence, int(size)) for p, size in zip(self.split(x), self.sizes)]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def normal_half_width(self, counts: np.ndarray, lows: np.ndarray, highs: np.ndarray, confidence: float) -> float:
        """The stratified normal interval's half-width with each stratum's variance bound
        p_h (1 - p_h), p_h = :func:`variance_p` of its bounds; inf while a stratum has fewer than
        2 outcomes (its own normal approximation would rest on nothing)."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.min() < 2:
            return math.inf
        p = np.array([variance_p(lo, hi) for lo, hi in zip(lows, highs)])
        fpc = np.array([finite_population_correction(int(n), int(size))
                        for n, size in zip(counts, self.sizes)])
        variance = float(np.sum(self.weights ** 2 * p * (1 - p) / counts * fpc))
        return two_sided_z(confidence) * math.sqrt(variance)
