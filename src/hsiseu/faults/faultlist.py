"""The fault list: every fault of a campaign, drawn once from a seed and stored as a file.

A fault is data: (parameter set, flat index into it, bit). Each (set, bit) cell draws its
indices without replacement from its own random stream, ``SeedSequence([seed, set order, bit])``,
so the list is byte-identical for the same config and parameter sets, and adding a bit or a set
leaves every other cell's faults unchanged. Faults are numbered 0.. in file order: set (graph
order), bit (high to low), index (ascending); shards and outcomes refer to that number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.faults.paramsets import ParameterSet
from hsiseu.faults.sampling import cell_sample_size
from hsiseu.io import atomic_path

__all__ = ["Fault", "COLUMNS", "UNIT_COLUMNS", "STRATUM_COLUMNS", "bits_for", "generate", "write", "read", "shard_of", "faults_of"]

COLUMNS = ("fault", "set", "bit", "index")
#: the columns a list of candidates adds (``hsiseu.faults.stats.candidates``): its population
#: unit and the fault's position in the unit's seeded order, of which a sequential run takes
#: a prefix.
UNIT_COLUMNS = ("unit", "rank")
#: and, for an adaptive list with strata (:mod:`hsiseu.faults.stats.strata`), the fault's
#: stratum within its unit and the unit's stratum populations (``;``-joined; one number for a
#: unit that is not stratified).
STRATUM_COLUMNS = ("stratum", "stratum_sizes")


@dataclass(frozen=True)
class Fault:
    """One single-bit upset: flip ``bit`` of value ``index`` (flat, C order) of set ``set``."""

    fault: int
    set: str
    index: int
    bit: int


def bits_for(pset: ParameterSet, bits: Sequence[int] | None) -> list[int]:
    """The bits to inject into a set, high to low: all of its width (``None``), or the
    configured ones that exist in it (a 32-bit list applied to an int8 set keeps 0..7)."""
    width = pset.n_bits
    chosen = range(width) if bits is None else [b for b in set(int(b) for b in bits) if 0 <= b < width]
    return sorted(chosen, reverse=True)


def generate(
    sets: Sequence[ParameterSet],
    *,
    sampling: Mapping[str, Any],
    bits: Sequence[int] | None,
    seed: int,
) -> pd.DataFrame:
    """Draw the fault list (columns :data:`COLUMNS`)."""
    names, bit_col, index_col = [], [], []
    for order, pset in enumerate(sets):
        for bit in bits_for(pset, bits):
            n = cell_sample_size(pset.size, sampling)
            if n >= pset.size:
                idx = np.arange(pset.size, dtype=np.int64)
            else:
                rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), order, bit])))
                idx = np.sort(rng.choice(pset.size, size=n, replace=False)).astype(np.int64)
            names.extend([pset.name] * len(idx))
            bit_col.append(np.full(len(idx), bit, dtype=np.int64))
            index_col.append(idx)
    frame = pd.DataFrame(
        {
            "set": pd.Series(names, dtype=object),
            "bit": np.concatenate(bit_col) if bit_col else np.zeros(0, np.int64),
            "index": np.concatenate(index_col) if index_col else np.zeros(0, np.int64),
        }
    )
    frame.insert(0, "fault", np.arange(len(frame), dtype=np.int64))
    return frame


def write(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    columns = list(COLUMNS) + [c for c in UNIT_COLUMNS + STRATUM_COLUMNS if c in frame.columns]
    with atomic_path(path) as tmp:
        frame.loc[:, columns].to_csv(tmp, index=False, lineterminator="\n")


def read(path: str | os.PathLike[str]) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"fault": np.int64, "set": str, "bit": np.int64, "index": np.int64,
                                     "unit": str, "rank": np.int64, "stratum": np.int64, "stratum_sizes": str})
    if tuple(frame.columns) not in (COLUMNS, COLUMNS + UNIT_COLUMNS, COLUMNS + UNIT_COLUMNS + STRATUM_COLUMNS):
        raise ValueError(f"{path}: fault list columns {list(frame.columns)}, expected {list(COLUMNS)} "
                         f"(plus {list(UNIT_COLUMNS)} for a list of candidates, and {list(STRATUM_COLUMNS)} "
                         "for one with strata)")
    return frame


def shard_of(frame: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """Shard ``shard`` of ``n_shards`` (0-based): every n-th fault, so that each shard gets the
    same mix of cheap and expensive layers and the shards finish together."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return frame[frame["fault"] % n_shards == shard].reset_index(drop=True)


def faults_of(frame: pd.DataFrame) -> list[Fault]:
    return [Fault(int(f), str(s), int(i), int(b)) for f, s, b, i in frame.loc[:, list(COLUMNS)].itertuples(index=False)]
