"""Parameter sets: the units a campaign samples from and reports on, as plain data.

A parameter set is one stored tensor of a model (a conv kernel, a bias vector, a BatchNorm
gamma, an int8 weight tensor...). It is described by data only -- name, kind, layer, shape,
dtype -- so that sampling, outcomes, shards and figures work for any backend; only a backend
knows how the tensor is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from hsiseu.faults.bitflip import n_bits_of

__all__ = ["ParameterSet", "sets_frame", "sets_from_frame", "share_in_one_two"]


@dataclass(frozen=True)
class ParameterSet:
    """One injectable tensor. ``name`` is stable across runs (``cnv_3/kernel``); ``kind`` is
    what the tensor is (kernel, bias, gamma, beta, moving_mean, moving_variance, ...)."""

    name: str
    kind: str
    layer: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def n_bits(self) -> int:
        return n_bits_of(np.dtype(self.dtype))


def share_in_one_two(values: np.ndarray) -> float:
    """Fraction of values with 1 < |x| < 2: the floats whose exponent MSB flip gives NaN
    (and exactly +-1 gives +-inf), the paper's Fig. 4 yardstick. NaN for integer tensors."""
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.size == 0:
        return float("nan")
    a = np.abs(values.astype(np.float64))
    return float(np.mean((a > 1) & (a < 2)))


def sets_frame(sets: Sequence[ParameterSet], values: Iterable[np.ndarray] | None = None) -> pd.DataFrame:
    """The sets as a table (one row each, graph order), with value statistics when given."""
    rows = []
    value_list = list(values) if values is not None else [None] * len(sets)
    for order, (s, v) in enumerate(zip(sets, value_list, strict=True)):
        row = asdict(s)
        row["shape"] = "x".join(map(str, s.shape))
        row.update(order=order, size=s.size, n_bits=s.n_bits)
        if v is not None:
            row["share_1_2"] = share_in_one_two(v)
            row["mean_abs"] = float(np.mean(np.abs(np.asarray(v, dtype=np.float64)))) if v.size else float("nan")
        rows.append(row)
    cols = ["order", "name", "kind", "layer", "shape", "size", "dtype", "n_bits"]
    return pd.DataFrame(rows)[cols + [c for c in ("share_1_2", "mean_abs") if values is not None]]


def sets_from_frame(frame: pd.DataFrame) -> list[ParameterSet]:
    frame = frame.sort_values("order")
    return [
        ParameterSet(
            name=str(r.name),
            kind=str(r.kind),
            layer=str(r.layer),
            shape=tuple(int(d) for d in str(r.shape).split("x")) if str(r.shape) else (),
            dtype=str(r.dtype),
        )
        for r in frame.itertuples(index=False)
    ]
