"""Removing channels: rank them by L1 norm, mask them in place, or build the smaller model.

A *removal* maps producer names to the indices of the output channels that go. Two ways to apply
it, which must agree (the tests and every pruning iteration check it):

- :func:`masked` zeroes the channels in place: the producer's kernel and bias, the BatchNorm
  gamma and beta, and the consumers' input slices. Zeroing the consumers is the part that
  matters: a removed channel still carries ``AF(BN(0))``, which is not 0 for the sigmoids
  (sigmoid(0) = 0.5, Keras 3 hard_sigmoid(0) = 0.5) nor, through BN's beta and moving mean, for
  ReLU. The sensitivity analysis scores masked models, because masking costs no rebuild.
- :func:`slim_model` edits the producers' ``filters`` in ``get_config()``, drops every layer's
  ``build_config`` (which pins the old input shapes), rebuilds with ``Model.from_config`` and sets
  the sliced weights: a genuinely smaller model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import keras
import numpy as np

from hsiseu.keras_graph import conv_flops, kernel_channel_axes
from hsiseu.model import Complexity
from hsiseu.pruning.groups import Group

__all__ = [
    "Removal",
    "channels_to_remove",
    "l1_norms",
    "layer_flops",
    "masked",
    "n_removed",
    "pruned_complexity",
    "slim_model",
]

Removal = Mapping[str, Sequence[int]]


def n_removed(sparsity: float, channels: int) -> int:
    """Channels removed at ``sparsity``: rounded down, so the sparsity is never exceeded, and one
    channel always kept (a layer with no channels would cut the network)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return min(channels - 1, int(math.floor(sparsity * channels + 1e-9)))


def l1_norms(model: keras.Model, producer: str) -> np.ndarray:
    """L1 norm of each output channel's kernel slice (the criterion of Vitis AI's pruner)."""
    layer = model.get_layer(producer)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if isinstance(layer, keras.layers.Conv2DTranspose):  # (kh, kw, out, in)
        return np.abs(kernel).sum(axis=(0, 1, 3))
    return np.abs(kernel).sum(axis=(0, 1, 2))  # Conv2D: (kh, kw, in, out)


def channels_to_remove(model: keras.Model, group: Group, n: int) -> np.ndarray:
    """The ``n`` output channels of the group's producer with the smallest L1 norm (sorted)."""
    if not 0 <= n < group.channels:
        raise ValueError(f"cannot remove {n} of {group.channels} channels of {group.producer}")
    order = np.argsort(l1_norms(model, group.producer), kind="stable")
    return np.sort(order[:n])


def _check(groups_by_producer: Mapping[str, Group], removal: Removal) -> None:
    for producer, idx in removal.items():
        group = groups_by_producer.get(producer)
        if group is None:
            raise ValueError(f"{producer!r} is not the producer of any given group")
        if not group.prunable:
            raise ValueError(f"group of {producer!r} is not prunable: {group.blocked}")
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= group.channels or np.unique(idx).size != idx.size):
            raise ValueError(f"bad channel indices for {producer!r}: {idx.tolist()}")
        if idx.size >= group.channels:
            raise ValueError(f"removal would leave {producer!r} with no channels")


def _masks(model: keras.Model, groups: Sequence[Group], removal: Removal):
    """Per layer: kept output channels (producers), kept per-channel entries, kept input channels."""
    by_producer = {g.producer: g for g in groups}
    _check(by_producer, removal)
    out_keep: dict[str, np.ndarray] = {}
    chan_keep: dict[str, np.ndarray] = {}
    in_keep: dict[str, np.ndarray] = {}
    for producer, idx in removal.items():
        idx = np.asarray(idx, dtype=np.int64)
        group = by_producer[producer]
        keep = np.ones(group.channels, dtype=bool)
        keep[idx] = False
        out_keep[producer] = keep
        for target, sl in ((chan_keep, group.per_channel), (in_keep, group.consumers)):
            for s in sl:
                if s.layer not in target:
                    width = _input_channels(model.get_layer(s.layer))
                    target[s.layer] = np.ones(width, dtype=bool)
                target[s.layer][s.offset + idx] = False
    return out_keep, chan_keep, in_keep


def _input_channels(layer) -> int:
    shape = layer.input.shape if not isinstance(layer.input, list) else layer.input[0].shape
    return int(shape[-1])


