"""The int8 fast engine: the naive rebuild loop's outcomes, bit for bit, with the same kernels.

The naive loop (:mod:`.reference`) copies the model bytes, flips the bit, builds an interpreter
and runs every test image through the whole model. The fault reaches LiteRT's own kernels here
too; nothing is re-implemented. What is saved:

1. **Delayed start.** The fault-free activations are computed once, operator by operator, each
   operator a model of its own (:class:`~.execution.Part`) over all test images as one batch.
   A fault in a weight or bias of operator j reruns operator j alone on those cached inputs.
2. **Only the faulty operator is rebuilt.** With kernels that pack the weights at build time
   (XNNPACK; and the builtin TRANSPOSE_CONV, which transposes its weights at prepare, see
   :data:`CACHED_AT_PREPARE`) the one-operator model is rebuilt from flipped bytes, a few
   kilobytes instead of the whole model. With kernels that read the weights at every invoke
   (builtin), the bit is flipped in the live interpreter and flipped back.
3. **Fault dropping.** When operator j's faulty output equals the fault-free one bit for bit
   (int8 saturation and rounding hide the flip), the fault changes nothing: done.
4. **Memo.** Faults whose faulty output of operator j is bitwise equal (e.g. a channel saturated
   by a high bias bit) share one downstream run.
5. **The downstream is built once per faulty operator** (its weights are unchanged): a model of
   operators j+1.. whose other inputs (skip connections) come from the cache.

Not done, because it measured no faster on this CPU: batching faults along the batch axis. The
downstream of operator 1 of the default pruned ReLU model costs 1.92 / 1.94 / 1.94 ms per image
with XNNPACK at 2 / 8 / 32 images per invoke, and 4.44 / 4.35 / 4.49 ms with the builtin kernels.
And not done because it would save about 1 % of the operators on the same model: running only
the downstream operators whose inputs changed.

Exactness rests on two facts, both checked when the engine is built rather than assumed: LiteRT's
int8 kernels compute each batch element independently and exactly, and a slice of the graph runs
the same kernels as the whole model. The operator-by-operator fault-free output must equal the
whole model's bit for bit, and every downstream model must reproduce the cache before it is used;
where either fails, the faults go to the naive loop (``stats['reference_faults']``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.litert.execution import Part, flip_in_place, full_run, quantized_images
from hsiseu.faults.litert.reference import ReferenceEngine
from hsiseu.faults.litert.sets import TensorSet
from hsiseu.faults.outcomes import Prediction, classes_from_scores
from hsiseu.faults.shared import UNCHANGED, Memo, check_fault_sets, prediction_from_scores, state_digest
from hsiseu.quantization.interpreter import make_interpreter, packs_weights
from hsiseu.quantization.slices import Slicer

log = logging.getLogger(__name__)

__all__ = ["FastEngine", "CACHED_AT_PREPARE"]

#: (operator, input position) whose constant a builtin kernel copies at prepare time, so that an
#: in-place edit never reaches it.
CACHED_AT_PREPARE = frozenset({("TRANSPOSE_CONV", 1)})


class FastEngine:
    def __init__(self, content: bytes, x: np.ndarray, sets: Sequence[TensorSet], *, kernels: str,
                 memo_size: int = 1024) -> None:
        self.content = bytes(content)
        self.kernels = kernels
        self._x = x
        self.slicer = Slicer(self.content)
        self.ops = self.slicer.ops
        self.sets = {s.pset.name: s for s in sets}
        full = make_interpreter(self.content, kernels=kernels)
        self.xq = quantized_images(full, x)
        self.n = len(self.xq)
        self.scores = full_run(full, self.xq)
        self.classes = classes_from_scores(self.scores)
        self.stats: Counter[str] = Counter()
        self.cache: dict[int, np.ndarray] = {int(full.get_input_details()[0]["index"]): self.xq}
        self._heads: list[Part] = []
        for j, op in enumerate(self.ops):
            head = Part(self.slicer, j, j + 1, self.n, kernels, self.cache, outputs=list(op.outputs))
            self.cache.update(head.run())
            self._heads.append(head)
        self.stats["interpreters_built"] += len(self._heads)
        self.output = int(full.get_output_details()[0]["index"])
        self.exact = np.array_equal(self.cache[self.output], self.scores)
        if not self.exact:
            log.warning("int8 engine: the operator-by-operator run with %s kernels differs from the whole "
                        "model's; every fault goes to the naive rebuild loop", kernels)
        self._reference: ReferenceEngine | None = None
        self._untrusted: set[int] = set()
        self._tails: Memo[Part | None] = Memo(4)
        self._spans: Memo[Part | None] = Memo(2)
        self._memo: Memo[Prediction] = Memo(memo_size)

    # --------------------------------------------------------------- slices

    def _trusted(self, start: int) -> Part | None:
        """Operators ``start..`` as one model, if it reproduces the cached model output."""
        if start in self._untrusted:
            return None
        part = Part(self.slicer, start, len(self.ops), self.n, self.kernels, self.cache)
        self.stats["interpreters_built"] += 1
        if not np.array_equal(part.run()[part.io.outputs[0]], self.scores):
            log.warning("int8 engine: operators %d.. do not reproduce the model output; their faults go to "
                        "the naive rebuild loop", start)
            self._untrusted.add(start)
            return None
        return part

    def _tail(self, j: int) -> Part | None:
        return self._tails.get_or(j, lambda: self._trusted(j + 1))

    def _span(self, j: int) -> Part | None:
        return self._spans.get_or(j, lambda: self._trusted(j))

    def _rebuilds(self, s: TensorSet) -> bool:
        """Whether a flip of ``s`` reaches the kernels only through a rebuild."""
        return packs_weights(self.kernels) or any(
            (self.ops[j].name, pos) in CACHED_AT_PREPARE
            for j in s.consumers for pos, t in enumerate(self.ops[j].inputs) if t == s.tensor)

    def _faulty(self, part: Part, s: TensorSet, fault: Fault) -> dict[int, np.ndarray]:
        """Outputs of ``part`` with the fault in place (undone afterwards)."""
        if self._rebuilds(s):
            self.stats["rebuilt"] += 1
            flipped = make_interpreter(part.flipped(s.tensor, fault.index, fault.bit), kernels=self.kernels)
            return part.run(flipped)
        flip_in_place(part.interp, s.tensor, fault.index, fault.bit)
        try:
            return part.run()
        finally:
            flip_in_place(part.interp, s.tensor, fault.index, fault.bit)

    # --------------------------------------------------------------- running

    def _naive(self, fault: Fault) -> Prediction:
        if self._reference is None:
            self._reference = ReferenceEngine(self.content, self._x, list(self.sets.values()), kernels=self.kernels)
        self.stats["reference_faults"] += 1
        return next(self._reference.run([fault]))

    def _downstream(self, j: int, faulty: dict[int, np.ndarray]) -> Prediction | None:
        """The prediction for a faulty output of operator j (None: no trusted downstream)."""
        if j == len(self.ops) - 1:  # the faulty operator produced the model output
            return prediction_from_scores(faulty[self.output])
        tail = self._tail(j)
        if tail is None:
            return None
        self.stats["tail_runs"] += 1
        out = tail.run(changed={t: v for t, v in faulty.items() if t in tail.inputs})
        return prediction_from_scores(out[tail.io.outputs[0]])

    def _one(self, fault: Fault) -> Prediction:
        check_fault_sets((fault,), self.sets)
        s = self.sets[fault.set]
        if not self.exact:
            return self._naive(fault)
        if len(s.consumers) != 1:  # a constant several operators read: start at the first
            span = self._span(s.consumers[0])
            if span is None:
                return self._naive(fault)
            self.stats["span_runs"] += 1
            return prediction_from_scores(self._faulty(span, s, fault)[span.io.outputs[0]])
        j = s.consumers[0]
        out = self._faulty(self._heads[j], s, fault)
        if all(np.array_equal(v, self.cache[t]) for t, v in out.items()):
            self.stats["dropped"] += 1
            return UNCHANGED
        key = (j, state_digest(*out.values()))
        hit = self._memo.get(key)
        if hit is not None:
            self.stats["memo_hits"] += 1
            return hit
        pred = self._downstream(j, out)
        if pred is None:
            return self._naive(fault)
        self._memo.put(key, pred)
        return pred

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        for fault in faults:
            yield self._one(fault)
