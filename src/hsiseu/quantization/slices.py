"""A slice of a ``.tflite`` graph as a model of its own.

``Slicer(content).submodel(start, stop, batch)`` keeps operators ``start..stop-1`` of subgraph 0 (same
tensors, same kernels, and only the constant buffers those operators read), makes every
activation they read from outside the slice a graph input and ``outputs`` (default: the tensors
the rest of the graph, or the model's caller, reads from the slice) its outputs. ``batch``
resizes the batch axis: the constant output shape of a TRANSPOSE_CONV is patched to it, the rest
follows at prepare time.

Why: a graph output is written back to a tensor the caller can read under any kernels, while
the intermediate tensors inside the XNNPACK delegate are not (bias correction reads a layer's
output this way); and LiteRT's int8 kernels compute each batch element independently and
exactly, so a slice run on fault-free activations gives the same bits as the whole model (the
int8 fault engine's delayed start, checked against the whole model where it is used). A slice
without the other operators' buffers is cheap to copy and to rebuild. The model is parsed once
per :class:`Slicer` (parsing and re-packing in Python is what a slice costs).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hsiseu.quantization.graph import OpInfo, operators

__all__ = ["Slice", "Slicer", "constant_tensors", "slice_io", "submodel"]

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


class Slicer:
    """Slices of one model, which is parsed once."""

    def __init__(self, content: bytes | bytearray) -> None:
        self.content = bytes(content)
        self.ops = operators(self.content)
        self.constants = constant_tensors(self.content)
        graph = schema.Model.GetRootAs(self.content, 0).Subgraphs(0)
        self.graph_outputs = [int(t) for t in graph.OutputsAsNumpy()]
        self._model = schema.ModelT.InitFromPackedBuf(self.content, 0)

    def io(self, start: int, stop: int, outputs: Sequence[int] | None = None) -> Slice:
        return Slice(self.ops, start, stop, self.graph_outputs, self.constants, outputs)

    def submodel(self, start: int, stop: int, *, batch: int = 1,
                 outputs: Sequence[int] | None = None) -> tuple[bytes, Slice]:
        """The bytes of the model made of operators ``[start, stop)``, and its inputs/outputs."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        io = self.io(start, stop, outputs)
        model = copy.copy(self._model)  # shallow: the parsed model is shared, edited parts are copies
        graph = copy.copy(model.subgraphs[0])
        model.subgraphs = [graph]
        model.signatureDefs = []
        graph.operators = graph.operators[start:stop]
        graph.inputs = np.asarray(io.inputs, dtype=np.int32)
        graph.outputs = np.asarray(io.outputs, dtype=np.int32)
        inside = self.ops[start:stop]
        used = {graph.tensors[t].buffer for op in inside for t in (*op.inputs, *op.outputs) if t >= 0}
        # only the buffers the slice reads, so that it is cheap to copy
        model.buffers = [b if i in used else schema.BufferT() for i, b in enumerate(model.buffers)]
        tensors = []
        for index, tensor in enumerate(graph.tensors):
            if tensor.shape is not None and len(tensor.shape) == 4 and index not in self.constants:
                tensor = copy.copy(tensor)
                tensor.shape = np.asarray([batch, *tensor.shape[1:]], dtype=np.int32)
                tensor.shapeSignature = None
            tensors.append(tensor)
        graph.tensors = tensors
        for op in inside:
            pos = _SHAPE_OPERAND.get(op.name)
            if pos is not None:
                index = graph.tensors[op.inputs[pos]].buffer
                shape = np.frombuffer(bytes(np.asarray(model.buffers[index].data, dtype=np.uint8)), dtype=np.int32).copy()
                shape[0] = batch
                patched = schema.BufferT()
                patched.data = np.frombuffer(shape.tobytes(), dtype=np.uint8).copy()
                model.buffers[index] = patched
        builder = flatbuffers.Builder(4096 + sum(0 if b.data is None else len(b.data) for b in model.buffers))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output()), io


def slice_io(content: bytes | bytearray, start: int, stop: int, outputs: Sequence[int] | None = None) -> Slice:
    ops = operators(content)
    graph = schema.Model.GetRootAs(content, 0).Subgraphs(0)
    return Slice(ops, start, stop, [int(t) for t in graph.OutputsAsNumpy()], constant_tensors(content), outputs)


def submodel(content: bytes | bytearray, start: int, stop: int, *, batch: int = 1,
             outputs: Sequence[int] | None = None) -> tuple[bytes, Slice]:
    """One slice of a model (parsing it for this slice alone; see :class:`Slicer` for many)."""
    return Slicer(content).submodel(start, stop, batch=batch, outputs=outputs)
