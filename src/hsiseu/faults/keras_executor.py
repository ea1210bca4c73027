"""A layer-by-layer executor for the study's float Keras models: the one execution path.

Fault-free and faulty runs of both engines go through the functions here, op for op, so that
their results can be compared bit for bit (with ``tf.config.experimental.enable_op_determinism``
on, a TensorFlow op on equal inputs of equal shape returns equal bits). Each layer is a *node*
computed with explicit TensorFlow ops from a parameter store (numpy arrays keyed by set name):

- conv / tconv: ``conv2d`` / ``conv2d_transpose``, then ``bias_add`` (the pre-bias result is a
  node output of its own, ``<name>:pre``, so a bias fault starts from it);
- bn (inference): ``x * scale + offset`` with per-channel ``scale = gamma / sqrt(var + eps)`` and
  ``offset = beta - mean * scale`` computed in numpy float32 (correctly rounded, so a value of one
  channel never depends on the others');
- act: Keras' own activation functions; pool: ``max_pool2d``; cat: ``concat``.

Elementwise nodes (bn, the elementwise activations, pooling) are *per-channel*: output channel c
depends on input channel c only, which the fast engine exploits. The ops' invariance to slicing
and batch size is an empirical property of the kernels (oneDNN), so the fast engine checks it
against the fault-free results before relying on it.

Only the layer types of the U-Net are supported; any other layer is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Node", "LayerGraph", "ELEMENTWISE_ACTIVATIONS"]

#: Activations computed value by value (softmax is not: it mixes the channels).
ELEMENTWISE_ACTIVATIONS = frozenset(
    {"linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "elu", "selu", "gelu", "silu", "swish"}
)


@dataclass
class Node:
    name: str
    kind: str  # input | conv | tconv | bn | act | pool | cat
    inputs: tuple[str, ...]
    cfg: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # role -> parameter set name
    consumers: list[str] = field(default_factory=list)

    @property
    def per_channel(self) -> bool:
        if self.kind in ("bn", "pool"):
            return True
        return self.kind == "act" and self.cfg["activation"] in ELEMENTWISE_ACTIVATIONS


def _history_names(obj: Any) -> list[str]:
    """Names of the layers feeding a node, from Keras 3's serialised inbound_nodes."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [obj["config"]["keras_history"][0]]
        return [n for v in obj.values() for n in _history_names(v)]
    if isinstance(obj, (list, tuple)):
        return [n for v in obj for n in _history_names(v)]
    return []


