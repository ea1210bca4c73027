"""What a ``.tflite`` flatbuffer holds: its operators, tensor types, and bias buffers.

Read straight from the flatbuffer (``ai_edge_litert.schema_py_generated``) rather than through an
interpreter, so that the check also works on a model an interpreter would refuse, and so that the
bias buffers can be edited in place (bias correction here, bit flips in the int8 fault backend).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "INTEGER_TYPES",
    "NotIntegerOnlyError",
    "OpInfo",
    "check_integer_only",
    "op_counts",
    "op_macs",
    "operators",
    "shared_buffers",
    "tensor_data",
    "tensor_scales",
    "unshare_buffers",
]

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
#: Tensor types allowed in an integer-only graph: int8 weights and activations, int32 biases
#: (and int32 shape operands such as TRANSPOSE_CONV's output shape).
INTEGER_TYPES = frozenset({"INT8", "INT32"})


class NotIntegerOnlyError(ValueError):
    """The converted graph still computes in floating point somewhere; the message says where."""


@dataclass(frozen=True)
class OpInfo:
    """One operator of subgraph 0, in execution order."""

    index: int
    name: str  # builtin operator name, e.g. CONV_2D, LOGISTIC
    inputs: tuple[int, ...]  # tensor indices, -1 = optional input absent
    outputs: tuple[int, ...]
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    output_name: str


def _model(model_bytes: bytes | bytearray) -> schema.Model:
    if not model_bytes or bytes(model_bytes[4:8]) != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (file identifier TFL3 missing)")
    return schema.Model.GetRootAs(model_bytes, 0)


def _op_name(model: schema.Model, opcode_index: int) -> str:
    code = model.OperatorCodes(opcode_index)
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.CustomCode().decode()}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def operators(model_bytes: bytes | bytearray) -> list[OpInfo]:
    """The operators of the main subgraph in execution order, with their tensors' types."""
    model = _model(model_bytes)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"expected one subgraph, found {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)

    def ttype(i: int) -> str:
        return "ABSENT" if i < 0 else _TYPE_NAMES.get(graph.Tensors(i).Type(), "UNKNOWN")

    out = []
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        ins = tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(i) for i in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        out.append(
            OpInfo(
                index=j,
                name=_op_name(model, op.OpcodeIndex()),
                inputs=ins,
                outputs=outs,
                input_types=tuple(ttype(i) for i in ins),
                output_types=tuple(ttype(i) for i in outs),
                output_name=graph.Tensors(outs[0]).Name().decode() if outs else "",
            )
        )
    return out


def op_counts(model_bytes: bytes | bytearray) -> dict[str, int]:
    """Operator name -> how many times it occurs (the "op list" recorded per model)."""
    return dict(sorted(Counter(op.name for op in operators(model_bytes)).items()))


#: Operator -> (filter input, the tensor whose positions the filter slides over): MACs per
#: image = positions x filter size (OHWI for convolutions; one row per output for FULLY_CONNECTED).
_MAC_OPERANDS = {"CONV_2D": (1, "output"), "DEPTHWISE_CONV_2D": (1, "output"),
                 "TRANSPOSE_CONV": (1, "input"), "FULLY_CONNECTED": (1, "rows")}


def op_macs(model_bytes: bytes | bytearray) -> list[int]:
    """Multiply-accumulates per image of every operator (0 for those without weights), read from
    the tensor shapes: what an exact engine must recompute, by operator."""
    graph = _model(model_bytes).Subgraphs(0)

    def shape(t: int) -> list[int]:
        return [int(d) for d in graph.Tensors(t).ShapeAsNumpy()]

    out = []
    for op in operators(model_bytes):
        if op.name not in _MAC_OPERANDS:
            out.append(0)
            continue
        pos, over = _MAC_OPERANDS[op.name]
        filt = shape(op.inputs[pos])
        if op.name == "DEPTHWISE_CONV_2D":
            size = int(np.prod(filt[1:3]))  # one filter window per output element
            positions = int(np.prod(shape(op.outputs[0])[1:]))
        elif over == "rows":
            size, positions = int(np.prod(filt)), 1
        else:
            data = shape(op.outputs[0] if over == "output" else op.inputs[2])
            size, positions = int(np.prod(filt)), int(np.prod(data[1:3]))
        out.append(size * positions)
    return out


