"""Figure 1: the overall pruning ratio of each layer, one series per activation function.

Reads the ``layer_ratios.csv`` files the pruning writes (layer order = graph order, which is the
x axis, as in the paper's figure); layers the pruner may not touch (the classifier) are left out.
With several replicates a bar is the mean over them and its whisker their range (min to max: a
description of the replicates, not an interval); the legend gives each AF's FLOPs reduction
reached beside the paper's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hsiseu.reporting.style import af_color, save_figure  # noqa: I001  (chooses the backend)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hsiseu.activations import af_label
from hsiseu.io import read_json
from hsiseu.reporting.tables import PAPER_FLOPS_REDUCTION

__all__ = ["layer_ratio_frame", "plot_layer_ratios"]


def layer_ratio_frame(paths: Mapping[str, Mapping[int, str | os.PathLike[str]]]) -> pd.DataFrame:
    """Long table (layer, af, rep, ratio) of the prunable layers, in graph order, from
    ``{af: {rep: layer_ratios.csv}}``."""
    frames = []
    order: list[str] = []
    for af, by_rep in paths.items():
        for rep, path in by_rep.items():
            table = pd.read_csv(path)
            missing = {"layer", "prunable", "ratio"} - set(table.columns)
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            table = table[table["prunable"].astype(bool)]
            order += [name for name in table["layer"] if name not in order]
            frames.append(pd.DataFrame({"layer": table["layer"], "af": af_label(af), "rep": rep,
                                        "ratio": table["ratio"]}))
    out = pd.concat(frames, ignore_index=True)
    out["layer"] = pd.Categorical(out["layer"], categories=order, ordered=True)
    return out.sort_values(["layer", "af"], kind="stable").reset_index(drop=True)


def _reduction_label(af: str, metrics_paths: Mapping[int, str | os.PathLike[str]]) -> str:
    reached = [float(read_json(p)["pruning"]["reached_overall"]) for p in metrics_paths.values()]
    paper = PAPER_FLOPS_REDUCTION.get(af)
    text = f"{af_label(af)}: FLOPs -{100 * np.mean(reached):.0f} % reached"
    if len(reached) > 1:
        text += f" ({100 * min(reached):.0f}-{100 * max(reached):.0f})"
    return text + (f", paper -{100 * paper:.0f} %" if paper is not None else "")


def plot_layer_ratios(paths: Mapping[str, Mapping[int, str | os.PathLike[str]]],
                      metrics: Mapping[str, Mapping[int, str | os.PathLike[str]]],
                      out_png: str | os.PathLike[str]) -> None:
    """Grouped bars: pruning ratio per layer, one colour per activation function; ``paths`` and
    ``metrics``: ``{af: {rep: layer_ratios.csv / pruned metrics.json}}``."""
    data = layer_ratio_frame(paths)
    labels = {af_label(af): _reduction_label(af, metrics[af]) for af in paths}
    data["af"] = data["af"].map(labels)
    n_layers = data["layer"].nunique()
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * n_layers + 2), 3.6))
    hue_order = [labels[af_label(af)] for af in paths]
    colors = {labels[af_label(af)]: af_color(af) for af in paths}
    palette = colors if all(colors.values()) else None
    sns.barplot(data=data, x="layer", y="ratio", hue="af", hue_order=hue_order, palette=palette, ax=ax, dodge=True,
                errorbar=("pi", 100), err_kws={"linewidth": 0.8})
    ax.set_ylim(0, 1)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Pruning ratio")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(title=None, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1, frameon=False, fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_png)
