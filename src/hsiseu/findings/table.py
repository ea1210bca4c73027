"""The findings table: one row per claim of the paper, its value over replicates, the interval
and the verdict; written as ``reports/tables/findings.{csv,md}``.

Entry points:

- :func:`findings_table` ``(models, *, afs=None, heatmap_af=None, confidence=0.95,
  negligible_rate=1.0, max_drop=1.5) -> DataFrame``: ``models`` maps ``(af, rep, stage)`` to
  ``{"cells": DataFrame | path, "sets": DataFrame | path, "metrics": dict | path}``.
- :func:`write_findings` ``(table, csv, md, *, confidence=None) -> None``.
- :func:`findings_from_files` ``(keys, cells, sets, metrics, *, csv, md, afs=None, heatmap_af=None,
  confidence=0.95, negligible_rate=1.0, max_drop=1.5) -> DataFrame``: what the workflow's script
  calls; ``keys`` is the list of (af, rep, stage) and ``cells``, ``sets``, ``metrics`` the file
  lists in the same order (a Snakemake script: ``keys = [tuple(k) for k in
  snakemake.params.models]``, the three named inputs, ``**findings_settings(config)`` or the
  same keys as ``params``).
- :func:`findings_settings` ``(config) -> dict``: those keyword arguments from the config
  (``afs``, ``faults.heatmap_af``, ``findings.confidence``, ``findings.negligible_rate``,
  ``pruning.acceptance.max_drop``).

Columns (index ``id``): ``claim``, ``paper``, ``statistic`` (a registry name,
docs/statistics.md), ``measure`` (one replicate's value), ``unit``, ``threshold`` (e.g.
``> 0``), ``estimate`` (mean over replicates), ``low``, ``high`` (t interval over replicates at
``confidence``, :mod:`hsiseu.findings.replicates`), ``replicates``, ``per_replicate`` (the
values, ``;``-joined, replicate numbers in ``replicate_ids``) and ``verdict``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hsiseu.findings.claims import Claim, claims, statistic_label
from hsiseu.findings.models import Model, load_models
from hsiseu.findings.replicates import replicate_interval, verdict
from hsiseu.io import atomic_path, write_text

__all__ = ["COLUMNS", "findings_from_files", "findings_settings", "findings_table", "to_markdown", "write_findings"]

COLUMNS = ("claim", "paper", "statistic", "measure", "unit", "threshold", "estimate", "low", "high", "replicates",
           "per_replicate", "replicate_ids", "verdict")
#: the columns the Markdown table shows (the CSV has all of them).
MARKDOWN_COLUMNS = ("claim", "paper", "statistic", "measure", "unit", "threshold", "estimate", "low", "high",
                    "replicates", "verdict")


def _afs_of(models: Mapping[tuple[str, int, str], Model]) -> list[str]:
    return list(dict.fromkeys(af for af, _, _ in models))


def _row(claim: Claim, models: Mapping[tuple[str, int, str], Model], confidence: float) -> dict[str, Any]:
    reps = sorted({rep for _, rep, _ in models})
    reps = [r for r in reps if all((af, r, stage) in models for af, stage in claim.needs)]
    values = [claim.value({(af, stage): models[(af, r, stage)] for af, stage in claim.needs}) for r in reps]
    interval = replicate_interval(values, confidence)
    return {"claim": claim.claim, "paper": claim.paper, "statistic": claim.statistic, "measure": claim.measure,
            "unit": claim.unit, "threshold": f"{claim.direction} {claim.threshold:g}",
            "estimate": interval.estimate, "low": interval.low, "high": interval.high,
            "replicates": interval.replicates, "per_replicate": ";".join(f"{v:.6g}" for v in values),
            "replicate_ids": ";".join(map(str, reps)),
            "verdict": verdict(interval, claim.direction, claim.threshold)}


def findings_table(models: Mapping[tuple, Mapping[str, Any] | Model], *, afs: Sequence[str] | None = None,
                   heatmap_af: str | None = None, confidence: float = 0.95, negligible_rate: float = 1.0,
                   max_drop: float = 1.5) -> pd.DataFrame:
    """One row per claim (:func:`hsiseu.findings.claims.claims`) that the run's ``afs`` (default:
    the AFs of ``models``, in order) can answer. A claim's replicates are those whose every needed
    model is in ``models``, paired by replicate number; with fewer than 2 the interval is NaN and
    the verdict ``inconclusive``."""
    loaded = load_models(models)
    run_afs = list(afs) if afs is not None else _afs_of(loaded)
    rows = {c.id: _row(c, loaded, confidence)
            for c in claims(run_afs, heatmap_af=heatmap_af, negligible_rate=negligible_rate, max_drop=max_drop)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
    table.index.name = "id"
    return table


def findings_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`findings_table` from a (validated) config; the
    ``findings`` block is optional (defaults: confidence 0.95, negligible_rate 1 %)."""
    findings = config.get("findings") or {}
    acceptance = (config.get("pruning") or {}).get("acceptance") or {}
    return {"afs": list(config["afs"]), "heatmap_af": (config.get("faults") or {}).get("heatmap_af"),
            "confidence": float(findings.get("confidence", 0.95)),
            "negligible_rate": float(findings.get("negligible_rate", 1.0)),
            "max_drop": float(acceptance.get("max_drop", 1.5))}


