"""Which backend serves a stage, opened lazily: sampling, merging and figures never import
TensorFlow or LiteRT, and the protocol module (``backend``) imports no backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from hsiseu.faults.backend import Backend

__all__ = ["open_backend", "open_model", "BACKEND_OF_STAGE", "STAGE_OF_SUFFIX"]

#: Which backend package serves a stage.
BACKEND_OF_STAGE: dict[str, str] = {"original": "keras", "pruned": "keras", "quantized": "litert"}


def open_backend(
    stage: str, model_path: str | os.PathLike[str], x: np.ndarray, options: Mapping[str, Any]
) -> Backend:
    """The backend for ``stage``'s model file on test images ``x``; ``options`` is the config's
    ``faults`` section (engine, memory budget, BN moving statistics, int8 constants) and, for the
    int8 backend, ``kernels`` (the config's ``quantization.kernels``)."""
    kind = BACKEND_OF_STAGE.get(stage)
    if kind == "keras":
        from hsiseu.faults.keras.backend import KerasBackend

        return KerasBackend.from_file(
            model_path,
            x,
            engine=str(options.get("engine", "fast")),
            memory_mb=float(options.get("memory_mb", 32)),
            image_chunk=options.get("image_chunk"),
            include_moving_stats=bool(options.get("include_bn_moving_stats", False)),
        )
    if kind == "litert":
        from hsiseu.faults.litert.backend import TFLiteBackend

        from hsiseu.quantization.interpreter import DEFAULT_KERNELS

        return TFLiteBackend.from_file(
            model_path,
            x,
            kernels=str(options.get("kernels", DEFAULT_KERNELS)),
            engine=str(options.get("engine", "fast")),
            include_other_constants=bool(options.get("include_int8_constants", False)),
        )
    raise ValueError(
        f"no fault-injection backend for stage {stage!r} (known: {sorted(BACKEND_OF_STAGE)})"
    )


#: A stage whose backend serves a model file, by its suffix (models outside the pipeline).
STAGE_OF_SUFFIX: dict[str, str] = {".keras": "original", ".tflite": "quantized"}


def open_model(model_path: str | os.PathLike[str], x: np.ndarray, options: Mapping[str, Any]) -> Backend:
    """The backend for a model file of the user's, chosen by its suffix."""
    suffix = os.path.splitext(str(model_path))[1].lower()
    if suffix not in STAGE_OF_SUFFIX:
        raise ValueError(f"{model_path}: unknown model format {suffix!r} (known: {sorted(STAGE_OF_SUFFIX)})")
    return open_backend(STAGE_OF_SUFFIX[suffix], model_path, x, options)
