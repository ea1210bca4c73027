"""Figures 2-8 of the paper from merged fault-injection outcomes, float and int8 alike.

Inputs are the campaign's ``cells.csv`` (per parameter set x bit) and ``parameter_sets.csv``.
The statistics are the named ones of :mod:`hsiseu.faults.stats.aggregate`: a set's per-set mean
(every bit of the set equally likely to be hit) and an AF's mean over parameter sets. Every
figure reads all the replicates of each AF: heat maps and Figs. 4 / 6 show each cell's mean over
replicates; Figs. 3 / 5 / 8 (one figure on the original, pruned and int8 models) draw bars with
whiskers that are intervals (a t interval over replicates, or one model's fault-sampling
interval when there is one replicate), never a standard deviation. Fig. 7 has its own layout (int8 weights have 8 bits, int32 biases 32, so one bit axis
does not fit both): two heatmaps side by side, rows in graph order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from hsiseu.reporting.style import af_color, save_figure  # noqa: I001  (chooses the backend)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from hsiseu.faults.bitflip import bit_field
from hsiseu.faults.stats.aggregate import per_set_mean, set_mean
from hsiseu.findings.replicates import replicate_interval
from hsiseu.activations import af_label

__all__ = ["SIGN_EXPONENT", "bias_weight_split", "fig2_from_files", "fig7_from_files", "fig_means_from_files",
           "fig_msb_from_files", "heatmap", "int8_heatmap", "mark_wide", "mean_error_by_set", "msb_minus_range",
           "msb_table", "wide_cells"]

#: the x label of Figs. 3 / 5 / 8's right-most bars: each AF's mean over parameter sets.
MEAN_OVER_SETS = "mean over sets"

#: binary32 bits shown by default in Fig. 2 (the paper omits the mantissa: negligible errors).
SIGN_EXPONENT = tuple(range(31, 22, -1))


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
    save_figure(fig, path)


def _over_replicates(estimates: Sequence[Mapping[str, float]], confidence: float) -> dict[str, float]:
    """One replicate: its own (fault-sampling) interval; several: the t interval over their
    means (:func:`hsiseu.findings.replicates.replicate_interval`), which covers both the
    retraining and the fault sampling, cut to the rates' range [0, 100] % (the true mean lies in
    it, so the cut keeps the coverage)."""
    if len(estimates) == 1:
        return {k: float(estimates[0][k]) for k in ("mean", "low", "high")}
    iv = replicate_interval([e["mean"] for e in estimates], confidence)
    return {"mean": iv.estimate, "low": max(iv.low, 0.0), "high": min(iv.high, 100.0)}


def mean_error_by_set(cells_by_af: Mapping[str, Mapping[int, pd.DataFrame]], path: str | os.PathLike[str], *,
                      title: str = "", confidence: float = 0.95) -> pd.DataFrame:
    """Figs. 3/5/8: each set's per-set mean for each AF, then (right-most bars) each AF's mean
    over parameter sets; ``cells_by_af``: ``{af: {rep: cells}}``. A bar is the mean over the
    replicates and its whisker the interval of :func:`_over_replicates`; the legend repeats the
    mean over parameter sets with its interval. Returns the bars (``af``, ``set``, mean, low,
    high; set ``mean over sets`` for the right-most)."""
    rows = []
    for af, by_rep in cells_by_af.items():
        per_rep = {r: per_set_mean(c) for r, c in by_rep.items()}
        sets = list(dict.fromkeys(name for t in per_rep.values() for name in t.index))
        for name in sets:
            present = [t.loc[name] for t in per_rep.values() if name in t.index]
            rows.append({"af": af, "set": name, **_over_replicates(present, confidence)})
        rows.append({"af": af, "set": MEAN_OVER_SETS,
                     **_over_replicates([set_mean(c) for c in by_rep.values()], confidence)})
    bars = pd.DataFrame(rows)
    first = next(iter(cells_by_af.values()))
    order = _set_order(first[min(first)]) + [MEAN_OVER_SETS]
    order += [s for s in bars["set"].unique() if s not in order]
    n_af = len(cells_by_af)
    width = 0.8 / max(n_af, 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.22 * len(order) + 2), 4.0))
    x = {name: i + (1 if name == MEAN_OVER_SETS else 0) for i, name in enumerate(order)}
    for i, af in enumerate(cells_by_af):
        mine = bars[bars["af"] == af]
        pos = np.array([x[name] for name in mine["set"]]) + (i - (n_af - 1) / 2) * width
        vals = mine["mean"].to_numpy(dtype=float)
        err = np.vstack([vals - mine["low"].to_numpy(dtype=float), mine["high"].to_numpy(dtype=float) - vals])
        overall = mine[mine["set"] == MEAN_OVER_SETS].iloc[0]
        label = (f"{af_label(af)}: mean over parameter sets {overall['mean']:.2f} % "
                 f"[{overall['low']:.2f}, {overall['high']:.2f}]")
        ax.bar(pos, vals, width, label=label, color=af_color(af),
               edgecolor=["black" if name == MEAN_OVER_SETS else "none" for name in mine["set"]],
               yerr=np.clip(np.nan_to_num(err), 0, None), error_kw={"elinewidth": 0.6, "capsize": 1})
    ax.set_xticks([x[name] for name in order], order, rotation=90, fontsize=6)
    n = max(len(by_rep) for by_rep in cells_by_af.values())
    whisker = (f"{100 * confidence:g} % t interval over {n} replicates" if n > 1
               else "the fault-sampling interval of one model")
    ax.set_ylabel("per-set mean bit-flip error rate (%)")
    ax.set_xlabel(f"parameter set (graph order); bars: mean over replicates, whiskers: {whisker}", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
    return bars


def msb_table(cells: pd.DataFrame, sets: pd.DataFrame, msb: int = 30) -> pd.DataFrame:
    """Per set: MSB (exponent bit 30) error rate, % of values in 1 < |x| < 2, their difference
    (each the mean over the replicates when the tables stack several)."""
    msb_rows = cells[cells["bit"] == msb].groupby("set")["error_rate"].mean()
    share = sets.groupby("name")["share_1_2"].mean() * 100.0
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
    save_figure(fig, path)
    return pd.concat(tables, names=["af", "set"]) if tables else pd.DataFrame()


def replicate_cells(cells_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """The replicates' cells tables stacked (column ``rep``: 0, 1, ...): a heatmap's pivot then
    shows each cell's mean over replicates, and its x the cells wide in any replicate."""
    return pd.concat([pd.read_csv(p).assign(rep=r) for r, p in enumerate(cells_csvs)], ignore_index=True)