def check_integer_only(model_bytes: bytes | bytearray) -> None:
    """Raise :class:`NotIntegerOnlyError` unless every tensor an operator touches is int8/int32.

    This is what "fully int8" means for the DPU and for the int8 fault model: no DEQUANTIZE back
    to float, no float kernel left behind (an op without an int8 kernel), int8 graph input and
    output, int8 weights and int32 biases.
    """
    model = _model(model_bytes)
    graph = model.Subgraphs(0)
    problems = []
    for op in operators(model_bytes):
        types = set(op.input_types + op.output_types) - {"ABSENT"}
        if not types <= INTEGER_TYPES or op.name in {"DEQUANTIZE"}:
            problems.append(f"{op.name} (op {op.index}, output {op.output_name!r}) uses {sorted(types)}")
    for kind, indices in (("input", graph.InputsAsNumpy()), ("output", graph.OutputsAsNumpy())):
        for i in indices:
            t = _TYPE_NAMES.get(graph.Tensors(int(i)).Type())
            if t != "INT8":
                problems.append(f"graph {kind} {graph.Tensors(int(i)).Name().decode()!r} is {t}, not INT8")
    if problems:
        raise NotIntegerOnlyError(
            "the model is not integer-only; " + "; ".join(problems[:10])
            + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        )


def tensor_data(model_bytes: bytearray, tensor_index: int) -> np.ndarray:
    """A writable numpy view of a constant tensor's buffer inside ``model_bytes`` (a bytearray),
    typed and shaped as the tensor; editing it edits the model."""
    if not isinstance(model_bytes, bytearray):
        raise TypeError("tensor_data needs a bytearray so that the view is writable")
    model = _model(model_bytes)
    tensor = model.Subgraphs(0).Tensors(tensor_index)
    buffer = model.Buffers(tensor.Buffer())
    if buffer.Offset() > 1:
        raise ValueError(f"tensor {tensor_index} lives outside the flatbuffer (offset buffer)")
    raw = buffer.DataAsNumpy()
    if isinstance(raw, int):  # flatbuffers returns 0 for an empty vector
        raise ValueError(f"tensor {tensor_index} ({tensor.Name().decode()!r}) has no constant data")
    dtype = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32}[_TYPE_NAMES[tensor.Type()]]
    return raw.view(dtype).reshape(tensor.ShapeAsNumpy())


def tensor_scales(model_bytes: bytes | bytearray, tensor_index: int) -> np.ndarray:
    """The quantization scale(s) of a tensor (one per channel for per-channel tensors)."""
    q = _model(model_bytes).Subgraphs(0).Tensors(tensor_index).Quantization()
    if q is None or q.ScaleLength() == 0:
        raise ValueError(f"tensor {tensor_index} is not quantized")
    return q.ScaleAsNumpy().astype(np.float64)


def shared_buffers(model_bytes: bytes | bytearray) -> dict[int, list[int]]:
    """Buffers that hold the data of more than one constant tensor: buffer -> tensor indices.

    The converter stores equal constants once (e.g. the all-zero biases of an untrained model),
    so editing one such tensor in place would edit all of them.
    """
    graph = _model(model_bytes).Subgraphs(0)
    users: dict[int, list[int]] = {}
    for i in range(graph.TensorsLength()):
        b = graph.Tensors(i).Buffer()
        if b > 0:
            users.setdefault(b, []).append(i)
    return {b: ts for b, ts in users.items() if len(ts) > 1}


def unshare_buffers(model_bytes: bytes | bytearray) -> bytes:
    """The same model with one buffer per constant tensor, so that each parameter tensor can be
    edited (bias correction, bit flips) without touching another. Unchanged if nothing is shared."""
    import flatbuffers

    if not shared_buffers(model_bytes):
        return bytes(model_bytes)
    model = schema.ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    seen: set[int] = set()
    for tensor in model.subgraphs[0].tensors:
        b = tensor.buffer
        if b <= 0:
            continue
        if b in seen:
            copy = schema.BufferT()
            data = model.buffers[b].data
            copy.data = None if data is None else np.array(data, copy=True)
            model.buffers.append(copy)
            tensor.buffer = len(model.buffers) - 1
        seen.add(b)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    if shared_buffers(out):
        raise RuntimeError("unsharing the constant buffers failed")
    return out
