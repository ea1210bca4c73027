"""Several faulty copies of a channel chain, run in one call of a wider copy of the chain.

A batch of faults in distinct output channels shares one call of the faulty layer and the
pass-through layers after it (the channel chain: BatchNorm, activation, pooling); a layer with
few channels (the U-Net's 1x1 classifier has one per class, its last 3x3 convolution 8)
therefore needs a call per five or eight faults, and on a small map a call's cost is mostly
fixed: on a 2-core AMD EPYC a 1x1 convolution from 8 to 5 channels over 2 x 64 x 128 pixels
takes 0.34 ms, to 40 channels the same, to 80 channels 0.50 ms. Where every layer of the chain
with weights holds its output channel ``c`` on each weight's last axis and depends on index
``c`` of it only (convolutions, dense layers, BatchNorm) and the weightless ones act per channel
(the chain's definition), a copy of the chain with ``k`` times the channels, each layer's
weights its ``k`` copies side by side along that axis, gives all of them in one call of Keras's
own layers. Whether the wider call rounds every channel as the chain does is not assumed: the
engine trusts a width only once ``k`` fault-free copies reproduce the cached output bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.graph import channel_rule

__all__ = ["ChainCopies", "side_by_side"]


def side_by_side(layer: keras.layers.Layer) -> bool:
    """Whether copies of ``layer``'s weights can run side by side in a wider copy of it: a
    convolution or dense layer (not transposed, one group) or a BatchNorm whose every weight
    holds the output channel on its last axis (a chain's weightless layers act per channel and
    take any number of channels as they are)."""
    L = keras.layers
    if not isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense, L.BatchNormalization)) or isinstance(
            layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return False
    rule = channel_rule(layer)
    return rule is not None and all(
        v.name in rule.axes and rule.axes[v.name] % len(v.shape) == len(v.shape) - 1 for v in layer.weights)


def _width_key(layer: keras.layers.Layer) -> str | None:
    """The config key of ``layer``'s output channels, or None where they are its input's
    (BatchNorm, weightless layers)."""
    config = layer.get_config()
    return next((key for key in ("filters", "units") if key in config), None)


def _wider(layer: keras.layers.Layer, k: int) -> keras.layers.Layer:
    """``layer`` with ``k`` times its output channels (itself, where it has no weights)."""
    if not layer.weights:
        return layer
    config, width = layer.get_config(), _width_key(layer)
    if width is not None:
        config[width] = int(config[width]) * k
    wide = type(layer).from_config({**config, "name": f"{layer.name}_x{k}"})
    shape = tuple(layer.input.shape)
    wide.build(shape if width is not None else shape[:-1] + (int(shape[-1]) * k,))
    return wide


class ChainCopies:
    """``k`` copies of a channel chain (``layers``, the faulty one first) as one chain of ``k``
    times its channels."""

    def __init__(self, layers: Sequence[keras.layers.Layer], k: int) -> None:
        self.k, self.channels = int(k), int(layers[-1].output.shape[-1])
        self.steps = [_wider(layer, self.k) for layer in layers]
        # a first layer that keeps its input's channels (BatchNorm) reads them k times over
        self.tiled = _width_key(layers[0]) is None
        self._fn = compiled.compile_fn(self._run)

    def _run(self, weights, x):
        if self.tiled:
            x = keras.ops.tile(x, (1,) * (len(x.shape) - 1) + (self.k,))
        y, at = x, 0
        for step in self.steps:
            n = len(step.weights)
            with compiled.stateless(step.weights, weights[at:at + n]):
                y = step(y, training=False)
            at += n
        return y

    def __call__(self, copies: Sequence[Sequence[Sequence[np.ndarray]]], x: Any) -> np.ndarray:
        """Per copy of the chain's weights (per layer with weights, host arrays in its order;
        at most ``k`` copies, the rest padded with the first), the chain's output on ``x``:
        (copies, N, ..., C)."""
        full = list(copies) + [copies[0]] * (self.k - len(copies))
        weights = [compiled.to_device(np.concatenate([c[layer][i] for c in full], axis=-1))
                   for layer in range(len(full[0])) for i in range(len(full[0][layer]))]
        y = compiled.to_host(self._fn(weights, x))
        y = y.reshape(y.shape[:-1] + (self.k, self.channels))
        return np.moveaxis(y, -2, 0)[:len(copies)]
