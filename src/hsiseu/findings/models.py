"""The per-model inputs of the findings: one trained model's fault cells, parameter sets and
metrics, read once from files or taken as given.

Why its own module: the claims read models by (af, stage) within one replicate and never care
whether a table came from a file or from a test; this is the one place that decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hsiseu.io import read_json

__all__ = ["Model", "ModelKey", "load_model", "load_models"]

#: (af, replicate, stage)
ModelKey = tuple[str, int, str]


@dataclass(frozen=True)
class Model:
    """One model's fault cells (``cells.csv``), parameter sets (``parameter_sets.csv``) and
    metrics (``{split: {global_iou, weighted_iou, ...}}``, %); any may be absent (None)."""

    cells: pd.DataFrame | None = None
    sets: pd.DataFrame | None = None
    metrics: Mapping[str, Any] | None = None

    def need(self, what: str) -> Any:
        value = getattr(self, what)
        if value is None:
            raise ValueError(f"this claim needs the model's {what}, which was not given")
        return value


def _frame(value: pd.DataFrame | str | os.PathLike[str] | None) -> pd.DataFrame | None:
    if value is None or isinstance(value, pd.DataFrame):
        return value
    return pd.read_csv(value)


def _metrics(value: Mapping[str, Any] | str | os.PathLike[str] | None) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    return read_json(value)


def load_model(spec: Mapping[str, Any]) -> Model:
    """``{"cells": DataFrame | path, "sets": DataFrame | path, "metrics": dict | path}`` (keys
    optional) -> :class:`Model`."""
    unknown = set(spec) - {"cells", "sets", "metrics"}
    if unknown:
        raise ValueError(f"unknown model inputs {sorted(unknown)}; expected cells, sets, metrics")
    return Model(_frame(spec.get("cells")), _frame(spec.get("sets")), _metrics(spec.get("metrics")))


def load_models(models: Mapping[tuple, Mapping[str, Any] | Model]) -> dict[ModelKey, Model]:
    """``{(af, rep, stage): inputs}`` -> ``{(af, int rep, stage): Model}``."""
    out: dict[ModelKey, Model] = {}
    for key, spec in models.items():
        af, rep, stage = key
        out[(str(af), int(str(rep).removeprefix("rep")), str(stage))] = (
            spec if isinstance(spec, Model) else load_model(spec))
    return out
