"""The Keras functional graph as the pruner, the fault engines and the cost counts read it.

One place for what they share: who feeds a layer (from Keras 3's serialised ``inbound_nodes``,
in argument order, which Concatenate's channel offsets depend on), where a convolution kernel
keeps its output and input channels, and the one formula for a convolution's FLOPs.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["CONV_KERNEL_AXES", "TRANSPOSED_KERNEL_AXES", "channels_last", "conv_flops", "inbound_layer_names",
           "kernel_channel_axes"]

#: (output-channel axis, input-channel axis) of a Conv kernel (kh, kw, c_in, c_out) and of a
#: transposed-conv kernel (kh, kw, c_out, c_in).
CONV_KERNEL_AXES = (-1, -2)
TRANSPOSED_KERNEL_AXES = (-2, -1)


def inbound_layer_names(obj: Any) -> list[str]:
    """Names of the layers whose tensors appear in ``obj`` (a node's serialised args / kwargs,
    or a layer's whole ``inbound_nodes``), in argument order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [obj["config"]["keras_history"][0]]
        return [n for v in obj.values() for n in inbound_layer_names(v)]
    if isinstance(obj, (list, tuple)):
        return [n for v in obj for n in inbound_layer_names(v)]
    return []


def channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def kernel_channel_axes(layer: keras.layers.Layer) -> tuple[int, int]:
    """(output-channel axis, input-channel axis) of ``layer``'s kernel (Conv*D, Conv*DTranspose)."""
    L = keras.layers
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return TRANSPOSED_KERNEL_AXES
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return CONV_KERNEL_AXES
    raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) has no convolution kernel")


def _spatial_and_channels(shape: tuple, data_format: str) -> tuple[int, int, int]:
    dims = tuple(shape)[1:]  # drop the (possibly None) batch dimension
    if data_format == "channels_first":
        c, h, w = dims
    else:
        h, w, c = dims
    if None in (h, w, c):
        raise ValueError(
            f"complexity needs static spatial/channel sizes, got shape {tuple(shape)}"
        )
    return int(h), int(w), int(c)


def _single_shape(tensor_or_list: object) -> tuple:
    if isinstance(tensor_or_list, (list, tuple)):
        if len(tensor_or_list) != 1:
            raise ValueError("convolution layers with several inputs are not supported")
        tensor_or_list = tensor_or_list[0]
    return tuple(tensor_or_list.shape)  # type: ignore[attr-defined]


def conv_flops(layer: keras.layers.Layer) -> int:
    """2 x the multiply-accumulates of one Conv2D / Conv2DTranspose layer (0 for any other
    layer): the one formula behind :func:`hsiseu.model.complexity`, the pruned models' costs and the
    fault benchmark's FLOP shares."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        h_in, w_in, c_in = _spatial_and_channels(_single_shape(layer.input), layer.data_format)
        return 2 * h_in * w_in * kh * kw * c_in * int(layer.filters)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        _, _, c_in = _spatial_and_channels(_single_shape(layer.input), layer.data_format)
        h_out, w_out, c_out = _spatial_and_channels(_single_shape(layer.output), layer.data_format)
        groups = int(getattr(layer, "groups", 1) or 1)
        return 2 * h_out * w_out * kh * kw * (c_in // groups) * c_out
    return 0
