"""Figures 2-6 of the paper from merged fault-injection outcomes (backend-agnostic).

Inputs are the campaign's ``cells.csv`` (per parameter set x bit) and ``parameter_sets.csv``.
A set's mean error rate is the mean over its injected bits of the per-bit means, i.e. every bit
equally likely to be hit, as for a uniformly random upset in the set's storage, with an interval
(:func:`hsiseu.faults.stats.aggregate.set_estimates`: from the population units, a pooled
mantissa weighted by its bits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hsiseu.faults.bitflip import bit_field  # noqa: E402
from hsiseu.faults.stats.aggregate import set_estimates  # noqa: E402
from hsiseu.io import atomic_path  # noqa: E402
from hsiseu.activations import ACTIVATIONS, af_label  # noqa: E402

__all__ = ["heatmap", "mean_error_by_set", "msb_minus_range", "wide_cells",
           "mark_wide", "msb_table", "SIGN_EXPONENT"]

#: binary32 bits shown by default in Fig. 2 (the paper omits the mantissa: negligible errors).
SIGN_EXPONENT = tuple(range(31, 22, -1))


def af_color(af: str) -> str | None:
    """A colour per AF that stays the same across figures and configs: Keras's activations in
    :data:`~hsiseu.activations.ACTIVATIONS` order take tab10, then tab20's light shades (the
    paper's three keep blue, orange, green); None lets Matplotlib pick for any other name."""
    order = list(ACTIVATIONS)
    if af not in order:
        return None
    i = order.index(af)
    if i >= 20:
        return None
    rgba = matplotlib.colormaps["tab10"](i) if i < 10 else matplotlib.colormaps["tab20"](2 * (i - 10) + 1)
    return matplotlib.colors.to_hex(rgba)


