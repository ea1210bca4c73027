"""A table over replicates: every model-level number as its mean and spread over the replicates.

Why. Each AF's chain is trained several times (config ``replicates``); one replicate's IoU or
size is one draw from what retraining gives, so the tables show the mean over replicates with
the standard deviation beside it (Markdown: ``mean ± sd``) and keep every replicate's own value
in the CSV (``<column> rep<r>``), from which any single model can be read back. Intervals for the
paper's claims are the findings table's (:mod:`hsiseu.findings`), not these spreads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["by_af", "combine"]


def by_af(keys: Sequence[Sequence], paths: Sequence[Any]) -> dict[str, dict[int, Any]]:
    """``{af: {rep: path}}`` from the workflow's (af, rep) keys and the input list in their order
    (a path, or a tuple of paths of one model)."""
    if len(keys) != len(paths):
        raise ValueError(f"{len(keys)} (af, rep) keys but {len(paths)} files")
    out: dict[str, dict[int, Any]] = {}
    for (af, rep), path in zip(keys, paths):
        out.setdefault(str(af), {})[int(rep)] = path
    return out


def _numeric(values: Sequence) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def combine(tables: Mapping[int, pd.DataFrame], floatfmt: str = ".2f") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-replicate tables (same rows and columns; columns are models, e.g. AFs) -> (CSV frame,
    Markdown frame).

    The CSV frame has, per column ``c``: ``c`` (mean over replicates), ``c sd`` (sample standard
    deviation; NaN with one replicate) and ``c rep<r>`` per replicate. A cell that is not a number
    (a note, an operator list) is kept when every replicate agrees and joined with ``; ``
    otherwise. The Markdown frame holds ``mean ± sd`` strings (the mean alone where the replicates
agree exactly)."""
    reps = sorted(tables)
    if not reps:
        raise ValueError("no replicate tables to combine")
    first = tables[reps[0]]
    for r in reps[1:]:
        other = tables[r]
        if list(other.columns) != list(first.columns):
            raise ValueError(f"replicate {r} has columns {list(other.columns)}, replicate {reps[0]} {list(first.columns)}")
    index = list(dict.fromkeys(i for r in reps for i in tables[r].index))
    csv: dict[str, list] = {}
    md: dict[str, list] = {}
    for col in first.columns:
        csv[col], csv[f"{col} sd"], md[col] = [], [], []
        per_rep = {r: [] for r in reps}
        for row in index:
            values = [tables[r][col].get(row, np.nan) for r in reps]
            for r, v in zip(reps, values):
                per_rep[r].append(v)
            if _numeric(values):
                x = np.asarray(values, dtype=np.float64)
                ok = x[~np.isnan(x)]
                mean = float(ok.mean()) if len(ok) else np.nan
                sd = float(ok.std(ddof=1)) if len(ok) > 1 else np.nan
                csv[col].append(mean)
                csv[f"{col} sd"].append(sd)
                md[col].append("–" if np.isnan(mean) else format(mean, floatfmt) if np.isnan(sd) or sd <= 1e-9 * max(1.0, abs(mean))
                               else f"{mean:{floatfmt}} ± {sd:{floatfmt}}")
            else:
                distinct = list(dict.fromkeys(str(v) for v in values))
                text = distinct[0] if len(distinct) == 1 else "; ".join(distinct)
                csv[col].append(text)
                csv[f"{col} sd"].append(np.nan)
                md[col].append(text)
        for r in reps:
            csv[f"{col} rep{r}"] = per_rep[r]
    name = first.index.name
    csv_frame = pd.DataFrame(csv, index=pd.Index(index, name=name))
    md_frame = pd.DataFrame(md, index=pd.Index(index, name=name))
    return csv_frame, md_frame
