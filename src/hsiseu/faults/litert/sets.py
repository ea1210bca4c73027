"""Parameter sets of an int8 ``.tflite`` model, found from its own graph.

The paper injects into the stored integers only (Section III-C): ``q_w`` (int8 weights, bits
0..7) and ``q_b`` (int32 biases, bits 0..31, two's complement); scales and zero points are not
parameter sets. They are found by walking the flatbuffer's operators: the filter and bias inputs
of every CONV_2D / TRANSPOSE_CONV (and DEPTHWISE_CONV_2D / FULLY_CONNECTED, should a model have
them), never by hand-written tensor indices. Other constant operands (hard sigmoid's 1/6 MUL
constant, ...) are listed by :func:`other_constants` and injected only on request; shape operands
(TRANSPOSE_CONV's output shape) are never parameters.

Names follow the float model's layers (``cnv_3/kernel``, ``cnv_3/bias``), so the int8 figures line
up with the float ones: the layer is read from the filter tensor's name, which the converter builds
from the Keras name scope (``unet_relu_b1_1/unet_relu_1/cnv_3_1/convolution``). TensorFlow makes
scopes unique by appending ``_<k>`` to every scope of a traced function; that suffix is removed only
when every scope of the path carries the same one, so a layer really named ``conv_1`` survives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hsiseu.faults.paramsets import ParameterSet
from hsiseu.quantization.graph import OpInfo, operators, tensor_data

__all__ = ["TensorSet", "WEIGHT_INPUTS", "SHAPE_INPUTS", "int8_parameter_sets", "other_constants", "tensor_values"]

#: op -> (filter input, bias input) positions: the parameter tensors of the paper's Eq. (2).
WEIGHT_INPUTS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
}
#: op -> input positions that hold shapes, not numbers of the model.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {"TRANSPOSE_CONV": (0,), "RESHAPE": (1,), "RESIZE_BILINEAR": (1,),
                                            "RESIZE_NEAREST_NEIGHBOR": (1,), "PAD": (1,), "MEAN": (1,)}
_SCOPE_OPS = ("convolution", "conv_transpose", "Conv2D", "BiasAdd", "MatMul", "depthwise", "Conv2DBackpropInput")
_DTYPES = {"INT8": "int8", "INT32": "int32", "INT16": "int16", "UINT8": "uint8", "FLOAT32": "float32"}


@dataclass(frozen=True)
class TensorSet:
    """A parameter set (plain data, :class:`ParameterSet`) and where it lives in the graph:
    its tensor index and the operators that read it (in execution order)."""

    pset: ParameterSet
    tensor: int
    consumers: tuple[int, ...]


def _scope(name: str) -> list[str] | None:
    """The name-scope components of the layer a (possibly fused, ``;``-joined) tensor name
    comes from, or None when no piece names a convolution scope."""
    for piece in name.split(";"):
        parts = [p for p in piece.split("/") if p]
        for k in range(len(parts) - 1, 0, -1):
            if parts[k].startswith(_SCOPE_OPS):
                return parts[:k]
    return None


def _uniquifier(scopes: list[list[str]]) -> str:
    """TensorFlow's ``_<k>`` scope suffix when every component of every scope ends in the same
    one (then it is not part of the layer names), else ``""``."""
    suffixes = {m.group(0) if (m := re.search(r"_\d+$", c)) else None for s in scopes for c in s}
    if len(suffixes) == 1 and None not in suffixes and all(len(s) > 1 for s in scopes):
        return str(next(iter(suffixes)))
    return ""


def _strip(component: str, suffix: str) -> str:
    return component[: -len(suffix)] if suffix and component.endswith(suffix) else component


def _layer_names(model_bytes: bytes | bytearray, ops: Sequence[OpInfo]) -> tuple[dict[int, str], str]:
    """Float layer name of every weight op (``op<j>_<type>`` where the tensor names say
    nothing), and the uniquifier suffix found."""
    graph = schema.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
    found: dict[int, list[str]] = {}
    for op in ops:
        if op.name in WEIGHT_INPUTS:
            filt = op.inputs[WEIGHT_INPUTS[op.name][0]]
            scope = _scope(graph.Tensors(filt).Name().decode())
            if scope:
                found[op.index] = scope
    suffix = _uniquifier(list(found.values()))
    out = {op.index: _strip(found[op.index][-1], suffix) if op.index in found else f"op{op.index}_{op.name.lower()}"
           for op in ops if op.name in WEIGHT_INPUTS}
    counts: dict[str, int] = {}
    for name in out.values():
        counts[name] = counts.get(name, 0) + 1
    return {j: (f"{n}_op{j}" if counts[n] > 1 else n) for j, n in out.items()}, suffix


def _tensor_meta(graph, index: int) -> tuple[tuple[int, ...], str]:
    t = graph.Tensors(index)
    type_name = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}[t.Type()]
    if type_name not in _DTYPES:
        raise ValueError(f"tensor {index} ({t.Name().decode()!r}) has type {type_name}, not injectable")
    return tuple(int(d) for d in t.ShapeAsNumpy()), _DTYPES[type_name]


def _consumers(ops: Sequence[OpInfo]) -> dict[int, tuple[int, ...]]:
    users: dict[int, list[int]] = {}
    for op in ops:
        for i in op.inputs:
            if i >= 0 and op.index not in users.setdefault(i, []):
                users[i].append(op.index)
    return {t: tuple(js) for t, js in users.items()}


def _is_constant(model_bytes: bytes | bytearray, graph, index: int) -> bool:
    buf = schema.Model.GetRootAs(model_bytes, 0).Buffers(graph.Tensors(index).Buffer())
    return buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)


def int8_parameter_sets(model_bytes: bytes | bytearray, *, include_other_constants: bool = False) -> list[TensorSet]:
    """The filter and bias tensors of every weight op, in execution order (kernel then bias);
    with ``include_other_constants`` the other constant operands follow, in graph order."""
    ops = operators(model_bytes)
    graph = schema.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
    names, _ = _layer_names(model_bytes, ops)
    users = _consumers(ops)
    sets: list[TensorSet] = []
    seen: set[int] = set()
    for op in ops:
        if op.name not in WEIGHT_INPUTS:
            continue
        for role, pos in zip(("kernel", "bias"), WEIGHT_INPUTS[op.name]):
            if pos >= len(op.inputs) or op.inputs[pos] < 0:
                continue  # e.g. a TRANSPOSE_CONV whose all-zero bias the converter dropped
            index = op.inputs[pos]
            if index in seen:
                raise ValueError(f"tensor {index} is the {role} of more than one operator; its buffer is shared")
            seen.add(index)
            shape, dtype = _tensor_meta(graph, index)
            layer = names[op.index]
            sets.append(TensorSet(ParameterSet(f"{layer}/{role}", role, layer, shape, dtype), index, users[index]))
    if include_other_constants:
        sets.extend(other_constants(model_bytes, exclude=seen))
    return sets


def other_constants(model_bytes: bytes | bytearray, *, exclude: set[int] | None = None) -> list[TensorSet]:
    """Constant operands that are neither weights/biases of a weight op nor shape operands
    (e.g. hard sigmoid's MUL by 1/6), named ``<consumer output layer>/<op>_const``."""
    ops = operators(model_bytes)
    graph = schema.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
    if exclude is None:
        exclude = {t.tensor for t in int8_parameter_sets(model_bytes)}
    _, suffix = _layer_names(model_bytes, ops)
    users = _consumers(ops)
    out: list[TensorSet] = []
    taken: set[str] = set()
    for op in ops:
        for pos, index in enumerate(op.inputs):
            if index < 0 or index in exclude or pos in SHAPE_INPUTS.get(op.name, ()):
                continue
            if any(out_t.tensor == index for out_t in out) or not _is_constant(model_bytes, graph, index):
                continue
            parts = [p for p in op.output_name.split(";")[0].split("/") if p]
            base = _strip(parts[-2], suffix) if len(parts) > 1 else f"op{op.index}"
            name = f"{base}/{op.name.lower()}_const"
            if name in taken:
                name = f"{base}/{op.name.lower()}_const_t{index}"
            taken.add(name)
            shape, dtype = _tensor_meta(graph, index)
            out.append(TensorSet(ParameterSet(name, "constant", base, shape, dtype), index, users[index]))
    return out


def tensor_values(model_bytes: bytes | bytearray, index: int) -> np.ndarray:
    """A copy of a constant tensor's stored integers, flat (C order of its shape)."""
    return tensor_data(bytearray(model_bytes), index).reshape(-1).copy()
