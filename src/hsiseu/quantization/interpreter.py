"""The one way an int8 model is run: LiteRT's builtin kernels, no default delegate.

``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` is used everywhere (evaluation, bias
correction, throughput, fault injection) because (DESIGN.md) the default XNNPACK delegate packs
the weights when the interpreter is built, so a weight edited afterwards never reaches it, and
XNNPACK and the reference kernels can differ by one LSB: fault-free and faulty runs must share
one execution path for their outcomes to be comparable bit for bit. The price is speed (XNNPACK
is faster); Table IV's LiteRT figures are for this resolver.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

__all__ = ["RESOLVER", "all_cores", "dequantize", "make_interpreter", "quantize_input", "tflite_predictor"]

RESOLVER = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def all_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_interpreter(
    model: bytes | bytearray | str | os.PathLike[str],
    *,
    num_threads: int = 1,
    preserve_all_tensors: bool = False,
) -> Interpreter:
    """An allocated interpreter for a ``.tflite`` file or its bytes.

    Built from the bytes (``model_content``) even for a path, so that a caller that edits the
    bytes (fault injection) gets exactly the same construction as one that does not.
    ``preserve_all_tensors`` keeps intermediate activations readable (bias correction).
    """
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
        experimental_op_resolver_type=RESOLVER,
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
