"""The fast engine: the reference loop's outcomes, fault for fault, from compiled graphs that
recompute only what a fault can change.

For the faults of a layer L, in batches:

1. **The faulty layer, many faults per call.** With a channel rule (convolutions, dense layers,
   BatchNorm, depthwise convolutions: :class:`~hsiseu.faults.keras.graph.ChannelRule`), output
   channel c of L depends on the weights' slice c only, so faults in *distinct* channels are put
   into one copy of the weights, each flip in its own channel, and one call of L itself, at the
   fault-free shapes, gives each its faulty channel; where every layer of the chain (below)
   with weights holds its output channel on each weight's last axis (convolutions, dense
   layers, BatchNorm), several such copies run side by side in one call of a wider copy of the
   chain (:mod:`~hsiseu.faults.keras.copies`; both in :mod:`~hsiseu.faults.keras.chains`). A
   layer without a rule is called once per fault, its faulty weight substituted. Weights are substituted through Keras's
   ``StatelessScope``; the model's variables are never written.
2. **The channel chain.** The pass-through layers after L (BatchNorm, activations, pooling:
   output channel c from input channel c) run on that same tensor, so every kernel of the chain
   sees the fault-free shapes; at the chain's end E only the faulty channels come back to the
   host.
3. **Dropping and memo.** A faulty channel bitwise equal to the fault-free one at E changes
   nothing: the fault is answered :data:`~hsiseu.faults.shared.UNCHANGED`. A faulty channel equal
   to one already run (same E, channel and bits: NaN everywhere, a saturated sigmoid, a flip
   rounded away) shares its answer, where keying states pays at E
   (:class:`~hsiseu.faults.shared.MemoWorth`: not after the 1x1 classifier, whose downstream
   costs little more than the hash). One host transfer per batch decides both; no sync per op.
   (A layer without a channel rule changes its whole output: that is compared and keyed whole.)
4. **Delayed start, batched.** The survivors' channels are written over the cached fault-free
   output of E, faults x images on the batch axis, and a Keras sub-model from E (plus the cached
   skip tensors it still reads, tiled) to the model output runs them in one compiled call, and
   a fused one takes the class map with the NaN rule (:mod:`~hsiseu.faults.keras.whole`).
   Chains compile once per layer and width, sub-models once per chain end and batch size.
   Where no layer after E mixes pixels (a segmentation net's 1x1 classifier and softmax:
   :mod:`~hsiseu.faults.keras.pixels`), only the pixels each fault changed may run, as one row
   of pixel vectors per batch, written over the fault-free class map; which of the two a batch
   takes follows the time each took per pixel at E (:mod:`~hsiseu.faults.keras.paths`). Where E
   is the closing softmax's input, each changed logit is decided against the fault-free others
   (:mod:`~hsiseu.faults.keras.logits`); where E feeds that softmax's classifier, a changed
   pixel whose move cannot turn its class (:mod:`~hsiseu.faults.keras.bound`) runs nothing.
5. **Batch from a memory budget.** The batch size of E is the largest number of faults whose
   downstream activations fit in ``memory_mb`` (at most ``max_batch``); a partial last batch is
   padded to it, or to a smaller size of the ladder once the padding has cost as much as a
   compile, or run by the reference loop where that costs less
   (:mod:`~hsiseu.faults.keras.partial`), so that each E compiles a few shapes; the sizes a
   whole-tensor downstream is trusted at: :mod:`~hsiseu.faults.keras.dense`.
6. **Image chunks** (``image_chunk``): the cache holds one chunk of test images at a time,
   rebuilt per call and chunk, so that memory is bounded at paper scale
   (:mod:`~hsiseu.faults.keras.images`).

Exactness is the reference loop's, checked rather than assumed: the cache must reproduce the
reference's fault-free scores bit for bit, and every compiled function is run once on
fault-free values and must reproduce the cache before it is trusted (a chain once per layer, a
downstream once per end and batch size). A downstream batch size that fails is replaced by
the next smaller of a ladder until one passes (one fault per call has the reference's shapes);
a chain that fails, a layer with several inputs and a cache that differs send their faults to
the reference loop. ``stats`` counts all of it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.bound import ClassifierBound, moved
from hsiseu.faults.keras.chains import FaultyChains
from hsiseu.faults.keras.classmap import classes_op
from hsiseu.faults.keras.dense import DenseDownstream
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.images import LoadedImages, channel_major
from hsiseu.faults.keras.logits import LogitTail
from hsiseu.faults.keras.paths import PIXELS, WHOLE, PathTimes
from hsiseu.faults.keras.pixels import PixelTail
from hsiseu.faults.keras.plan import Plan, plan_of
from hsiseu.faults.keras.reference import NaiveLoop
from hsiseu.faults.keras.softmax import SoftmaxApart
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.shared import UNCHANGED, Memo, MemoWorth, bits_differ, state_digest

log = logging.getLogger(__name__)

__all__ = ["CompiledEngine", "classes_op"]


@dataclass
class _Waiting:
    """A faulty state at a chain end (one channel, or the whole tensor), waiting for a batch."""

    c: int
    state: np.ndarray
    members: list[int] = field(default_factory=list)
    changed: np.ndarray | None = None  # the pixels it changed, where only those run downstream


def _channels(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Channels ``c`` of ``a`` (..., C), channel-major (K, ...). Where a pixel's channels take
    at most 32 bytes (a late layer's 5-8: two or more pixels to a cache line), one strided copy
    per channel: 27 us for 4 of 5 channels of a 2 x 64 x 128 map, where a take over the last
    axis and a transpose cost 134 us; on wide layers the take is faster (463 against 673 us for
    16 of 32 channels)."""
    if a.shape[-1] * a.itemsize > 32:
        return channel_major(np.take(a, c, axis=-1))
    out = np.empty((len(c),) + a.shape[:-1], a.dtype)
    for r, channel in enumerate(c):
        out[r] = a[..., channel]
    return out


