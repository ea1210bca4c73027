"""The functional graph of a Keras model as the fault engines need it: who feeds whom, which
weights are parameter sets, and how a weight's value maps to one output channel.

Nothing here computes a layer: the engines call the layers' own ``__call__`` (directly and
through Keras sub-models). What this module decides is *which* shortcut a layer admits:

- a **channel rule** says, for a layer whose output channel ``c`` depends only on slice ``c``
  of each weight (convolutions, dense layers, BatchNorm, depthwise convolutions), along which
  axis each weight is sliced. A fault in such a layer changes one output channel, so faults in
  distinct channels can share one call of the layer;
- a **pass-through** layer maps input channel ``c`` to output channel ``c`` (BatchNorm,
  elementwise activations, pooling), so a single faulty channel stays single through it;
- any other layer with weights is injectable too: recomputed whole per fault.

A layer the engines cannot run at all (a nested model, a layer called more than once, a model
with several outputs) is refused here, by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras

from hsiseu.activations import CHANNEL_MIXING
from hsiseu.faults.keras.classmap import is_softmax
from hsiseu.keras_graph import CONV_KERNEL_AXES, TRANSPOSED_KERNEL_AXES, channels_last, inbound_layer_names

__all__ = ["ChannelRule", "LayerGraph", "channel_rule", "keeps_pixels", "passes_channels", "UnsupportedModel"]


class UnsupportedModel(ValueError):
    """The model has a structure the fault engines cannot run; the message names the layer."""


@dataclass(frozen=True)
class ChannelRule:
    """How output channel ``c`` of a layer depends on its weights: only through index ``c`` of
    each weight's channel axis. Faults in distinct channels therefore never meet: one call of the
    layer, at the fault-free shapes, with each fault's flip in its own channel, gives every one of
    them its own faulty channel."""

    axes: dict[str, int]  # weight name -> the axis whose index is the output channel


_CONV = ChannelRule({"kernel": CONV_KERNEL_AXES[0], "bias": 0})
_CONV_T = ChannelRule({"kernel": TRANSPOSED_KERNEL_AXES[0], "bias": 0})
_DENSE = _CONV
_DEPTHWISE = ChannelRule({"kernel": -2, "bias": 0})
_BN = ChannelRule({"gamma": 0, "beta": 0, "moving_mean": 0, "moving_variance": 0})



def _activation_name(fn: Any) -> str:
    ser = keras.activations.serialize(fn) if fn is not None else "linear"
    return ser if isinstance(ser, str) else getattr(fn, "__name__", str(ser))


def channel_rule(layer: keras.layers.Layer) -> ChannelRule | None:
    """The channel rule of ``layer``, or None when a fault in it must be recomputed whole."""
    L = keras.layers
    fused = _activation_name(getattr(layer, "activation", None))
    if fused in CHANNEL_MIXING or not channels_last(layer):
        return None
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return _CONV_T
    if isinstance(layer, L.DepthwiseConv2D) or isinstance(layer, getattr(L, "DepthwiseConv1D", ())):
        return _DEPTHWISE if int(layer.depth_multiplier) == 1 else None
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return None
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return _CONV if int(getattr(layer, "groups", 1) or 1) == 1 else None
    if isinstance(layer, L.Dense):
        return _DENSE
    if isinstance(layer, L.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        rank = len(layer.input.shape)
        return _BN if axis in (-1, rank - 1) else None
    return None


_PASS_THROUGH = (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "ReLU", "LeakyReLU",
    "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
)


def passes_channels(layer: keras.layers.Layer) -> bool:
    """Whether output channel c of ``layer`` depends on input channel c only (and on nothing
    else that a fault could change)."""
    if not channels_last(layer):
        return False
    if isinstance(layer, keras.layers.BatchNormalization):
        return channel_rule(layer) is not None
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer.activation) not in CHANNEL_MIXING
    return type(layer).__name__ in _PASS_THROUGH and not layer.weights


#: Weightless layers that compute each output pixel from the same input pixel (at inference).
_PER_PIXEL = ("ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
              "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout")


def keeps_pixels(layer: keras.layers.Layer) -> bool:
    """Whether each output pixel of ``layer`` depends on the same input pixel only (channels may
    mix: a 1x1 convolution, a dense layer, the softmax over classes). Past the last layer that
    mixes pixels, a fault changes the output only where it changed the input."""
    L = keras.layers
    if not channels_last(layer):
        return False
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)) and not isinstance(
            layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose, L.SeparableConv1D, L.SeparableConv2D)):
        return all(int(k) == 1 for k in layer.kernel_size) and all(int(s) == 1 for s in layer.strides)
    if isinstance(layer, L.Softmax):
        return is_softmax(layer)
    if isinstance(layer, (L.Dense, L.Activation)):
        return True  # the activations act on the last axis: element-wise or across classes
    if isinstance(layer, L.BatchNormalization):
        return channel_rule(layer) is not None
    return type(layer).__name__ in _PER_PIXEL


@dataclass
class Node:
    layer: keras.layers.Layer
    inputs: tuple[str, ...]
    consumers: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.layer.name


class LayerGraph:
    """Layers of a functional model in execution order, with inbound and consumer names."""

    def __init__(self, model: keras.Model) -> None:
        if not isinstance(model, keras.Model) or not hasattr(model, "get_config"):
            raise UnsupportedModel(f"{type(model).__name__}: a functional or sequential Keras model is expected")
        if len(model.outputs) != 1 or len(model.inputs) != 1:
            raise UnsupportedModel(
                f"model {model.name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                "the fault engines need one of each")
        self.model = model
        cfgs = {c["name"]: c for c in model.get_config()["layers"]}
        self.nodes: dict[str, Node] = {}
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                raise UnsupportedModel(
                    f"layer {layer.name} is a nested model ({type(layer).__name__}); flatten it into the "
                    "outer functional model for fault injection")
            calls = len(cfgs[layer.name].get("inbound_nodes", []))
            if calls > 1:
                raise UnsupportedModel(
                    f"layer {layer.name} ({type(layer).__name__}) is called {calls} times in the model "
                    "(shared weights); the fault engines need each layer called once")
            self.nodes[layer.name] = Node(layer, tuple(inbound_layer_names(cfgs[layer.name].get("inbound_nodes", []))))
        for node in self.nodes.values():
            for src in node.inputs:
                self.nodes[src].consumers.append(node.name)
        self.output = model.outputs[0]._keras_history[0].name
        self.input = model.inputs[0]._keras_history[0].name
        self.order = list(self.nodes)
        self.position = {n: i for i, n in enumerate(self.order)}

    def computed(self) -> list[str]:
        """Every layer that computes something (all but the input), in execution order."""
        return [n for n in self.order if n != self.input]

    def descendants(self, name: str) -> list[str]:
        """The layers whose output depends on ``name``'s, in execution order."""
        seen: set[str] = set()
        stack = list(self.nodes[name].consumers)
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.nodes[n].consumers)
        return sorted(seen, key=self.position.__getitem__)

    def frontier(self, name: str) -> list[str]:
        """Fault-free tensors the layers after ``name`` still read (skip connections), besides
        ``name``'s own output, in execution order."""
        down = set(self.descendants(name))
        need = {s for d in down for s in self.nodes[d].inputs if s not in down and s != name}
        return sorted(need, key=self.position.__getitem__)

    def live_peak(self, name: str, nbytes: Callable[[str], int]) -> int:
        """The most bytes alive at once when the layers after ``name`` run from its output: a
        tensor lives from the layer that makes it to the last layer that reads it, the
        :meth:`frontier` tensors (``nbytes`` each) from the start."""
        order = [name, *self.descendants(name)]
        frontier = self.frontier(name)
        last = {n: max((self.position[c] for c in self.nodes[n].consumers), default=self.position[n])
                for n in order + frontier}
        size = {n: nbytes(n) for n in last}
        live, peak = set(frontier), 0
        for n in order:
            live.add(n)
            peak = max(peak, sum(size[m] for m in live))
            live = {m for m in live if last[m] > self.position[n]}
        return peak

    def tail_keeps_pixels(self, name: str) -> bool:
        """Whether every layer after ``name`` computes each pixel from the same pixel of
        ``name``'s output alone, reading no other tensor (no skip), up to an output of the same
        pixel grid."""
        if self.frontier(name):
            return False
        for d in self.descendants(name):
            node = self.nodes[d]
            if len(node.inputs) != 1 or not keeps_pixels(node.layer):
                return False
        shape, out = self.nodes[name].layer.output.shape, self.nodes[self.output].layer.output.shape
        return len(shape) >= 2 and tuple(shape[1:-1]) == tuple(out[1:-1])

    def channel_chain(self, name: str) -> list[str]:
        """``name`` followed by the single-consumer pass-through layers after it: a single
        faulty output channel of ``name`` stays single along this chain."""
        chain = [name]
        while chain[-1] != self.output:
            consumers = self.nodes[chain[-1]].consumers
            if len(consumers) != 1:
                break
            nxt = self.nodes[consumers[0]]
            if nxt.inputs != (chain[-1],) or not passes_channels(nxt.layer):
                break
            chain.append(nxt.name)
        return chain

    def weights(self) -> Iterator[tuple[str, keras.layers.Layer, keras.Variable]]:
        """(set name ``<layer>/<weight>``, layer, variable) of every weight, in graph order."""
        for name in self.order:
            layer = self.nodes[name].layer
            for var in layer.weights:
                yield f"{name}/{var.name}", layer, var
