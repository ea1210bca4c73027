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
Width 1 is the chain as it is, for any chain (a transposed convolution's too): one call per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    times its channels; ``k = 1``: the chain's own layers, whatever they are. The faulty layer's
    weights (``own``, host arrays in its order) change from call to call, the others (``rest``)
    are the same in every copy and every call: they go to the device once."""

    def __init__(self, layers: Sequence[keras.layers.Layer], k: int, own: Sequence[np.ndarray],
                 rest: Sequence[np.ndarray]) -> None:
        self.k, self.channels = int(k), int(layers[-1].output.shape[-1])
        self.steps = list(layers) if self.k == 1 else [_wider(layer, self.k) for layer in layers]
        # a first layer that keeps its input's channels (BatchNorm) reads them k times over
        self.tiled = self.k > 1 and _width_key(layers[0]) is None
        self._variables = [v for step in self.steps for v in step.weights]
        self._own = list(own)
        self._own_values = [compiled.to_device(a) for a in own] if self.k == 1 else []
        self._rest = [compiled.to_device(np.concatenate([a] * self.k, axis=-1)) for a in rest]
        self._fn = compiled.compile_fn(self._run)

    def _run(self, own, rest, x):
        if self.tiled:
            x = keras.ops.tile(x, (1,) * (len(x.shape) - 1) + (self.k,))
        with compiled.stateless(self._variables, list(own) + list(rest)):
            y = x
            for step in self.steps:
                y = step(y, training=False)
        return y

    def __call__(self, flips: Sequence[Mapping[int, np.ndarray]], x: Any) -> np.ndarray:
        """Per copy (at most ``k``; the rest padded with the first), the faulty layer's flipped
        weights by their position in its weights: the chain's output on ``x``, (copies, N, ..., C).
        Width 1 copies only the flipped weights to the device."""
        if self.k == 1:
            own = [compiled.to_device(flips[0][i]) if i in flips[0] else v for i, v in enumerate(self._own_values)]
        else:
            full = list(flips) + [flips[0]] * (self.k - len(flips))
            own = [compiled.to_device(np.concatenate([f.get(i, a) for f in full], axis=-1)) for i, a in enumerate(self._own)]
        y = compiled.to_host(self._fn(own, self._rest, x))
        y = y.reshape(y.shape[:-1] + (self.k, self.channels))
        return np.moveaxis(y, -2, 0)[:len(flips)]