def _cell(value: Any, floatfmt: str) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else format(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, columns: Sequence[str] = MARKDOWN_COLUMNS, floatfmt: str = ".3f") -> str:
    """A GitHub Markdown table of ``columns`` (``|`` in text escaped, NaN as an en dash).
    (``hsiseu.reporting.tables.to_markdown`` escapes nothing and pulls in LiteRT.)"""
    header = [table.index.name or ""] + list(columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([_cell(idx, floatfmt)] + [_cell(row[c], floatfmt) for c in columns]) + " |")
    return "\n".join(lines) + "\n"


def write_findings(table: pd.DataFrame, csv: str | os.PathLike[str], md: str | os.PathLike[str], *,
                   confidence: float | None = None) -> None:
    """The CSV (every column) and the Markdown page (title, table, how to read it)."""
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, lineterminator="\n")
    level = f"{100 * confidence:g} % " if confidence is not None else ""
    used = list(dict.fromkeys(table["statistic"])) if len(table) else []
    notes = [
        f"estimate: the mean over replicates (independently trained models) of each replicate's value; low, high: "
        f"the {level}t interval over replicates, mean +- t(R-1) s / sqrt(R), which covers both the spread between "
        "trained models and each model's fault sampling (docs/statistics.md). With one replicate there is no "
        "interval and every verdict is inconclusive.",
        "verdict: holds = the whole interval is on the claimed side of the threshold; reversed = wholly on the "
        "other side; inconclusive = otherwise. Rows are separate statements, not corrected for their number.",
        "statistic: " + "; ".join(f"{name} = {statistic_label(name)}" for name in used) + ".",
        "Error rates in % of test pixels whose class changes; differences in points (%). The CSV adds each "
        "replicate's value (per_replicate, replicate_ids), the measure and the threshold.",
    ]
    write_text(md, "**Findings: the paper's claims over replicated models**\n\n" + to_markdown(table)
               + "".join(f"\n{n}\n" for n in notes))


def findings_from_files(keys: Sequence[Sequence[Any]], cells: Sequence[str | os.PathLike[str]],
                        sets: Sequence[str | os.PathLike[str]], metrics: Sequence[str | os.PathLike[str]], *,
                        csv: str | os.PathLike[str], md: str | os.PathLike[str], afs: Sequence[str] | None = None,
                        heatmap_af: str | None = None, confidence: float = 0.95, negligible_rate: float = 1.0,
                        max_drop: float = 1.5) -> pd.DataFrame:
    """Read every model's cells.csv, parameter_sets.csv and metrics.json (lists in the order of
    ``keys``, (af, rep, stage) each), write the findings table and return it. ``afs``: the run's
    AFs in order (default: those of ``keys``)."""
    if not len(keys) == len(cells) == len(sets) == len(metrics):
        raise ValueError(f"{len(keys)} model keys but {len(cells)} cells, {len(sets)} sets and "
                         f"{len(metrics)} metrics files")
    models = {tuple(k): {"cells": c, "sets": s, "metrics": m} for k, c, s, m in zip(keys, cells, sets, metrics)}
    table = findings_table(models, afs=afs, heatmap_af=heatmap_af, confidence=confidence,
                           negligible_rate=negligible_rate, max_drop=max_drop)
    write_findings(table, csv, md, confidence=confidence)
    return table
