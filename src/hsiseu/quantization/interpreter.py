"""The one way an int8 model is run: LiteRT's kernels as the config's ``quantization.kernels`` names.

Two kernel sets compute LiteRT's int8 operators, and they round differently (requantization by
one LSB here and there, so error rates differ by hundredths of a point): ``xnnpack``, what
``Interpreter(model_content=...)`` gives by default (the XNNPACK delegate over the builtin
kernels), and ``builtin``, the builtin kernels alone
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``). Which of them is "the int8 model" is
chosen once, in the config, and every interpreter (evaluation, bias correction, throughput,
fault injection) is built here with that choice, so that fault-free and faulty class maps always
come from the same kernels. XNNPACK packs the weights when the interpreter is built, so an edit
of the live tensors never reaches it: code that edits parameters edits the bytes and builds anew.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

__all__ = ["KERNELS", "KERNEL_LABELS", "DEFAULT_KERNELS", "all_cores", "check_kernels", "dequantize", "kernels_of", "make_interpreter",
           "packs_weights", "quantize_input", "tflite_predictor"]

#: The config's ``quantization.kernels`` -> LiteRT's resolver. ``AUTO`` is the interpreter's own
#: default: builtin kernels with the default (XNNPACK) delegate.
KERNELS: dict[str, OpResolverType] = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}
#: How the tables and figures name each choice.
KERNEL_LABELS: dict[str, str] = {
    "xnnpack": "LiteRT's default kernels (XNNPACK delegate)",
    "builtin": "LiteRT's builtin kernels without the default XNNPACK delegate",
}
#: What a LiteRT user gets without choosing.
DEFAULT_KERNELS = "xnnpack"


def check_kernels(kernels: str) -> str:
    if kernels not in KERNELS:
        raise ValueError(f"quantization.kernels must be one of {sorted(KERNELS)}, got {kernels!r}")
    return kernels


def kernels_of(records: Mapping[str, Mapping[str, Any]]) -> str:
    """The one kernel choice behind several models' records (``kernels`` key): a table mixing
    kernels would compare rounding, not models."""
    found = {str(r.get("kernels")) for r in records.values()}
    if len(found) != 1:
        raise ValueError("int8 records were made with different kernels: "
                         + ", ".join(f"{k}: {r.get('kernels')}" for k, r in records.items())
                         + " (re-run them with one quantization.kernels)")
    return check_kernels(found.pop())


def packs_weights(kernels: str) -> bool:
    """Whether these kernels copy the constant tensors when the interpreter is built (then a
    flip of a live tensor never reaches them; only a rebuild from flipped bytes does)."""
    return check_kernels(kernels) == "xnnpack"


def all_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_interpreter(
    model: bytes | bytearray | str | os.PathLike[str],
    *,
    kernels: str,
    num_threads: int = 1,
    preserve_all_tensors: bool = False,
) -> Interpreter:
    """An allocated interpreter for a ``.tflite`` file or its bytes.

    Built from the bytes (``model_content``) even for a path, so that a caller that edits the
    bytes (fault injection) gets exactly the same construction as one that does not.
    ``preserve_all_tensors`` keeps intermediate activations readable, with the builtin kernels
    only: inside the XNNPACK delegate they are never written back (read a slice's outputs
    instead, :func:`hsiseu.quantization.slices.submodel`).
    """
    check_kernels(kernels)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .tflite model")
        content = path.read_bytes()
    else:
        content = bytes(model)
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    interp = Interpreter(
        model_content=content,
        num_threads=int(num_threads),
        experimental_op_resolver_type=KERNELS[kernels],
        experimental_preserve_all_tensors=preserve_all_tensors,
    )
    interp.allocate_tensors()
    return interp


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input -> the model's int8 input (round to nearest, saturate), as the converter's
    own QUANTIZE op would do it."""
    scale, zero = detail["quantization"]
    if detail["dtype"] != np.int8:
        raise ValueError(f"model input {detail['name']!r} is {detail['dtype']}, not int8")
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """Int8 tensor -> real values, per tensor or per channel (last axis)."""
    params = detail["quantization_parameters"]
    scales, zeros = params["scales"], params["zero_points"]
    if scales.size == 0:
        return np.asarray(q, dtype=np.float32)
    if scales.size > 1:
        axis = params["quantized_dimension"]
        shape = [1] * q.ndim
        shape[axis] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((q.astype(np.float32) - zeros) * scales).astype(np.float32)


def tflite_predictor(interp: Interpreter):
    """Class map (N, H, W) uint8 of an int8 segmentation model for float inputs (N, H, W, B).

    Images go one at a time when the model's batch is fixed at 1 (how ``convert`` builds it).
    Arg-max runs on the int8 softmax output: equal quantized probabilities go to the first class,
    as numpy's arg-max does for the float models.
    """
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    batch = int(inp["shape"][0])

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(inp["shape"][1:]):
            raise ValueError(f"input shape {x.shape} does not match the model's {tuple(inp['shape'])}")
        maps = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            if len(chunk) != batch:
                raise ValueError(f"{len(x)} images do not split into batches of {batch}")
            interp.set_tensor(inp["index"], quantize_input(chunk, inp))
            interp.invoke()
            maps.append(np.argmax(interp.get_tensor(out["index"]), axis=-1).astype(np.uint8))
        if not maps:
            return np.zeros((0, *x.shape[1:3]), dtype=np.uint8)
        return np.concatenate(maps, axis=0)

    return predict
