"""Figures 7 and 8 of the paper: the int8 campaign, from the same ``cells.csv`` as Figs. 2-6.

Fig. 7 needs its own layout (weights have 8 bits, biases 32, so one bit axis does not fit both):
two heatmaps side by side, int8 kernels (bits 7..0) and int32 biases (bits 31..0), rows in graph
order. Fig. 8 is Figs. 3/5's figure (:func:`~hsiseu.reporting.fault_figures.mean_error_by_set`)
on the quantized models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hsiseu.io import atomic_path  # noqa: E402
from hsiseu.reporting.fault_figures import mark_wide, mean_error_by_set, wide_cells  # noqa: E402
from hsiseu.activations import af_label  # noqa: E402

__all__ = ["int8_heatmap", "bias_weight_split", "fig7_from_files", "fig8_from_files"]


def _panel(cells: pd.DataFrame) -> pd.DataFrame:
    table = cells.pivot_table(index="layer", columns="bit", values="error_rate", aggfunc="mean")
    order = cells.drop_duplicates("layer").sort_values("order")["layer"].tolist()
    return table.loc[order, sorted(table.columns, reverse=True)]


def int8_heatmap(cells: pd.DataFrame, path: str | os.PathLike[str], *, title: str = "",
                 margin: float | None = None) -> dict[str, pd.DataFrame]:
    """Fig. 7: error rate (%) per layer and bit, kernels (int8) left, biases (int32) right, one
    colour scale; x marks a cell whose interval is wider than +- ``margin``. Returns the two
    tables (layer x bit)."""
    panels = {kind: _panel(cells[cells["kind"] == kind]) for kind in ("kernel", "bias") if (cells["kind"] == kind).any()}
    if not panels:
        raise ValueError("no kernel or bias cells to draw: is this an int8 campaign's cells.csv?")
    vmax = max(1e-9, max(float(np.nanmax(t.to_numpy(dtype=float))) for t in panels.values()))
    widths = [max(2, len(t.columns)) for t in panels.values()]
    rows = max(len(t) for t in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 + 0.26 * sum(widths), 1.6 + 0.2 * rows),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    im = None
    for i, (ax, (kind, table)) in enumerate(zip(axes[0], panels.items())):
        im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_xticks(range(len(table.columns)), [str(b) for b in table.columns], fontsize=6)
        ax.set_yticks(range(len(table)), table.index if i == 0 else [], fontsize=6)
        width, sign = ("int8", 7) if kind == "kernel" else ("int32", 31)
        wide = mark_wide(ax, table, wide_cells(cells[cells["kind"] == kind], margin, index="layer"))
        ax.set_xlabel(f"{width} {kind} bit\n({sign} = sign)"
                      + (f"\nx: wider than +-{100 * margin:g} ({wide})" if margin else ""), fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), label="error rate (%)")
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return panels


def bias_weight_split(cells: pd.DataFrame) -> pd.Series:
    """Mean error rate (%) of all kernel cells and of all bias cells, and the share of the
    summed per-set mean error that falls on biases (the paper: only biases are sensitive)."""
    by_kind = cells.groupby("kind")["error_rate"].mean()
    per_set = cells.groupby(["set", "kind"])["error_rate"].mean().groupby("kind").sum()
    total = float(per_set.sum())
    return pd.Series({
        "kernel_mean_error": float(by_kind.get("kernel", np.nan)),
        "bias_mean_error": float(by_kind.get("bias", np.nan)),
        "bias_share_of_set_error": float(per_set.get("bias", 0.0)) / total if total else float("nan"),
    })


def fig7_from_files(cells_csv: str, out: str, *, af: str, kernels: str, margin: float | None = None) -> None:
    cells = pd.read_csv(cells_csv)
    int8_heatmap(cells, out, margin=margin, title=f"Bit-flip error rate (%), pruned int8 {af_label(af)} model "
                                  f"(weights 8 bits, biases 32 bits; LiteRT {kernels} kernels)")


def fig8_from_files(cells_csvs: Mapping[str, str], out: str, *, kernels: str) -> pd.DataFrame:
    return mean_error_by_set({af: pd.read_csv(p) for af, p in cells_csvs.items()}, out,
                             title=f"Mean bit-flip error rate per parameter set, pruned int8 models "
                                   f"(LiteRT {kernels} kernels)")