def _save(fig, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _set_order(cells: pd.DataFrame) -> list[str]:
    return cells.drop_duplicates("set").sort_values("order")["set"].tolist()


def wide_cells(cells: pd.DataFrame, margin: float | None, index: str = "set") -> pd.DataFrame:
    """(index x bit) booleans: cells whose interval half-width exceeds ``margin`` (a fraction,
    the config's error margin); all False without a margin or intervals."""
    half = (cells["error_rate_high"] - cells["error_rate_low"]) / 2 if "error_rate_high" in cells else 0 * cells["error_rate"]
    wide = cells.assign(wide=(half > 100 * margin + 1e-9) if margin is not None else False)
    return wide.pivot_table(index=index, columns="bit", values="wide", aggfunc="max").fillna(False).astype(bool)


def mark_wide(ax, table: pd.DataFrame, wide: pd.DataFrame) -> int:
    """Mark (x) the heatmap cells of ``table`` that ``wide`` flags; how many."""
    marks = wide.reindex(index=table.index, columns=table.columns).fillna(False).to_numpy(dtype=bool)
    for r, c in zip(*np.nonzero(marks)):
        ax.text(c, r, "x", ha="center", va="center", fontsize=5, color="white")
    return int(marks.sum())


def heatmap(cells: pd.DataFrame, path: str | os.PathLike[str], *, bits: Sequence[int] | None = SIGN_EXPONENT,
            title: str = "", margin: float | None = None) -> None:
    """Fig. 2: error rate (%) per parameter set (rows, graph order) and bit (columns, MSB left);
    x marks a cell whose interval is wider than +- ``margin``."""
    table = cells.pivot_table(index="set", columns="bit", values="error_rate", aggfunc="mean")
    table = table.loc[_set_order(cells)]
    cols = sorted(table.columns, reverse=True) if bits is None else [b for b in bits if b in table.columns]
    table = table.loc[:, cols]
    fig, ax = plt.subplots(figsize=(2.0 + 0.32 * len(cols), 1.5 + 0.16 * len(table)))
    im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0,
                   vmax=max(1e-9, float(np.nanmax(table.to_numpy(dtype=float))) if table.size else 1))
    ax.set_xticks(range(len(cols)), [str(b) for b in cols], fontsize=7)
    ax.set_yticks(range(len(table)), table.index, fontsize=6)
    wide = mark_wide(ax, table, wide_cells(cells, margin))
    ax.set_xlabel("flipped bit (31 = sign, 30 = exponent MSB)"
                  + (f"\nx: interval wider than +-{100 * margin:g} points ({wide} cells)" if margin else ""))
    fig.colorbar(im, ax=ax, label="error rate (%)")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def mean_error_by_set(cells_by_af: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], *, title: str = "") -> pd.DataFrame:
    """Figs. 3/5/8: mean error rate per set for each AF, with the set's interval as error bar;
    the legend gives each AF's overall mean and standard deviation over sets (also drawn as the
    right-most bars). Returns the table of means."""
    ends = {af: set_estimates(c) for af, c in cells_by_af.items()}
    table = pd.DataFrame({af: e["mean"] for af, e in ends.items()})
    order = _set_order(next(iter(cells_by_af.values())))
    table = table.reindex(order + [s for s in table.index if s not in order])
    n_af = len(table.columns)
    width = 0.8 / max(n_af, 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.22 * len(table) + 2), 4.0))
    x = np.arange(len(table))
    for i, af in enumerate(table.columns):
        vals = table[af].to_numpy(dtype=float)
        label = f"{af_label(af)} (mean {np.nanmean(vals):.2f} %, std {np.nanstd(vals):.2f})"
        iv = ends[af].reindex(table.index)
        err = np.vstack([vals - iv["low"].to_numpy(dtype=float), iv["high"].to_numpy(dtype=float) - vals])
        ax.bar(x + (i - (n_af - 1) / 2) * width, vals, width, label=label, color=af_color(af),
               yerr=np.clip(np.nan_to_num(err), 0, None), error_kw={"elinewidth": 0.6, "capsize": 1})
        ax.bar(len(table) + 1 + (i - (n_af - 1) / 2) * width, np.nanmean(vals), width,
               yerr=np.nanstd(vals), color=af_color(af), edgecolor="black", capsize=2)
    ax.set_xticks(list(x) + [len(table) + 1], list(table.index) + ["mean"], rotation=90, fontsize=6)
    ax.set_ylabel("mean bit-flip error rate (%)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    _save(fig, path)
    return table


def msb_table(cells: pd.DataFrame, sets: pd.DataFrame, msb: int = 30) -> pd.DataFrame:
    """Per set: MSB (exponent bit 30) error rate, % of values in 1 < |x| < 2, their difference."""
    msb_rows = cells[cells["bit"] == msb].set_index("set")["error_rate"]
    share = sets.set_index("name")["share_1_2"] * 100.0
    order = _set_order(cells)
    out = pd.DataFrame({"msb_error_rate": msb_rows.reindex(order), "share_1_2": share.reindex(order)})
    out["difference"] = out["msb_error_rate"] - out["share_1_2"]
    return out


def msb_minus_range(cells_by_af: Mapping[str, pd.DataFrame], sets_by_af: Mapping[str, pd.DataFrame],
                    path: str | os.PathLike[str], *, title: str = "") -> pd.DataFrame:
    """Figs. 4/6: per set, MSB error rate minus the share of values in 1 < |x| < 2 (filled
    dots) and the MSB error rate itself (unfilled dots), one colour per AF."""
    fig, ax = plt.subplots(figsize=(max(8.0, 0.22 * len(next(iter(cells_by_af.values()))["set"].unique()) + 2), 4.0))
    tables = {}
    for af, cells in cells_by_af.items():
        if not (cells["bit"] == 30).any() or bit_field(np.float32, 30) != "exponent":
            continue
        t = msb_table(cells, sets_by_af[af])
        tables[af] = t
        x = np.arange(len(t))
        color = af_color(af)
        ax.plot(x, t["difference"], "o", color=color, ms=4, label=f"{af_label(af)}: MSB rate - share")
        ax.plot(x, t["msb_error_rate"], "o", mfc="none", color=color, ms=5, label=f"{af_label(af)}: MSB rate")
        ax.set_xticks(x, t.index, rotation=90, fontsize=6)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("% (error rate or share of values)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=9)
    _save(fig, path)
    return pd.concat(tables, names=["af", "set"]) if tables else pd.DataFrame()


def fig2_from_files(cells_csv: str, out: str, *, bits: str, af: str, stage: str, margin: float | None = None) -> None:
    cells = pd.read_csv(cells_csv)
    heatmap(cells, out, bits=SIGN_EXPONENT if bits == "sign_exponent" else None, margin=margin,
            title=f"Bit-flip error rate (%), {af_label(af)}, {stage} model")


def fig_means_from_files(cells_csvs: Mapping[str, str], out: str, *, stage: str) -> None:
    mean_error_by_set({af: pd.read_csv(p) for af, p in cells_csvs.items()}, out,
                      title=f"Mean bit-flip error rate per parameter set, {stage} models")


def fig_msb_from_files(cells_csvs: Mapping[str, str], sets_csvs: Mapping[str, str], out: str, *, stage: str) -> None:
    msb_minus_range({af: pd.read_csv(p) for af, p in cells_csvs.items()},
                    {af: pd.read_csv(p) for af, p in sets_csvs.items()}, out,
                    title=f"MSB bit-flip error rate minus % of values in 1 < |x| < 2, {stage} models")
