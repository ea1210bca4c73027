"""Tables in the paper's shape, written as CSV (for machines) and Markdown (for people)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hsiseu.data import CLASS_NAMES
from hsiseu.io import atomic_path, read_json, write_text
from hsiseu.activations import af_label


def iou_table(metrics_by_af: Mapping[str, Mapping[str, Any]], split: str = "test") -> pd.DataFrame:
    """Classes (then Global and Weighted) as rows, activation functions as columns: Table I/III."""
    columns = {}
    for af, metrics in metrics_by_af.items():
        report = metrics[split]
        col = dict(report["per_class_iou"])
        col["Global"] = report["global_iou"]
        col["Weighted"] = report["weighted_iou"]
        columns[af_label(af)] = col
    table = pd.DataFrame(columns)
    order = [c for c in CLASS_NAMES if c in table.index]
    table = table.loc[order + [r for r in table.index if r not in order]]
    table.index.name = "Class"
    return table.astype(float).round(2)


def iou_table_from_files(paths_by_af: Mapping[str, str | os.PathLike[str]], split: str = "test") -> pd.DataFrame:
    return iou_table({af: read_json(p) for af, p in paths_by_af.items()}, split)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table; NaN shown as an en dash (class absent from the split)."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for idx, row in table.iterrows():
        cells = [str(idx)]
        for v in row:
            if isinstance(v, float):
                cells.append("–" if pd.isna(v) else format(v, floatfmt))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, csv_path: str | os.PathLike[str], md_path: str | os.PathLike[str],
                title: str | None = None, notes: Sequence[str] = (), floatfmt: str = ".2f") -> None:
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp)
    parts = [f"**{title}**\n\n" if title else "", to_markdown(table, floatfmt)]
    parts += [f"\n{n}\n" for n in notes]
    write_text(md_path, "".join(parts))
