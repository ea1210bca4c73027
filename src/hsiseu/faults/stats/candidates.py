"""Population units and their candidate faults, in a seeded order that every run is a prefix of.

Why units. Leveugle's n is a sample size for *one* population; which population is a choice
(Ruospo et al., DATE 2023):

- ``cell``: one (parameter set, bit); N = the set's size (one fault per value for that bit).
  The per-(set, bit) estimates the figures show; today's fault list.
- ``set``: one parameter set, the bit drawn uniformly per fault: the population is its
  (value, bit) pairs, N = size x bits. The paper's literal "1550 soft errors per parameter set".
- ``network``: every (set, value, bit) triple of the model, N = their sum. One estimate for the
  whole model (per-set figures become anecdotal).

``mantissa_population: set`` (with ``population: cell``) pools a float set's mantissa bits into
one unit, ``<set>:mantissa``: N = size x mantissa bits, the bit drawn uniformly per fault. Its
mean is exactly the mean of those bits' cell means, so a set's mean over bits stays estimable
with an interval; the cost is ~one cell's faults instead of 23 for bits whose errors are small
and which the paper's heat maps leave out.

Why a seeded order. Each unit draws its candidates -- its Leveugle list (at p = 1/2 for
``adaptive``, at the configured p for ``leveugle``, ``fixed_n`` for ``fixed``), capped at N --
without replacement in a uniformly random order from its own stream; ``rank`` is the position in
that order. Any prefix is then itself a uniformly random without-replacement sample, which is
what the confidence sequence assumes, and adaptive sampling runs a prefix of each unit. A
``cell`` unit uses faultlist's stream ``SeedSequence([seed, set order, bit])`` and
``Generator.choice``'s draw, so its candidates *as a set* are exactly the faults
:func:`hsiseu.faults.faultlist.generate` draws for that cell with the same sample size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.faults.bitflip import bit_field
from hsiseu.faults.faultlist import bits_for
from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.sampling import leveugle_n
from hsiseu.faults.stats.adaptive import METHODS, MIN_ROUND, UnitState
from hsiseu.faults.stats.strata import KEYS, Strata, stratum_codes, unit_strata

__all__ = ["POPULATIONS", "MANTISSA_POPULATIONS", "UNIT_COLUMNS", "mantissa_population_of", "cell_units", "unit_layout",
           "in_rank_order", "CANDIDATE_COLUMNS", "method_of", "population_of", "unit_sample_size",
           "units", "candidate_faults", "unit_state", "pending_faults", "strata_keys_of", "list_strata"]

POPULATIONS = ("cell", "set", "network")
MANTISSA_POPULATIONS = ("cell", "set")
UNIT_COLUMNS = ("unit", "set", "bit", "bits", "population", "candidates", "error_margin")
CANDIDATE_COLUMNS = ("fault", "set", "bit", "index", "unit", "rank")

#: third SeedSequence word of the ``set`` and ``network`` streams: above every bit number, so no
#: stream coincides with a cell's ``[seed, order, bit]`` (SeedSequence pads short entropy with
#: zeros, hence three words everywhere).
_SET_STREAM, _NETWORK_STREAM, _MANTISSA_STREAM = 1000, 1001, 1002
#: the ``bit`` of a unit that mixes bits (``set``, ``network``) and the ``set`` of ``network``.
ANY_BIT, ANY_SET = -1, "*"


def method_of(sampling: Mapping[str, Any]) -> str:
    """``faults.sampling.method``; without it, today's rule: ``fixed`` when ``fixed_n`` is set,
    else ``leveugle`` (the same choice as :func:`hsiseu.faults.sampling.cell_sample_size`)."""
    method = sampling.get("method")
    if method is None:
        method = "fixed" if sampling.get("fixed_n") is not None else "leveugle"
    if method not in METHODS:
        raise ValueError(f"unknown faults.sampling.method {method!r}; expected one of {METHODS}")
    return str(method)


def population_of(sampling: Mapping[str, Any]) -> str:
    """``faults.sampling.population``; ``cell`` (today's per-(set, bit) list) when absent."""
    population = str(sampling.get("population") or "cell")
    _check_population(population)
    return population


def mantissa_population_of(sampling: Mapping[str, Any]) -> str:
    """``faults.sampling.mantissa_population``: ``cell`` (as the other bits) when absent or null;
    ``set`` pools each float set's mantissa bits (only with ``population: cell``)."""
    mantissa = str(sampling.get("mantissa_population") or "cell")
    if mantissa not in MANTISSA_POPULATIONS:
        raise ValueError(f"unknown faults.sampling.mantissa_population {mantissa!r}; "
                         f"expected one of {MANTISSA_POPULATIONS}")
    if mantissa == "set" and population_of(sampling) != "cell":
        raise ValueError("faults.sampling.mantissa_population: set pools mantissa bits of the cell "
                         f"population; population is {population_of(sampling)!r}")
    return mantissa


def strata_keys_of(sampling: Mapping[str, Any]) -> list[str]:
    """``faults.sampling.strata``: the keys that split an adaptive unit into strata known from
    the weights (:mod:`hsiseu.faults.stats.strata`); none when absent. Only ``adaptive`` uses
    strata: another method with strata is refused rather than silently ignored."""
    keys = list(sampling.get("strata") or [])
    unknown = [k for k in keys if k not in KEYS]
    if unknown or len(set(keys)) != len(keys):
        raise ValueError(f"faults.sampling.strata {keys}: expected distinct keys out of {list(KEYS)}")
    if keys and method_of(sampling) != "adaptive":
        raise ValueError(f"faults.sampling.strata {keys} needs method adaptive, not {method_of(sampling)!r}")
    return keys


def in_rank_order(sampling: Mapping[str, Any]) -> bool:
    """Whether the fault list holds units' candidates in their seeded order (this module's list)
    rather than :func:`hsiseu.faults.faultlist.generate`'s per-cell list, sorted by index: for
    adaptive sampling and for every population but plain cells."""
    return (method_of(sampling) == "adaptive" or population_of(sampling) != "cell"
            or mantissa_population_of(sampling) != "cell")


def margin_of(sampling: Mapping[str, Any], pset: ParameterSet, bits: Sequence[int]) -> float:
    """The error margin of a unit: ``mantissa_error_margin`` when it is set and every bit of the
    unit lies in a float mantissa (whose errors are small: a wider margin there buys the sign and
    exponent cells the figures show a tight one), else ``error_margin``."""
    wide = sampling.get("mantissa_error_margin")
    if wide is not None and bits and all(bit_field(np.dtype(pset.dtype), b) == "mantissa" for b in bits):
        return float(wide)
    return float(sampling["error_margin"])


def unit_sample_size(population: int, sampling: Mapping[str, Any]) -> int:
    """Candidates of a unit of ``population`` faults: ``fixed_n`` (fixed), Leveugle's n at the
    configured p (leveugle) or at p = 1/2 (adaptive: the most it may run); never more than N."""
    method = method_of(sampling)
    if method == "fixed":
        if sampling.get("fixed_n") is None:
            raise ValueError("faults.sampling.method fixed needs fixed_n")
        n = int(sampling["fixed_n"])
    else:
        p = 0.5 if method == "adaptive" else float(sampling.get("p", 0.5))
        n = leveugle_n(population, float(sampling["error_margin"]), float(sampling["confidence"]), p)
    return min(n, int(population))


def _check_population(population: str) -> None:
    if population not in POPULATIONS:
        raise ValueError(f"unknown faults.sampling.population {population!r}; expected one of {POPULATIONS}")


def _is_mantissa(pset: ParameterSet, bit: int) -> bool:
    return bit_field(np.dtype(pset.dtype), bit) == "mantissa"


def _unit_rows(sets: Sequence[ParameterSet], bits: Sequence[int] | None, population: str,
               mantissa: str = "cell"):
    """(label, stream entropy after the seed, set, bit, [(set order, pset, bits)]) per unit, in
    file order."""
    _check_population(population)
    chosen = [(order, pset, bits_for(pset, bits)) for order, pset in enumerate(sets)]
    chosen = [(order, pset, b) for order, pset, b in chosen if b and pset.size]
    if population == "set":
        return [(pset.name, [order, _SET_STREAM], pset.name, ANY_BIT, [(order, pset, b)]) for order, pset, b in chosen]
    if population == "network":
        return [("network", [0, _NETWORK_STREAM], ANY_SET, ANY_BIT, chosen)] if chosen else []
    rows = []
    for order, pset, b in chosen:
        pooled = [bit for bit in b if _is_mantissa(pset, bit)] if mantissa == "set" else []
        rows += [(f"{pset.name}:{bit}", [order, bit], pset.name, bit, [(order, pset, [bit])])  # faultlist's stream
                 for bit in b if bit not in pooled]
        if pooled:
            rows.append((f"{pset.name}:mantissa", [order, _MANTISSA_STREAM], pset.name, ANY_BIT, [(order, pset, pooled)]))
    return rows


def _rows_of(sets, bits, sampling):
    return _unit_rows(sets, bits, population_of(sampling), mantissa_population_of(sampling))


def cell_units(sets: Sequence[ParameterSet], bits: Sequence[int] | None,
               sampling: Mapping[str, Any]) -> dict[tuple[str, int], str]:
    """The unit label of every (set, bit) cell under ``sampling``."""
    return {(pset.name, bit): label for label, _, _, _, members in _rows_of(sets, bits, sampling)
            for _, pset, b in members for bit in b}


def unit_layout(sets: Sequence[ParameterSet], bits: Sequence[int] | None,
                sampling: Mapping[str, Any]) -> pd.DataFrame:
    """Per unit (indexed by label): its set (``*`` for network), bits spanned and population N;
    needs no sample-size settings."""
    rows = [{"unit": label, "set": name, "bits": _bits(members), "population": _size(members)}
            for label, _, name, _, members in _rows_of(sets, bits, sampling)]
    return pd.DataFrame(rows, columns=["unit", "set", "bits", "population"]).set_index("unit")


def _unit_sampling(sampling: Mapping[str, Any], members) -> dict[str, Any]:
    """The sampling settings of one unit (its own error margin, see :func:`margin_of`)."""
    if sampling.get("error_margin") is None:
        return dict(sampling)
    margins = {margin_of(sampling, pset, b) for _, pset, b in members}
    return {**sampling, "error_margin": margins.pop() if len(margins) == 1 else float(sampling["error_margin"])}


def _size(members) -> int:
    return sum(pset.size * len(b) for _, pset, b in members)


def _bits(members) -> int:
    return sum(len(b) for _, _, b in members)


def units(sets: Sequence[ParameterSet], bits: Sequence[int] | None, population: str,
          sampling: Mapping[str, Any]) -> pd.DataFrame:
    """One row per unit (columns :data:`UNIT_COLUMNS`): its label, set (``*`` for network),
    bit (-1 when bits are mixed), population N and candidates (the most faults it runs)."""
    rows = []
    for label, _, name, bit, members in _rows_of(sets, bits, {**sampling, "population": population}):
        size = _size(members)
        own = _unit_sampling(sampling, members)
        rows.append({"unit": label, "set": name, "bit": bit, "bits": _bits(members), "population": size,
                     "candidates": unit_sample_size(size, own), "error_margin": own.get("error_margin")})
    return pd.DataFrame(rows, columns=list(UNIT_COLUMNS)).astype(
        {"bit": np.int64, "bits": np.int64, "population": np.int64, "candidates": np.int64})


def _ordered_sample(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """n of 0..size-1 without replacement, in a uniformly random order (a prefix of a random
    permutation). ``choice`` shuffles its draw, so the order is uniform as well as the set."""
    if n >= size:
        return rng.permutation(size).astype(np.int64)
    return rng.choice(size, size=n, replace=False).astype(np.int64)


def candidate_faults(sets: Sequence[ParameterSet], bits: Sequence[int] | None, population: str,
                     sampling: Mapping[str, Any], seed: int,
                     values: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Every unit's candidates (columns :data:`CANDIDATE_COLUMNS`), units in file order (sets in
    graph order, bits high to low), each by ``rank``; ``fault`` numbers the rows 0.., so the
    frame is a fault list and the prefix ``rank < k`` of a unit is its first k faults.

    With ``faults.sampling.strata`` the frame adds each fault's stratum and its unit's stratum
    populations (:data:`~hsiseu.faults.faultlist.STRATUM_COLUMNS`), read from ``values`` (the
    sets' stored values by name); the order is the same as without."""
    keys = strata_keys_of(sampling)
    if keys and values is None:
        raise ValueError(f"faults.sampling.strata {keys}: the candidates' strata need the sets' values")
    names, bit_cols, index_cols, labels, ranks, strata, strata_sizes = [], [], [], [], [], [], []
    for label, stream, _, _, members in _rows_of(sets, bits, {**sampling, "population": population}):
        size = _size(members)
        n = unit_sample_size(size, _unit_sampling(sampling, members))
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *stream])))
        k = _ordered_sample(rng, size, n)
        # k -> (set, value, bit): members are laid out one after the other, each as value-major
        # (value, bit) pairs, bits high to low.
        if len(members) == 1:
            member = np.zeros(len(k), dtype=np.int64)
            starts = np.zeros(1, dtype=np.int64)
        else:
            starts = np.cumsum([0] + [pset.size * len(b) for _, pset, b in members])
            member = np.searchsorted(starts, k, side="right") - 1
        set_names = np.array([pset.name for _, pset, _ in members], dtype=object)
        widths = np.array([len(b) for _, _, b in members], dtype=np.int64)
        bit_table = np.full((len(members), max(widths)), -1, dtype=np.int64)
        for j, (_, _, b) in enumerate(members):
            bit_table[j, :len(b)] = b
        local = k - starts[member]
        names.append(set_names[member])
        index_cols.append(local // widths[member])
        bit_cols.append(bit_table[member, local % widths[member]])
        labels.append(np.full(len(k), label, dtype=object))
        ranks.append(np.arange(len(k), dtype=np.int64))
        if keys:
            ids, sizes = _candidate_strata(members, member, index_cols[-1], bit_cols[-1], values, keys)
            strata.append(ids)
            strata_sizes.append(np.full(len(k), ";".join(map(str, sizes)), dtype=object))

    def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    rank = joined(ranks, np.int64)
    frame = pd.DataFrame({
        "fault": np.arange(len(rank), dtype=np.int64),
        "set": pd.Series(joined(names, object), dtype=object),
        "bit": joined(bit_cols, np.int64),
        "index": joined(index_cols, np.int64),
        "unit": pd.Series(joined(labels, object), dtype=object),
        "rank": rank,
    }, columns=list(CANDIDATE_COLUMNS))
    if keys:
        frame["stratum"] = joined(strata, np.int64)
        frame["stratum_sizes"] = pd.Series(joined(strata_sizes, object), dtype=object)
    return frame


def _candidate_strata(members, member: np.ndarray, index: np.ndarray, bit: np.ndarray,
                      values: Mapping[str, np.ndarray], keys: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """(stratum of each candidate, stratum populations) of one unit; one stratum (0, [N]) when
    :func:`~hsiseu.faults.stats.strata.unit_strata` leaves it unstratified."""
    sizes = unit_strata([(values[pset.name], b) for _, pset, b in members], keys)
    if sizes is None:
        return np.zeros(len(index), dtype=np.int64), [_size(members)]
    codes = np.zeros(len(index), dtype=np.int64)
    for j, (_, pset, _) in enumerate(members):
        mine = member == j
        codes[mine] = stratum_codes(values[pset.name], index[mine], bit[mine], keys)
    held = Strata.from_codes(codes, sizes)
    return held.ids, held.sizes.tolist()


def list_strata(frame: pd.DataFrame) -> dict[str, Strata | None]:
    """Each unit's :class:`~hsiseu.faults.stats.strata.Strata` from a list of candidates (its
    :data:`~hsiseu.faults.faultlist.STRATUM_COLUMNS`); ``None`` for a unit with one stratum or a
    list without strata."""
    if "stratum" not in frame.columns:
        return {}
    found = {}
    for unit, group in frame.sort_values(["unit", "rank"]).groupby("unit", sort=False):
        sizes = [int(v) for v in str(group["stratum_sizes"].iloc[0]).split(";")]
        found[unit] = Strata(group["stratum"].to_numpy(), sizes) if len(sizes) > 1 else None
    return found


def unit_state(unit: Mapping[str, Any], sampling: Mapping[str, Any], strata: Strata | None = None) -> UnitState:
    """A fresh :class:`~hsiseu.faults.stats.adaptive.UnitState` for a row of :func:`units`
    (``strata``: the unit's, from :func:`list_strata`)."""
    return UnitState(int(unit["population"]), method=method_of(sampling),
                     error_margin=float(unit.get("error_margin") or sampling.get("error_margin") or "nan"),
                     confidence=float(sampling["confidence"]), candidates=int(unit["candidates"]),
                     min_round=int(sampling.get("min_round", MIN_ROUND)), strata=strata)


def pending_faults(candidates: pd.DataFrame, states: Mapping[str, UnitState]) -> pd.DataFrame:
    """The rows of ``candidates`` (a :func:`candidate_faults` frame) that the units' next rounds
    run: for each unit in ``states``, the ranks of :meth:`UnitState.next_round`. Empty when
    every unit is done."""
    start = candidates["unit"].map({u: s.next_round().start for u, s in states.items()})
    stop = candidates["unit"].map({u: s.next_round().stop for u, s in states.items()})
    keep = start.notna() & (candidates["rank"] >= start) & (candidates["rank"] < stop)
    return candidates.loc[keep.to_numpy(dtype=bool)].reset_index(drop=True)