class LayerGraph:
    """The model as nodes in graph order plus a mutable parameter store."""

    def __init__(self, model) -> None:
        import keras

        self.nodes: dict[str, Node] = {}
        self.params: dict[str, np.ndarray] = {}
        self.channel_axis: dict[str, int] = {}  # set name -> axis of the output channel
        self.layer_of: dict[str, str] = {}  # set name -> node name
        self.role_of: dict[str, str] = {}  # set name -> kernel | bias | gamma | ...
        layer_cfgs = {c["name"]: c for c in model.get_config()["layers"]}
        for layer in model.layers:
            inbound = _history_names(layer_cfgs[layer.name].get("inbound_nodes", []))
            node = Node(layer.name, "", tuple(inbound))
            if isinstance(layer, keras.layers.InputLayer):
                node.kind = "input"
            elif isinstance(layer, keras.layers.Conv2DTranspose):
                self._conv_like(node, layer, "tconv", channel_axis=2)
            elif isinstance(layer, keras.layers.Conv2D):
                self._conv_like(node, layer, "conv", channel_axis=3)
            elif isinstance(layer, keras.layers.BatchNormalization):
                if layer.axis not in (-1, 3):
                    raise ValueError(f"layer {layer.name}: BatchNormalization axis {layer.axis} unsupported")
                node.kind = "bn"
                node.cfg = {"epsilon": np.float32(layer.epsilon), "center": layer.center, "scale": layer.scale}
                for role in ("gamma", "beta", "moving_mean", "moving_variance"):
                    var = getattr(layer, role, None)
                    if var is not None:
                        self._add_param(node, role, var, 0)
            elif isinstance(layer, keras.layers.Activation):
                node.kind = "act"
                ser = keras.activations.serialize(layer.activation)
                act_name = ser if isinstance(ser, str) else getattr(layer.activation, "__name__", str(ser))
                node.cfg = {"activation": act_name, "fn": layer.activation}
            elif isinstance(layer, keras.layers.MaxPooling2D):
                node.kind = "pool"
                node.cfg = {"pool_size": tuple(layer.pool_size), "strides": tuple(layer.strides),
                            "padding": layer.padding.upper()}
            elif isinstance(layer, keras.layers.Concatenate):
                if layer.axis not in (-1, 3):
                    raise ValueError(f"layer {layer.name}: Concatenate axis {layer.axis} unsupported")
                node.kind = "cat"
            else:
                raise ValueError(
                    f"layer {layer.name} ({type(layer).__name__}) is not supported by the fault-injection "
                    "executor (supported: InputLayer, Conv2D, Conv2DTranspose, BatchNormalization, "
                    "Activation, MaxPooling2D, Concatenate)"
                )
            self.nodes[node.name] = node
        for node in self.nodes.values():
            for src in node.inputs:
                self.nodes[src].consumers.append(node.name)
        outputs = [t._keras_history[0].name for t in model.outputs]
        if len(outputs) != 1:
            raise ValueError(f"model {model.name} has {len(outputs)} outputs; one expected")
        self.output = outputs[0]
        self.input = next(n.name for n in self.nodes.values() if n.kind == "input")
        self.order = list(self.nodes)

    def _conv_like(self, node: Node, layer, kind: str, channel_axis: int) -> None:
        act = layer.activation.__name__ if hasattr(layer.activation, "__name__") else str(layer.activation)
        if act != "linear":
            raise ValueError(f"layer {layer.name}: fused activation {act!r} unsupported (use an Activation layer)")
        if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
            raise ValueError(f"layer {layer.name}: only channels_last, undilated, ungrouped convolutions supported")
        node.kind = kind
        node.cfg = {"strides": tuple(layer.strides), "padding": layer.padding.upper(),
                    "kernel_size": tuple(layer.kernel_size), "filters": int(layer.filters)}
        self._add_param(node, "kernel", layer.kernel, channel_axis)
        if layer.use_bias:
            self._add_param(node, "bias", layer.bias, 0)

    def _add_param(self, node: Node, role: str, variable, channel_axis: int) -> None:
        name = f"{node.name}/{role}"
        self.params[name] = np.array(variable.numpy(), dtype=np.float32, copy=True)
        self.channel_axis[name] = channel_axis
        self.layer_of[name] = node.name
        self.role_of[name] = role
        node.params[role] = name

    # ------------------------------------------------------------------ ops

    @staticmethod
    def bn_vectors(node: Node, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (scale, offset) of an inference BatchNorm, in float32."""
        p = node.params
        var = params[p["moving_variance"]]
        with np.errstate(all="ignore"):  # faulty values overflow and make NaN on purpose
            scale = np.float32(1) / np.sqrt(var + node.cfg["epsilon"])
            if "gamma" in p:
                scale = scale * params[p["gamma"]]
            offset = -params[p["moving_mean"]] * scale
            if "beta" in p:
                offset = params[p["beta"]] + offset
        return scale.astype(np.float32), offset.astype(np.float32)

    @staticmethod
    def conv(node: Node, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """The convolution of a conv/tconv node without its bias, for any number of filters."""
        import tensorflow as tf

        cfg = node.cfg
        if node.kind == "conv":
            y = tf.nn.conv2d(x, kernel, strides=cfg["strides"], padding=cfg["padding"])
        else:
            (sh, sw), (kh, kw) = cfg["strides"], cfg["kernel_size"]
            h, w = x.shape[1], x.shape[2]
            if cfg["padding"] == "VALID":
                oh, ow = (h - 1) * sh + kh, (w - 1) * sw + kw
            else:
                oh, ow = h * sh, w * sw
            y = tf.nn.conv2d_transpose(x, kernel, (x.shape[0], oh, ow, kernel.shape[2]),
                                       strides=cfg["strides"], padding=cfg["padding"])
        return np.asarray(y)

    @staticmethod
    def bias_add(y: np.ndarray, bias: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(tf.nn.bias_add(y, bias))

    @staticmethod
    def bn(x: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(tf.add(tf.multiply(x, scale), offset))

    @staticmethod
    def elementwise(node: Node, x: np.ndarray) -> np.ndarray:
        """An act or pool node on any tensor (a whole activation or one channel of it)."""
        import tensorflow as tf

        if node.kind == "pool":
            cfg = node.cfg
            return np.asarray(tf.nn.max_pool2d(x, cfg["pool_size"], cfg["strides"], cfg["padding"]))
        return np.asarray(node.cfg["fn"](tf.convert_to_tensor(x)))

    def apply(self, node: Node, inputs: list[np.ndarray], params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(output, pre-bias output or None) of a node on whole tensors."""
        import tensorflow as tf

        p = node.params
        if node.kind in ("conv", "tconv"):
            pre = self.conv(node, inputs[0], params[p["kernel"]])
            return (self.bias_add(pre, params[p["bias"]]) if "bias" in p else pre), pre
        if node.kind == "bn":
            scale, offset = self.bn_vectors(node, params)
            return self.bn(inputs[0], scale, offset), None
        if node.kind in ("act", "pool"):
            return self.elementwise(node, inputs[0]), None
        if node.kind == "cat":
            return np.asarray(tf.concat(inputs, axis=-1)), None
        raise ValueError(f"node {node.name} of kind {node.kind} cannot be applied")

    def forward(self, x: np.ndarray, params: Mapping[str, np.ndarray] | None = None, *, keep_all: bool = False) -> dict[str, np.ndarray]:
        """Run the model on ``x``; every node output (and ``<conv>:pre``) with ``keep_all``, else
        only the model output (intermediates are freed once their consumers have run)."""
        params = self.params if params is None else params
        values: dict[str, np.ndarray] = {self.input: np.ascontiguousarray(x, dtype=np.float32)}
        pending = {n: len(node.consumers) for n, node in self.nodes.items()}
        for name in self.order:
            node = self.nodes[name]
            if node.kind == "input":
                continue
            out, pre = self.apply(node, [values[s] for s in node.inputs], params)
            values[name] = out
            if keep_all and pre is not None:
                values[f"{name}:pre"] = pre
            if not keep_all:
                for s in node.inputs:
                    pending[s] -= 1
                    if pending[s] == 0 and s != self.output:
                        del values[s]
        return values if keep_all else {self.output: values[self.output]}