class CompiledEngine:
    """The fast engine over a model's test images; ``reference`` is the naive loop that defines,
    and stands in for, every answer."""

    def __init__(self, model: keras.Model, x: np.ndarray, *, reference: NaiveLoop, memory_mb: float = 32, max_batch: int = 64, memo_size: int = 4096,
                 memo_mb: float = 256) -> None:
        if memory_mb <= 0 or max_batch < 1:
            raise ValueError(f"memory_mb must be > 0 and max_batch >= 1, got {memory_mb!r}, {max_batch!r}")
        self.graph = LayerGraph(model)
        self.model = model
        self.reference = reference
        self.layer_of = {name: layer.name for name, layer, _ in self.graph.weights()}
        self._var_index = {id(v): i for i, v in enumerate(model.variables)}
        self.stored = [np.array(v.numpy(), copy=True) for v in model.variables]
        self.values = [compiled.to_device(a) for a in self.stored]
        self.memory_bytes, self.max_batch = float(memory_mb) * 2**20, int(max_batch)
        self.stats: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()  # chain and downstream time per faulty layer / end
        self._memo: Memo[Prediction] = Memo(memo_size, int(memo_mb * 2**20),
                                            lambda p: 0 if p.classes is None else p.classes.nbytes)
        self.images = LoadedImages(model, self.graph, x, reference, self.values)
        self.apart = SoftmaxApart.of(self.graph, self.images.host)
        budget = dict(memory_bytes=self.memory_bytes, max_batch=self.max_batch)
        self.chains = FaultyChains(self.graph, self.images, self._stored_of,
                                   {name: a.shape for name, a in reference.stored.items()},
                                   **budget, stats=self.stats, seconds=self.seconds)
        self.dense = DenseDownstream(self.graph, self.images, self._values_of, self.apart, **budget, stats=self.stats)
        self._plans: dict[str, Plan | None] = {}
        self._pixel_tails: dict[str, PixelTail | LogitTail | None] = {}
        self._bounds: dict[str, ClassifierBound | None] = {}
        self._path_times: defaultdict[str, PathTimes] = defaultdict(PathTimes)
        self._memo_worth: defaultdict[str, MemoWorth] = defaultdict(MemoWorth)

    def _stored_of(self, variable: keras.Variable) -> np.ndarray:
        return self.stored[self._var_index[id(variable)]]

    def _values_of(self, variables: Sequence[keras.Variable]) -> list[Any]:
        return [self.values[self._var_index[id(v)]] for v in variables]

    def plan(self, set_name: str) -> Plan | None:
        """How a set's faults run; None when its layer takes the reference loop."""
        layer_name = self.layer_of[set_name]
        if layer_name not in self._plans:
            self._plans[layer_name] = plan_of(self.graph, layer_name)
        return self._plans[layer_name]

    def pixel_tail(self, end: str) -> PixelTail | LogitTail | None:
        """The downstream of ``end`` on changed pixels only, where no later layer mixes pixels
        (one logit at a time where ``end`` is the closing softmax's input)."""
        if end not in self._pixel_tails:
            host = self.images.host
            tail = (PixelTail(self.graph, end, self._values_of, host, self.apart)
                    if self.graph.tail_keeps_pixels(end) else None)
            if tail is not None and self.apart is not None and end == self.apart.logits:
                tail = LogitTail(tail, self.apart, host)
            self._pixel_tails[end] = tail
        return self._pixel_tails[end]

    def safe_windows(self, end: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Per channel of ``end`` and pixel of the loaded images, the window a fault may move
        it in and keep the pixel's class (:mod:`~hsiseu.faults.keras.bound`), where ``end``
        feeds the classifier of the softmax apart; else None."""
        if end not in self._bounds:
            tail = self.pixel_tail(end)
            self._bounds[end] = ClassifierBound.of(tail, self._stored_of) if type(tail) is PixelTail else None
        bound = self._bounds[end]
        if bound is None:
            return None
        images = self.images
        return images.derived(("windows", end), lambda: bound.windows(images.host(end), images.host(bound.logits),
                                                                      images.gold_classes()))

    def down_batch(self, plan: Plan) -> int:
        """Faults per downstream call from ``plan``'s chain end: the budget's batch size where
        only changed pixels run (each row length is checked as it comes), else the whole-tensor
        downstream's trusted size (:mod:`~hsiseu.faults.keras.dense`)."""
        if self.pixel_tail(plan.end) is not None:
            return self.dense.budget(plan)
        return self.dense.size(plan)

    # ------------------------------------------------------------ running

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        images = self.images
        if len(images.chunks) == 1:
            images.load(0)
            yield from self._run_chunk(faults)
            self.stats["faults"] += len(faults)
            return
        parts = []
        for i in range(len(images.chunks)):
            images.load(i)
            parts.append(self._run_chunk(faults))
        self.stats["faults"] += len(faults)
        for per_chunk in zip(*parts):
            if all(p.classes is None for p in per_chunk):
                yield UNCHANGED
                continue
            classes = np.concatenate([images.classes[a:b] if p.classes is None else p.classes
                                      for p, (a, b) in zip(per_chunk, images.chunks)])
            yield Prediction(classes, any(p.nonfinite for p in per_chunk))

    def _run_chunk(self, faults: Sequence[Fault]) -> list[Prediction]:
        """Predictions for the images of the loaded chunk."""
        results: list[Prediction | None] = [None] * len(faults)
        queues: dict[tuple[str, bool], dict[tuple, _Waiting]] = defaultdict(dict)
        plans: dict[tuple[str, bool], Plan] = {}
        i = 0
        while i < len(faults):
            j = i
            while j < len(faults) and faults[j].set == faults[i].set:
                j += 1
            plan = self.plan(faults[i].set) if self.images.exact else None
            group = list(range(i, j))
            if plan is None:
                self._by_reference(faults, group, results, "reference_no_plan")
            else:
                k = self.down_batch(plan)
                qkey = (plan.end, plan.channels)
                plans.setdefault(qkey, plan)
                for part, end_out in self.chains.outputs(plan, faults, self.chains.batches(plan, faults, group)):
                    self._through_chain(plan, faults, part, end_out, results, queues[qkey])
                    while len(queues[qkey]) >= k:
                        self._flush(plan, queues[qkey], k, faults, results)
            i = j
        for qkey, queue in queues.items():
            while queue:
                self._flush(plans[qkey], queue, self.down_batch(plans[qkey]), faults, results)
        return [r if r is not None else UNCHANGED for r in results]

    def _by_reference(self, faults: Sequence[Fault], idx: Sequence[int], results: list, reason: str) -> None:
        t0 = time.perf_counter()
        for i in idx:
            results[i] = self.reference.one(faults[i], [self.images.chunk])
        self.stats[reason] += len(idx)
        self.seconds[f"reference:{self.layer_of[faults[idx[0]].set]}"] += time.perf_counter() - t0

    def _through_chain(self, plan: Plan, faults: Sequence[Fault], part: list[int], end_out: np.ndarray | None,
                       results: list, queue: dict[tuple, _Waiting]) -> None:
        """A batch of faults from the chain end's output they give: dropped, answered by the
        bound or the memo, or queued for the downstream."""
        if end_out is None:
            self._by_reference(faults, part, results, "reference_untrusted_chain")
            return
        t0 = time.perf_counter()
        batch = [faults[i] for i in part]
        if plan.channels:
            c = np.array([self.chains.channel_of(plan, f) for f in batch], dtype=np.int32)
            states = _channels(end_out, c)
        else:
            c = np.zeros(len(batch), dtype=np.int32)
            states = end_out[None]
        differs = bits_differ(states, self.images.states(plan.end, c, plan.channels))
        # the pixels each fault changed, kept for a downstream that runs only those
        pixels = (differs if plan.channels else differs.any(axis=-1)) \
            if self.pixel_tail(plan.end) is not None else None
        window = self.safe_windows(plan.end) if pixels is not None and plan.channels else None
        if window is not None:
            pixels = moved(states, differs, window, c)
            self.stats["pixels_kept_by_bound"] += int(np.count_nonzero(differs) - np.count_nonzero(pixels))
            turns = pixels.reshape(len(part), -1).any(axis=1)
        worth = self._memo_worth[plan.end]
        for r, (i, masked) in enumerate(zip(part, ~differs.reshape(len(part), -1).any(axis=1))):
            if masked:
                results[i] = UNCHANGED
                self.stats["dropped_at_chain_end"] += 1
                continue
            if window is not None and not turns[r]:
                results[i] = UNCHANGED  # every changed pixel keeps its class
                self.stats["kept_by_bound"] += 1
                continue
            state = states[r]
            changed = None if pixels is None else pixels[r]
            if not worth.pays():
                queue[("unkeyed", i)] = _Waiting(int(c[r]), state, [i], changed)
                continue
            t1 = time.perf_counter()
            key = (self.images.chunk, plan.end, int(c[r]), state_digest(state))
            worth.hashed += 1
            worth.hash_seconds += time.perf_counter() - t1
            hit = self._memo.get(key)
            if hit is not None:
                results[i] = hit
            elif key in queue:
                queue[key].members.append(i)
            else:
                queue[key] = _Waiting(int(c[r]), state, [i], changed)
                continue
            self.stats["memo_hits"] += 1
            worth.hits += 1
        self.seconds[f"chain:{plan.layer}"] += time.perf_counter() - t0

    def _flush(self, plan: Plan, queue: dict[tuple, _Waiting], k: int, faults: Sequence[Fault],
               results: list) -> None:
        t0 = time.perf_counter()
        keys = list(queue)[:k]
        items = [queue.pop(key) for key in keys]
        tail = self.pixel_tail(plan.end)
        if isinstance(tail, LogitTail):
            done = self._by_pixels(plan, tail, keys, items, results)
        elif tail is not None:
            times = self._path_times[plan.end]
            changed = sum(int(w.changed.sum()) for w in items)
            whole = len(items) * self.images.gold_classes().size
            if not times.measured:
                times.measure({PIXELS: (lambda: self._by_pixels(plan, tail, keys, items, results), changed),
                               WHOLE: (lambda: self._whole(plan, keys, items, faults, results), whole)})
                done = True
            else:
                done = times.choose(changed, whole) == PIXELS and self._by_pixels(plan, tail, keys, items, results)
        else:
            done = False
        if not done:
            self._whole(plan, keys, items, faults, results)
        took = time.perf_counter() - t0
        self.seconds[f"downstream:{plan.end}"] += took
        self._memo_worth[plan.end].ran(took, len(items))

    def _whole(self, plan: Plan, keys: list[tuple], items: list[_Waiting], faults: Sequence[Fault],
               results: list) -> bool:
        """The waiting states' predictions from whole tensors, in batches the cache trusts; a
        partial batch at the full size goes to the reference loop instead where that costs
        less (:class:`~hsiseu.faults.keras.partial.PartialBatches`)."""
        dense = self.dense
        k, end = dense.size(plan), dense.end_key(plan)
        for a in range(0, len(items), k):
            part_keys, part = keys[a:a + k], items[a:a + k]
            size, renting = dense.fitted(plan, len(part))
            by_reference = size == k and len(part) < k and dense.partial.cheaper_by_reference(
                end, len(part), self.images.reference_pass)
            t0 = time.perf_counter()
            if by_reference:
                chunk = [self.images.chunk]
                self._answer(part_keys, part, [self.reference.one(faults[w.members[0]], chunk) for w in part], results)
                self.stats["partial_states_by_reference"] += len(part)
            else:
                self._dense(plan, part_keys, part, size, faults, results)
            dense.partial.ran(end, k, renting, time.perf_counter() - t0, full=size == k and not by_reference)
        return True

    def _by_pixels(self, plan: Plan, tail: PixelTail | LogitTail, keys: list[tuple], items: list[_Waiting],
                   results: list) -> bool:
        """The waiting states' predictions from their changed pixels; False when the row length
        is not trusted (the caller runs them whole)."""
        states = [(w.c if plan.channels else None, w.state, w.changed) for w in items]
        out = tail.run(self.images.gold_classes(), self.images.gold_nonfinite(), states)
        if out is None:
            self.stats["pixel_rows_untrusted"] += 1
            return False
        preds, length, pixels, softmax_rows = out
        self._answer(keys, items, [Prediction(classes, nonfinite) for classes, nonfinite in preds], results)
        self.stats["pixel_downstream_runs"] += 1
        self.stats["pixel_downstream_faults"] += len(items)
        self.stats["pixel_rows"] += length
        if tail.split:
            self.stats["logit_pixels"] += pixels
            self.stats["softmax_pixels"] += softmax_rows
        return True

    def _answer(self, keys: list[tuple], items: list[_Waiting], preds: list[Prediction], results: list) -> None:
        """Each waiting state's prediction to its faults and to the memo."""
        for key, w, pred in zip(keys, items, preds):
            if key[0] != "unkeyed":
                self._memo.put(key, pred)
            for i in w.members:
                results[i] = pred
        self.stats["downstream_runs"] += 1
        self.stats["downstream_faults"] += len(items)

    def _dense(self, plan: Plan, keys: list[tuple], items: list[_Waiting], k: int, faults: Sequence[Fault],
               results: list) -> None:
        pad = k - len(items)
        c = np.array([w.c for w in items] + [items[-1].c] * pad, dtype=np.int32)
        states = np.stack([w.state for w in items] + [items[-1].state] * pad)
        out = self.dense(plan, c, states, k)
        if out is None:
            members = [i for w in items for i in w.members]
            self._by_reference(faults, members, results, "reference_untrusted_downstream")
            return
        classes, nonfinite = out
        self._answer(keys, items, [Prediction(classes[r].copy(), bool(nonfinite[r])) for r in range(len(items))], results)
        self.stats["padded_downstream_slots"] += pad
