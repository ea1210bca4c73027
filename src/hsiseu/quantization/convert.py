"""Full-integer post-training quantization with the TFLite converter.

The recipe (DESIGN.md): ``Optimize.DEFAULT``, a representative dataset for the activation ranges,
``TFLITE_BUILTINS_INT8`` as the only op set (an op without an int8 kernel then fails the
conversion instead of silently staying float), int8 input and output. Weights come out int8
per output channel (OHWI), biases int32 with scale = input scale x weight scale, as in the
paper's Eq. (2). BatchNorm is folded into the convolutions by the converter.

The batch dimension is fixed at 1, as on the deployment target: with a dynamic batch the converter
adds SHAPE / STRIDED_SLICE / PACK ops to compute TRANSPOSE_CONV's output shape at run time; with a
fixed one that shape is a constant and the graph holds only the network's own operators.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from hsiseu.quantization.graph import NotIntegerOnlyError, check_integer_only, unshare_buffers

log = logging.getLogger(__name__)

__all__ = ["QuantizationError", "convert_float", "quantize_int8", "representative_samples"]


class QuantizationError(RuntimeError):
    """The converter could not produce a full-integer model; the message says why."""


def _fixed_batch(model, batch: int):
    """The same layers (shared weights) behind an input whose batch size is fixed."""
    import keras

    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"model input shape {model.inputs[0].shape} must be static apart from the batch")
    inp = keras.Input(batch_shape=(batch, *shape), name="input")
    return keras.Model(inp, model(inp), name=f"{model.name}_b{batch}")


def _check_samples(samples: np.ndarray, model) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    want = tuple(model.inputs[0].shape[1:])
    if samples.ndim != 4 or samples.shape[0] == 0:
        raise ValueError(
            f"representative data must be a non-empty (N, H, W, bands) array, got shape {samples.shape}: "
            "full-integer quantization needs calibration images to fix the activation ranges"
        )
    if tuple(samples.shape[1:]) != want:
        raise ValueError(f"representative images have shape {samples.shape[1:]}, the model expects {want}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("representative data contains NaN or Inf")
    return samples


def quantize_int8(model, representative: np.ndarray, *, batch: int = 1, unshare: bool = True) -> bytes:
    """A full-int8 ``.tflite`` of a Keras model, checked integer-only, one buffer per constant.

    ``representative`` is (N, H, W, bands) float32 calibration images (the training split's).
    ``unshare=False`` returns the converter's own bytes, where equal constants share a buffer.
    """
    import tensorflow as tf

    samples = _check_samples(representative, model)

    def dataset() -> Iterable[list[np.ndarray]]:
        for i in range(0, len(samples) - batch + 1, batch):
            yield [samples[i : i + batch]]

    converter = tf.lite.TFLiteConverter.from_keras_model(_fixed_batch(model, batch))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        content = converter.convert()
    except Exception as err:  # the converter raises ConverterError / RuntimeError with MLIR text
        text = str(err).strip().splitlines()
        detail = next((line for line in text if "op" in line.lower() and "quantiz" in line.lower()), text[0] if text else "")
        raise QuantizationError(
            f"full-integer conversion of {model.name!r} failed (an op without an int8 kernel?): {detail}"
        ) from err
    try:
        check_integer_only(content)
    except NotIntegerOnlyError as err:
        raise NotIntegerOnlyError(f"full-integer conversion of {model.name!r} left float ops behind: {err}") from None
    # Each parameter tensor gets its own buffer, so that editing one (bias correction, a bit flip)
    # never edits another that the converter deduplicated into the same bytes.
    return unshare_buffers(content) if unshare else content


def convert_float(model, *, batch: int = 1) -> bytes:
    """The float32 ``.tflite`` of the same model, same fusions and tensor names as the int8 one:
    the layer-by-layer reference for bias correction."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(_fixed_batch(model, batch))
    return converter.convert()


def representative_samples(config: Mapping[str, Any], n: int, seed: int) -> np.ndarray:
    """``n`` training images drawn with a seeded shuffle (all of them if the split is smaller)."""
    from hsiseu import data as hdata
    from hsiseu import settings

    if n < 1:
        raise ValueError(f"quantization.representative_samples must be >= 1, got {n}")
    ds = hdata.make_dataset(
        config["data"]["root"], "training", batch_size=1, shuffle=True, seed=seed, **settings.data_kwargs(config)
    )
    images = [np.asarray(x)[0] for x, _ in ds.take(n)]
    if not images:
        raise ValueError(f"{config['data']['root']}: the training split has no images for calibration")
    if len(images) < n:
        log.warning("only %d training images for %d representative samples", len(images), n)
    return np.stack(images).astype(np.float32)
