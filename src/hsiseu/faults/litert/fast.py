"""The int8 fast engine: the reference engine's outcomes, bit for bit, without rebuilding the model.

The fault reaches LiteRT's own kernels; nothing is re-implemented. What is saved:

1. **In-place flips.** The bit is flipped in the live interpreter's tensor buffer (builtin
   kernels read weights and biases at every invoke) and flipped back afterwards. TRANSPOSE_CONV
   transposes its constant weights once at prepare, so a flip of those weights rebuilds the
   interpreter of that one operator from flipped bytes instead (:data:`CACHED_AT_PREPARE`).
2. **Delayed start.** The fault-free activations of every tensor are cached once. A fault in a
   weight or bias of operator j runs a model made of operator j alone (:mod:`.submodel`)
   on the cached inputs, all test images as one batch.
3. **Fault dropping.** When operator j's faulty output equals the fault-free one (int8
   saturation and rounding hide the flip), the fault changes nothing: done.
4. **Memo.** Otherwise the faulty output goes on to a model of operators j+1.., whose other
   inputs (skip connections) come from the cache; faults whose faulty output of operator j is
   bitwise equal (e.g. a channel saturated by a high bias bit) share one downstream run.

No batching of faults: LiteRT's builtin kernels cost more per image at a larger batch on this
CPU (measured: +28 % per image at 16 x 8 images), so grouping faults along the batch axis only
lost time. Under-used shortcuts are measured, not assumed: ``stats`` counts them.

Sets read by several operators (e.g. hard sigmoid's shared MUL constant, when injected) and the
``inplace`` mode use a model of operators first-consumer.. instead (steps 1 and 2 only). Integer
kernels are exact and process batch elements independently, which is why slices (with all test
images as one batch) give the whole model's bits; the tests check it against
:class:`~.reference.ReferenceEngine`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.litert.execution import activation_cache, flip_in_place, quantized_images, set_inputs
from hsiseu.faults.litert.reference import flipped_model
from hsiseu.faults.litert.sets import TensorSet
from hsiseu.faults.litert.submodel import Slice, constant_tensors, submodel
from hsiseu.faults.outcomes import Prediction, classes_from_scores
from hsiseu.faults.shared import UNCHANGED, Memo, check_fault_sets, prediction_from_scores
from hsiseu.quantization.graph import operators
from hsiseu.quantization.interpreter import make_interpreter

__all__ = ["FastEngine", "MODES", "CACHED_AT_PREPARE"]

MODES = ("fast", "inplace")
#: (operator, input position) whose constant a builtin kernel copies at prepare time, so that an
#: in-place edit never reaches it.
CACHED_AT_PREPARE = frozenset({("TRANSPOSE_CONV", 1)})


class _Part:
    """A live interpreter for a slice of the model, with its cached inputs set."""

    def __init__(self, content: bytes, io: Slice, interp) -> None:
        self.content, self.io, self.interp = content, io, interp


class FastEngine:
    def __init__(self, content: bytes, x: np.ndarray, sets: Sequence[TensorSet], *, mode: str = "fast",
                 memo_size: int = 1024) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown int8 engine mode {mode!r}; expected one of {MODES}")
        self.content = bytes(content)
        self.mode = mode
        self.ops = operators(self.content)
        self.sets = {s.pset.name: s for s in sets}
        full = make_interpreter(self.content)
        self.xq = quantized_images(full, x)
        self.n = len(self.xq)
        self.input_tensor = int(full.get_input_details()[0]["index"])
        consts = constant_tensors(self.content)
        activations = {t for op in self.ops for t in (*op.inputs, *op.outputs) if t >= 0} - consts
        self.cache = activation_cache(self.content, self.xq, activations)
        self.cache[self.input_tensor] = self.xq
        self.scores = self.cache[-1]
        self.classes = classes_from_scores(self.scores)
        self._heads: dict[int, _Part] = {}
        self._tails: Memo[_Part] = Memo(2)
        self._spans: Memo[_Part] = Memo(2)
        self._memo: Memo[Prediction] = Memo(memo_size)
        self.stats: Counter[str] = Counter()

    # --------------------------------------------------------------- slices

    def _part(self, start: int, stop: int, batch: int, outputs=None) -> _Part:
        content, io = submodel(self.content, start, stop, batch=batch, outputs=outputs)
        interp = make_interpreter(content)
        set_inputs(interp, {t: self.cache[t] for t in io.inputs})
        self.stats["interpreters_built"] += 1
        return _Part(content, io, interp)

    def _head(self, j: int) -> _Part:
        if j not in self._heads:
            self._heads[j] = self._part(j, j + 1, self.n, outputs=list(self.ops[j].outputs))
        return self._heads[j]

    def _tail(self, j: int) -> _Part:
        return self._tails.get_or(j, lambda: self._part(j + 1, len(self.ops), self.n))

    def _span(self, j: int) -> _Part:
        return self._spans.get_or(j, lambda: self._part(j, len(self.ops), self.n))

    def _cached_at_prepare(self, s: TensorSet) -> bool:
        return any((self.ops[j].name, pos) in CACHED_AT_PREPARE
                   for j in s.consumers for pos, t in enumerate(self.ops[j].inputs) if t == s.tensor)

    def _invoke_faulty(self, part: _Part, s: TensorSet, fault: Fault) -> dict[int, np.ndarray]:
        """Run ``part`` with the fault in place and return its outputs (the fault is undone)."""
        if self._cached_at_prepare(s):
            interp = make_interpreter(flipped_model(part.content, s.tensor, fault.index, fault.bit))
            set_inputs(interp, {t: self.cache[t] for t in part.io.inputs})
            interp.invoke()
            self.stats["rebuilt"] += 1
            return {t: interp.get_tensor(t).copy() for t in part.io.outputs}
        flip_in_place(part.interp, s.tensor, fault.index, fault.bit)
        try:
            part.interp.invoke()
            return {t: part.interp.get_tensor(t).copy() for t in part.io.outputs}
        finally:
            flip_in_place(part.interp, s.tensor, fault.index, fault.bit)

    # --------------------------------------------------------------- running

    def _downstream(self, j: int, faulty: dict[int, np.ndarray]) -> Prediction:
        """The prediction for a faulty output of operator j."""
        if j == len(self.ops) - 1:  # the faulty operator produced the model output
            return prediction_from_scores(next(iter(faulty.values())))
        tail = self._tail(j)
        set_inputs(tail.interp, {t: v for t, v in faulty.items() if t in tail.io.inputs})
        tail.interp.invoke()
        self.stats["tail_runs"] += 1
        return prediction_from_scores(tail.interp.get_tensor(tail.io.outputs[0]))

    def _one(self, fault: Fault) -> Prediction:
        check_fault_sets((fault,), self.sets)
        s = self.sets[fault.set]
        if self.mode == "inplace" or len(s.consumers) != 1:
            part = self._span(s.consumers[0])
            out = self._invoke_faulty(part, s, fault)
            self.stats["span_runs"] += 1
            return prediction_from_scores(out[part.io.outputs[0]])
        j = s.consumers[0]
        out = self._invoke_faulty(self._head(j), s, fault)
        if all(np.array_equal(v, self.cache[t]) for t, v in out.items()):
            self.stats["dropped"] += 1
            return UNCHANGED
        key = (j, *(hashlib.sha1(v.tobytes()).hexdigest() for v in out.values()))
        hit = self._memo.get(key)
        if hit is not None:
            self.stats["memo_hits"] += 1
            return hit
        pred = self._downstream(j, out)
        self._memo.put(key, pred)
        return pred

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        for fault in faults:
            yield self._one(fault)
