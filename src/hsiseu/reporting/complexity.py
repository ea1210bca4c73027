"""Table II: size and cost of the original model and of each activation function's pruned model.

Rows as in the paper: Params (M), OPS (G) (2 x MACs of the convolutions, see
``hsiseu.model.complexity``), Memory (MB) as the paper computes it (params x 8 bytes: 31.13 M ->
249.04 MB), and the real size of the saved ``.keras`` file (float32 weights plus the archive).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hsiseu.io import read_json
from hsiseu.activations import af_label

__all__ = ["PAPER_BYTES_PER_PARAM", "complexity_table", "complexity_table_from_files"]

PAPER_BYTES_PER_PARAM = 8


def complexity_table(columns: Mapping[str, tuple[int, int, int]]) -> pd.DataFrame:
    """``{column label: (params, flops, file bytes)}`` -> Table II (metrics as rows)."""
    data = {
        label: {
            "Params (M)": params / 1e6,
            "OPS (G)": flops / 1e9,
            "Memory (MB)": params * PAPER_BYTES_PER_PARAM / 1e6,
            "File size (MB)": size / 1e6,
        }
        for label, (params, flops, size) in columns.items()
    }
    table = pd.DataFrame(data)
    table.index.name = "Metric"
    return table.astype(float).round(6)


def complexity_table_from_files(
    original: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    pruned: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
) -> pd.DataFrame:
    """``{af: (metrics.json, model.keras)}`` for the original and the pruned models.

    The three original models share one architecture, so (as in the paper) they make one
    "Original" column, from the first AF's files; should their params or FLOPs differ, each gets
    its own column instead.
    """
    def entry(metrics_path, model_path):
        m = read_json(metrics_path)
        return int(m["params"]), int(m["flops"]), Path(model_path).stat().st_size

    originals = {af: entry(*paths) for af, paths in original.items()}
    columns: dict[str, tuple[int, int, int]] = {}
    if len({v[:2] for v in originals.values()}) == 1:
        columns["Original"] = next(iter(originals.values()))
    else:
        columns.update({f"Original {af_label(af)}": v for af, v in originals.items()})
    for af, paths in pruned.items():
        columns[f"{af_label(af)} pruned"] = entry(*paths)
    return complexity_table(columns)