def _over(n: int) -> str:
    return f"mean over {n} replicates" if n > 1 else "one replicate"


def fig2_from_files(cells_csvs: Sequence[str], out: str, *, bits: str, af: str, stage: str,
                    margin: float | None = None) -> None:
    heatmap(replicate_cells(cells_csvs), out, bits=SIGN_EXPONENT if bits == "sign_exponent" else None, margin=margin,
            title=f"Bit-flip error rate (%), {af_label(af)}, {stage} model ({_over(len(cells_csvs))})")


def fig_means_from_files(cells_csvs: Mapping[str, Mapping[int, str]], out: str, *, stage: str,
                         kernels: str | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Figs. 3 / 5 / 8 from ``{af: {rep: cells.csv}}``: ``kernels`` (the int8 models' LiteRT
    kernels) names the int8 ones."""
    models = f"{stage} models" if stage != "quantized" else f"pruned int8 models (LiteRT {kernels} kernels)"
    return mean_error_by_set({af: {r: pd.read_csv(p) for r, p in by_rep.items()} for af, by_rep in cells_csvs.items()},
                             out, confidence=confidence,
                             title=f"Per-set mean bit-flip error rate and mean over parameter sets, {models}")


def fig_msb_from_files(cells_csvs: Mapping[str, Mapping[int, str]], sets_csvs: Mapping[str, Mapping[int, str]],
                       out: str, *, stage: str) -> None:
    """``{af: {rep: path}}``: each point is the mean over the AF's replicates."""
    n = max(len(by_rep) for by_rep in cells_csvs.values())
    msb_minus_range({af: replicate_cells(list(by_rep.values())) for af, by_rep in cells_csvs.items()},
                    {af: replicate_cells(list(by_rep.values())) for af, by_rep in sets_csvs.items()}, out,
                    title=f"MSB bit-flip error rate minus % of values in 1 < |x| < 2, {stage} models ({_over(n)})")


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
    save_figure(fig, path)
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


def fig7_from_files(cells_csvs: Sequence[str], out: str, *, af: str, kernels: str, margin: float | None = None) -> None:
    int8_heatmap(replicate_cells(cells_csvs), out, margin=margin,
                 title=f"Bit-flip error rate (%), pruned int8 {af_label(af)} model ({_over(len(cells_csvs))}; "
                       f"weights 8 bits, biases 32 bits; LiteRT {kernels} kernels)")
