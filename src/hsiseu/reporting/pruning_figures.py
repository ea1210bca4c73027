"""Figure 1: the overall pruning ratio of each layer, one series per activation function.

Reads the ``layer_ratios.csv`` files the pruning writes (layer order = graph order, which is the
x axis, as in the paper's figure); layers the pruner may not touch (the classifier) are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hsiseu.reporting.style import af_color, save_figure  # noqa: I001  (chooses the backend)

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from hsiseu.activations import af_label

__all__ = ["layer_ratio_frame", "plot_layer_ratios"]


def layer_ratio_frame(paths_by_af: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """Long table (layer, af, ratio) of the prunable layers, in graph order."""
    frames = []
    order: list[str] = []
    for af, path in paths_by_af.items():
        table = pd.read_csv(path)
        missing = {"layer", "prunable", "ratio"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        table = table[table["prunable"].astype(bool)]
        order += [name for name in table["layer"] if name not in order]
        frames.append(pd.DataFrame({"layer": table["layer"], "af": af_label(af), "ratio": table["ratio"]}))
    out = pd.concat(frames, ignore_index=True)
    out["layer"] = pd.Categorical(out["layer"], categories=order, ordered=True)
    return out.sort_values(["layer", "af"], kind="stable").reset_index(drop=True)


def plot_layer_ratios(paths_by_af: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str]) -> None:
    """Grouped bars: pruning ratio per layer, one colour per activation function."""
    data = layer_ratio_frame(paths_by_af)
    n_layers = data["layer"].nunique()
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * n_layers + 2), 3.6))
    hue_order = [af_label(af) for af in paths_by_af]
    colors = {af_label(af): af_color(af) for af in paths_by_af}
    palette = colors if all(colors.values()) else None
    sns.barplot(data=data, x="layer", y="ratio", hue="af", hue_order=hue_order, palette=palette, ax=ax, dodge=True)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Pruning ratio")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(title=None, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(hue_order), frameon=False)
    fig.tight_layout()
    save_figure(fig, out_png)
