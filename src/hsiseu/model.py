"""The paper's U-Net, its analytic complexity, and batched arg-max inference.

The network is the one described in the paper: ``pools`` encoder levels of two
3x3 Conv2D -> BatchNormalization -> activation blocks followed by a 2x2 max-pool,
a base of two such blocks, and a mirrored decoder in which a 2x2/2 Conv2DTranspose
upsamples, the encoder's skip tensor is concatenated (skip first) and two conv
blocks follow; a 1x1 Conv2D gives the logits and a separate ``softmax`` layer the
class probabilities.

Activation functions are Keras 3's element-wise built-ins (:mod:`hsiseu.activations`; the
paper's three are ``AFS``). In particular
``hard_sigmoid`` is Keras 3's ``keras.activations.hard_sigmoid``,
``relu6(x + 3) / 6`` -- *not* Keras 2's ``clip(0.2 * x + 0.5, 0, 1)``. The two
differ in slope (1/6 vs 1/5) and in saturation points (+-3 vs +-2.5); Keras 3's
form is also what TFLite lowers to ADD/RELU6/MUL, which matters for the int8 models.

Layer names are an interface: pruning, fault injection and the figures address
layers by name, so they are stable and follow the graph order (see
:func:`build_unet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import keras
import numpy as np

from hsiseu.activations import check_af, kernel_initializer_name
from hsiseu.keras_graph import conv_flops

__all__ = ["AFS", "Complexity", "build_unet", "complexity", "predict_classes"]

AFS: tuple[str, ...] = ("relu", "sigmoid", "hard_sigmoid")


def _derived_seed(seed: int | None, index: int) -> int | None:
    """A distinct, reproducible seed per layer.

    Keras initializers given the same integer seed draw the same numbers, so two
    layers with identical kernel shapes would start identical if they shared a
    seed; mixing the layer index in through ``SeedSequence`` avoids that while
    keeping whole-model builds reproducible.
    """
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def _kernel_init(af: str, seed: int | None) -> keras.initializers.Initializer:
    return keras.initializers.get({"class_name": kernel_initializer_name(af), "config": {"seed": seed}})


def build_unet(
    *,
    height: int,
    width: int,
    bands: int,
    n_classes: int,
    af: str,
    pools: int = 5,
    base_filters: int = 32,
    seed: int | None = None,
) -> keras.Model:
    """Build the U-Net used throughout the study.

    Layer names (``i`` numbers the 3x3 convolutions in graph order: encoder,
    base, decoder, so ``i`` runs 1 .. ``4 * pools + 2``):

    - ``input``; ``cnv_<i>`` / ``bn_<i>`` / ``act_<i>`` for each conv block;
    - ``pool_<l>``, ``l = 1 .. pools`` from the top (full resolution) down;
    - ``tcnv_<l>`` and ``cat_<l>``, ``l = 1`` at the deepest decoder level;
    - ``cnv_out`` (1x1 logits) and ``softmax``.

    Encoder level ``l`` (0-based) has ``base_filters * 2**l`` filters, the base
    ``base_filters * 2**pools``. With ``seed`` set, every kernel initializer gets
    its own derived seed, so equal seeds give equal weights.
    """
    check_af(af, key="af")
    if pools < 1:
        raise ValueError(f"pools must be >= 1, got pools={pools!r}")
    if base_filters < 1 or bands < 1 or n_classes < 1:
        raise ValueError(
            f"base_filters, bands and n_classes must be >= 1, got "
            f"base_filters={base_filters!r}, bands={bands!r}, n_classes={n_classes!r}"
        )
    factor = 2**pools
    for name, size in (("height", height), ("width", width)):
        if size < factor or size % factor:
            raise ValueError(
                f"{name}={size!r} must be a positive multiple of 2**pools={factor} "
                f"(pools={pools}) so that every max-pool halves it exactly"
            )

    init_index = 0

    def next_init() -> keras.initializers.Initializer:
        nonlocal init_index
        init_index += 1
        return _kernel_init(af, _derived_seed(seed, init_index))

    conv_index = 0

    def conv_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
        nonlocal conv_index
        conv_index += 1
        i = conv_index
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=True,
            kernel_initializer=next_init(),
            bias_initializer="zeros",
            name=f"cnv_{i}",
        )(x)
        # momentum 0.9, not Keras's 0.99: the moving statistics must keep up within the few
        # hundred steps of a small dataset, or validation (inference-mode BN) lags training.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{i}")(x)
        return keras.layers.Activation(af, name=f"act_{i}")(x)

    inputs = keras.Input(shape=(height, width, bands), name="input")
    x = inputs
    skips: list[keras.KerasTensor] = []
    for level in range(pools):
        filters = base_filters * 2**level
        x = conv_block(x, filters)
        x = conv_block(x, filters)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool_{level + 1}")(x)

    x = conv_block(x, base_filters * factor)
    x = conv_block(x, base_filters * factor)

    for l, level in enumerate(reversed(range(pools)), start=1):
        filters = base_filters * 2**level
        up = keras.layers.Conv2DTranspose(
            filters,
            2,
            strides=2,
            padding="valid",
            use_bias=True,
            kernel_initializer=next_init(),
            bias_initializer="zeros",
            name=f"tcnv_{l}",
        )(x)
        x = keras.layers.Concatenate(axis=-1, name=f"cat_{l}")([skips[level], up])
        x = conv_block(x, filters)
        x = conv_block(x, filters)

    logits = keras.layers.Conv2D(
        n_classes,
        1,
        padding="same",
        use_bias=True,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=_derived_seed(seed, init_index + 1)
        ),
        bias_initializer="zeros",
        name="cnv_out",
    )(x)
    outputs = keras.layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(inputs, outputs, name=f"unet_{af}")


@dataclass(frozen=True)
class Complexity:
    """Size and cost of a model: all weights, and 2 x the convolutions' MACs."""

    params: int
    flops: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _iter_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    # Nested functional models count through their own layers.
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _iter_layers(layer)
        else:
            yield layer


