"""Dependency groups: which weights move together when one producer's output channel goes.

Channel pruning removes output channel ``j`` of a convolution (the *producer*). The same channel
then has to leave every layer that carries it along -- per-channel layers such as
BatchNormalization, element-wise activations, pooling -- and the input axis of every convolution
that reads it (the *consumers*), at the channel's offset inside any Concatenate on the way.
Everything the pruner does is "pick a group, pick channels, apply"; nothing is special-cased by
layer name. The groups are found by walking the functional graph of ``model.get_config()``.

A producer whose channels reach a model output, or a layer the walk does not understand (softmax
over channels, Add, Dense, reshapes, grouped convolutions), is *not prunable*: this is what keeps
the final classifier (``cnv_out`` -> ``softmax`` -> output) whole without naming it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import keras

from hsiseu.activations import CHANNEL_MIXING
from hsiseu.keras_graph import channels_last, inbound_layer_names

__all__ = ["ChannelSlice", "Group", "PRODUCERS", "find_groups", "prunable_groups"]

PRODUCERS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
# Layers that act on each channel on its own and hold no weights: the channel index passes through.
_PASS_THROUGH = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.UpSampling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


@dataclass(frozen=True)
class ChannelSlice:
    """Channels ``offset .. offset + n`` of a layer's channel axis belong to the group."""

    layer: str
    offset: int


@dataclass(frozen=True)
class Group:
    """One producer and every place its output channels reach.

    ``per_channel`` are layers whose weights are all per-channel vectors (BatchNormalization):
    their weights are sliced at ``offset``. ``consumers`` are convolutions whose kernels' input
    axis is sliced at ``offset``. ``blocked`` says why the group may not be pruned (empty if it
    may).
    """

    producer: str
    channels: int
    per_channel: tuple[ChannelSlice, ...]
    consumers: tuple[ChannelSlice, ...]
    blocked: str = ""

    @property
    def prunable(self) -> bool:
        return not self.blocked


def _channels(shape) -> int:
    return int(tuple(shape)[-1])


def _downstream(config: dict) -> tuple[dict[str, list[tuple[str, int]]], set[str]]:
    """layer -> [(child, position of the layer among the child's inputs)], and output layers."""
    children: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(
                f"layer {entry['name']!r} is called {len(nodes)} times; channel pruning supports "
                "layers used once"
            )
        for node in nodes:
            for pos, parent in enumerate(inbound_layer_names([node.get("args", []), node.get("kwargs", {})])):
                children[parent].append((entry["name"], pos))
    specs = config["output_layers"]
    if specs and isinstance(specs[0], str):  # a single output is stored flat: [name, node, index]
        specs = [specs]
    outputs = {spec[0] for spec in specs}
    return children, outputs


def _walk(model: keras.Model, producer: str, children, outputs) -> Group:
    layer = model.get_layer(producer)
    n = int(layer.filters)
    per_channel: list[ChannelSlice] = []
    consumers: list[ChannelSlice] = []
    blocked: list[str] = []
    if int(getattr(layer, "groups", 1) or 1) != 1:
        blocked.append(f"{producer} is a grouped convolution")
    if not channels_last(layer):
        blocked.append(f"{producer} is channels_first")
    stack = [(producer, 0)]
    seen: set[tuple[str, int]] = set()
    while stack:
        name, offset = stack.pop()
        if (name, offset) in seen:
            continue
        seen.add((name, offset))
        if name in outputs:
            blocked.append(f"channels of {producer} reach the model output at {name}")
        for child_name, pos in children.get(name, []):
            child = model.get_layer(child_name)
            if isinstance(child, PRODUCERS):
                if int(getattr(child, "groups", 1) or 1) != 1 or not channels_last(child):
                    blocked.append(f"consumer {child_name} is grouped or channels_first")
                consumers.append(ChannelSlice(child_name, offset))
            elif isinstance(child, keras.layers.BatchNormalization):
                if child.axis not in (-1, len(child.input.shape) - 1):
                    blocked.append(f"{child_name} normalises axis {child.axis}, not channels")
                per_channel.append(ChannelSlice(child_name, offset))
                stack.append((child_name, offset))
            elif isinstance(child, keras.layers.Activation):
                act = keras.activations.serialize(child.activation)
                act_name = act if isinstance(act, str) else str(act.get("config", act))
                if any(m in act_name for m in CHANNEL_MIXING):
                    blocked.append(f"{child_name} ({act_name}) mixes channels")
                else:
                    stack.append((child_name, offset))
            elif isinstance(child, _PASS_THROUGH):
                if child.weights:
                    blocked.append(f"{child_name} holds weights the walk does not slice")
                stack.append((child_name, offset))
            elif isinstance(child, keras.layers.Concatenate):
                rank = len(child.input[0].shape)
                if child.axis not in (-1, rank - 1):
                    blocked.append(f"{child_name} concatenates axis {child.axis}, not channels")
                    continue
                before = sum(_channels(t.shape) for t in child.input[:pos])
                stack.append((child_name, offset + before))
            else:
                blocked.append(f"{child_name} ({type(child).__name__}) is not supported by the walk")
    key = lambda s: (s.layer, s.offset)  # noqa: E731 - a stable order for equal groups
    return Group(
        producer=producer,
        channels=n,
        per_channel=tuple(sorted(set(per_channel), key=key)),
        consumers=tuple(sorted(set(consumers), key=key)),
        blocked="; ".join(dict.fromkeys(blocked)),
    )


def find_groups(model: keras.Model) -> list[Group]:
    """Every producer's dependency group, in the model's layer order."""
    config = model.get_config()
    children, outputs = _downstream(config)
    return [
        _walk(model, layer.name, children, outputs)
        for layer in model.layers
        if isinstance(layer, PRODUCERS)
    ]


def prunable_groups(model: keras.Model) -> list[Group]:
    """The groups whose channels may be removed, in layer order."""
    return [g for g in find_groups(model) if g.prunable]
