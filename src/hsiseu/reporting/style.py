"""What every figure shares: the Agg backend, how a figure is saved, and one colour per AF.

Imported before pyplot by the figure modules, so that the backend is chosen once (no display on
cluster nodes) and a figure file is written atomically, never half.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hsiseu.activations import ACTIVATIONS  # noqa: E402
from hsiseu.io import atomic_path  # noqa: E402

__all__ = ["af_color", "save_figure"]


def save_figure(fig, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` (150 dpi, tight) atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)


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