def complexity(model: keras.Model) -> Complexity:
    """Parameters and FLOPs of ``model``, computed from the graph without data.

    ``params`` counts every weight, trainable or not (BN moving statistics
    included), i.e. what is stored. ``flops`` is 2 x the multiply-accumulates of
    Conv2D (``H_out * W_out * kh * kw * C_in / groups * C_out``) and
    Conv2DTranspose (``H_in * W_in * kh * kw * C_in * C_out``) layers only:
    bias adds, BatchNorm, activations, pooling and concatenation are left out,
    which is why the paper-size model gives 34.53 GFLOPs against the paper's
    34.59-34.60 GOPS (the ~0.06 G gap is about the size of the bias, BN and activation
    element-wise ops: ~19 M activations x a few ops each). Works for any filter counts, hence on
    pruned models rebuilt with ``Model.from_config``.
    """
    return Complexity(params=int(model.count_params()),
                      flops=sum(conv_flops(layer) for layer in _iter_layers(model)))


def predict_classes(model: keras.Model, x: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Arg-max class map ``(N, H, W)`` as uint8.

    Calls the model directly in inference mode, batch by batch, instead of
    ``model.predict``, which adds a progress bar, callbacks and a tf.data
    pipeline per call -- overhead that dominates when this runs thousands of
    times (fault injection). Arg-max is numpy's: ties and NaN go to the first
    maximal (or first NaN) class.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, H, W, bands), got shape {x.shape}")
    out: list[np.ndarray] = []
    for start in range(0, x.shape[0], batch_size):
        probs = keras.ops.convert_to_numpy(
            model(x[start : start + batch_size].astype(np.float32, copy=False), training=False)
        )
        if probs.shape[-1] > 256:
            raise ValueError(f"{probs.shape[-1]} classes do not fit in uint8")
        out.append(np.argmax(probs, axis=-1).astype(np.uint8))
    if not out:
        return np.zeros((0, *x.shape[1:3]), dtype=np.uint8)
    return np.concatenate(out, axis=0)