def _sliced_weights(layer, out_keep, chan_keep, in_keep) -> list[np.ndarray]:
    weights = [keras.ops.convert_to_numpy(w) for w in layer.weights]
    name = layer.name
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        out_axis, in_axis = kernel_channel_axes(layer)
        kernel = weights[0]
        if name in in_keep:
            kernel = np.compress(in_keep[name], kernel, axis=in_axis)
        if name in out_keep:
            kernel = np.compress(out_keep[name], kernel, axis=out_axis)
        rest = weights[1:]
        if name in out_keep:
            rest = [np.compress(out_keep[name], w, axis=-1) for w in rest]
        return [kernel, *rest]
    if name in chan_keep:
        return [np.compress(chan_keep[name], w, axis=-1) for w in weights]
    return weights


def _zeroed_weights(layer, out_keep, chan_keep, in_keep) -> list[np.ndarray]:
    weights = [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]
    name = layer.name
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        kernel = weights[0]
        for axis, keep in zip(kernel_channel_axes(layer), (out_keep, in_keep)):
            if name in keep:
                np.moveaxis(kernel, axis, -1)[..., ~keep[name]] = 0.0  # a view: zeroes the kernel
        if name in out_keep:
            for w in weights[1:]:
                w[..., ~out_keep[name]] = 0.0
        return weights
    if name in chan_keep and isinstance(layer, keras.layers.BatchNormalization):
        drop = ~chan_keep[name]
        for var, w in zip(layer.weights, weights):
            if var.path.endswith(("gamma", "beta")):
                w[..., drop] = 0.0
    return weights


@contextmanager
def masked(model: keras.Model, groups: Sequence[Group], removal: Removal) -> Iterator[keras.Model]:
    """Zero the removed channels of ``model`` in place for the block; restore them after."""
    maps = _masks(model, groups, removal)
    touched = sorted(set(maps[0]) | set(maps[1]) | set(maps[2]))
    saved = {name: model.get_layer(name).get_weights() for name in touched}
    try:
        for name in touched:
            layer = model.get_layer(name)
            layer.set_weights(_zeroed_weights(layer, *maps))
        yield model
    finally:
        for name, weights in saved.items():
            model.get_layer(name).set_weights(weights)


def slim_model(model: keras.Model, groups: Sequence[Group], removal: Removal) -> keras.Model:
    """A new, smaller model without the removed channels (``model`` is left unchanged)."""
    out_keep, chan_keep, in_keep = _masks(model, groups, removal)
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        entry.pop("build_config", None)
        if entry["name"] in out_keep:
            entry["config"]["filters"] = int(out_keep[entry["name"]].sum())
    slim = model.__class__.from_config(config)
    for layer in model.layers:
        if layer.weights:
            slim.get_layer(layer.name).set_weights(_sliced_weights(layer, out_keep, chan_keep, in_keep))
    return slim


def layer_flops(model: keras.Model) -> dict[str, int]:
    """FLOPs of each convolution, by the formula of :func:`hsiseu.model.complexity` (whose total
    equals the sum of these; tested)."""
    out: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            out[layer.name] = conv_flops(layer)
    return out


def pruned_complexity(
    model: keras.Model,
    groups: Sequence[Group],
    removal: Removal,
    per_layer_flops: Mapping[str, int] | None = None,
) -> Complexity:
    """Params and FLOPs the slim model would have, without building it.

    A convolution's MACs are ``H W kh kw C_in C_out``, bilinear in the channel counts, so the
    pruned cost is the original's scaled by the kept fractions; parameters are counted per weight
    tensor the same way. Equal to ``complexity(slim_model(...))`` (tested); fast enough to call in
    the threshold search.
    """
    out_keep, chan_keep, in_keep = _masks(model, groups, removal)
    flops_by_layer = per_layer_flops if per_layer_flops is not None else layer_flops(model)
    flops = 0
    for name, f in flops_by_layer.items():
        layer = model.get_layer(name)
        c_out, c_in = int(layer.filters), _input_channels(layer)
        k_out = int(out_keep[name].sum()) if name in out_keep else c_out
        k_in = int(in_keep[name].sum()) if name in in_keep else c_in
        flops += f // (c_out * c_in) * k_out * k_in  # f is a multiple of c_out * c_in
    params = 0
    for layer in model.layers:
        shapes = [tuple(w.shape) for w in layer.weights]
        if not shapes:
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            transpose = isinstance(layer, keras.layers.Conv2DTranspose)
            kh, kw, a, b = shapes[0]
            c_out, c_in = (a, b) if transpose else (b, a)
            if layer.name in out_keep:
                c_out = int(out_keep[layer.name].sum())
            if layer.name in in_keep:
                c_in = int(in_keep[layer.name].sum())
            params += kh * kw * c_in * c_out + sum(c_out for _ in shapes[1:])
        elif layer.name in chan_keep:
            params += int(chan_keep[layer.name].sum()) * len(shapes)
        else:
            params += sum(int(np.prod(s)) for s in shapes)
    return Complexity(params=int(params), flops=int(flops))
