"""Several faulty copies of one layer's weights, run in one call of a wider copy of the layer.

A batch of faults in distinct output channels shares one call of the faulty layer; a layer with
few channels (the U-Net's 1x1 classifier has one per class) therefore needs a call per five or
so faults, and on a small map a call's cost is mostly fixed: on a 2-core AMD EPYC a 1x1
convolution from 8 to 5 channels over 2 x 64 x 128 pixels takes 0.34 ms, to 40 channels the
same, to 80 channels 0.50 ms. Where the layer's output channel ``c`` depends on index ``c`` of
each weight's last axis only (convolutions, dense layers: :mod:`~hsiseu.faults.keras.graph`), a
copy of the layer with ``k`` times the channels, its weights the ``k`` faulty copies side by
side along that axis, gives all of them in one call of Keras's own layer. Whether the wider
call rounds every channel as the layer does is not assumed: the engine trusts a width only once
``k`` fault-free copies reproduce the cached output bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.graph import channel_rule

__all__ = ["LayerCopies", "side_by_side"]


def side_by_side(layer: keras.layers.Layer) -> bool:
    """Whether copies of ``layer``'s weights can run side by side in a wider copy of it: a
    convolution or dense layer (not transposed, one group) whose every weight holds the output
    channel on its last axis."""
    L = keras.layers
    if not isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense)) or isinstance(
            layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return False
    rule = channel_rule(layer)
    return rule is not None and all(
        v.name in rule.axes and rule.axes[v.name] % len(v.shape) == len(v.shape) - 1 for v in layer.weights)


class LayerCopies:
    """``k`` copies of ``layer`` as one layer of ``k`` times its output channels."""

    def __init__(self, layer: keras.layers.Layer, k: int) -> None:
        config = layer.get_config()
        width = "filters" if "filters" in config else "units"
        self.k, self.channels = int(k), int(config[width])
        self.wide = type(layer).from_config({**config, width: self.channels * self.k, "name": f"{layer.name}_x{k}"})
        self.wide.build(layer.input.shape)
        self._fn = compiled.compile_fn(self._run)

    def _run(self, weights, x):
        with compiled.stateless(self.wide.weights, weights):
            return self.wide(x, training=False)

    def __call__(self, copies: Sequence[Sequence[np.ndarray]], x: Any) -> np.ndarray:
        """Per copy of the weights (host arrays, the layer's order; at most ``k``, the rest
        padded with the first), the layer's output on ``x``: (copies, N, ..., C)."""
        full = list(copies) + [copies[0]] * (self.k - len(copies))
        weights = [compiled.to_device(np.concatenate([c[i] for c in full], axis=-1)) for i in range(len(full[0]))]
        y = compiled.to_host(self._fn(weights, x))
        y = y.reshape(y.shape[:-1] + (self.k, self.channels))
        return np.moveaxis(y, -2, 0)[:len(copies)]
