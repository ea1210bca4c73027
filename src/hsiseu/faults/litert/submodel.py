"""A slice of an int8 model's graph as a model of its own: the delayed start of the int8 engine.

``submodel(content, start, stop, batch)`` keeps operators ``start..stop-1`` of subgraph 0 (same
tensors, same buffers, same kernels), makes every activation they read from outside the slice a
graph input and ``outputs`` (default: the tensors the rest of the graph, or the model's caller,
reads from the slice) its outputs. ``batch`` resizes the batch axis: the constant output shape
of a TRANSPOSE_CONV is patched to it, the rest follows at prepare time. Integer kernels compute
each batch element independently and exactly, so a slice run on cached fault-free activations
gives the same bits as the whole model; the int8 engine's tests check that against the
interpreter on the full model.
"""

from __future__ import annotations

from collections.abc import Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hsiseu.quantization.graph import OpInfo, operators

__all__ = ["Slice", "constant_tensors", "slice_io", "submodel"]

_SHAPE_OPERAND = {"TRANSPOSE_CONV": 0}


class Slice:
    """Inputs and outputs (tensor indices) of the operator range ``[start, stop)``."""

    def __init__(self, ops: Sequence[OpInfo], start: int, stop: int, graph_outputs: Sequence[int],
                 constants: set[int], outputs: Sequence[int] | None = None) -> None:
        if not 0 <= start < stop <= len(ops):
            raise ValueError(f"operator range [{start}, {stop}) outside 0..{len(ops)}")
        inside = ops[start:stop]
        produced = {t for op in inside for t in op.outputs}
        self.start, self.stop = start, stop
        self.inputs: list[int] = []
        for op in inside:
            for t in op.inputs:
                if t >= 0 and t not in produced and t not in constants and t not in self.inputs:
                    self.inputs.append(t)
        if outputs is None:
            later = {t for op in ops[stop:] for t in op.inputs}
            outputs = [t for op in inside for t in op.outputs if t in later or t in graph_outputs]
        self.outputs: list[int] = list(outputs)


def constant_tensors(content: bytes | bytearray) -> set[int]:
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    out = set()
    for i in range(graph.TensorsLength()):
        buf = model.Buffers(graph.Tensors(i).Buffer())
        if buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1):
            out.add(i)
    return out


def slice_io(content: bytes | bytearray, start: int, stop: int, outputs: Sequence[int] | None = None) -> Slice:
    ops = operators(content)
    graph = schema.Model.GetRootAs(content, 0).Subgraphs(0)
    return Slice(ops, start, stop, [int(t) for t in graph.OutputsAsNumpy()], constant_tensors(content), outputs)


def submodel(content: bytes | bytearray, start: int, stop: int, *, batch: int = 1,
             outputs: Sequence[int] | None = None) -> tuple[bytes, Slice]:
    """The bytes of the model made of operators ``[start, stop)``, and its inputs/outputs."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    io = slice_io(content, start, stop, outputs)
    ops = operators(content)
    model = schema.ModelT.InitFromPackedBuf(bytes(content), 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[start:stop]
    graph.inputs = np.asarray(io.inputs, dtype=np.int32)
    graph.outputs = np.asarray(io.outputs, dtype=np.int32)
    model.signatureDefs = []
    for tensor in graph.tensors:
        if tensor.shape is not None and len(tensor.shape) == 4 and model.buffers[tensor.buffer].data is None:
            tensor.shape = np.asarray([batch, *tensor.shape[1:]], dtype=np.int32)
            tensor.shapeSignature = None
    for op in ops[start:stop]:
        pos = _SHAPE_OPERAND.get(op.name)
        if pos is not None:
            buf = model.buffers[graph.tensors[op.inputs[pos]].buffer]
            shape = np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=np.int32).copy()
            shape[0] = batch
            buf.data = np.frombuffer(shape.tobytes(), dtype=np.uint8).copy()
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), io
