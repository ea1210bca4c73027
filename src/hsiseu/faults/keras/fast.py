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
   chain (:mod:`~hsiseu.faults.keras.copies`). A layer without a rule is called once per
   fault, its faulty weight substituted. Weights are substituted through Keras's
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
   (:mod:`~hsiseu.faults.keras.partial`), so that each E compiles a few shapes.
6. **Image chunks** (``image_chunk``): the cache holds one chunk of test images at a time,
   rebuilt per call and chunk, so that memory is bounded at paper scale.

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
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from hsiseu.faults.bitflip import flip_at
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.bound import ClassifierBound, moved
from hsiseu.faults.keras.classmap import classes_op
from hsiseu.faults.keras.copies import ChainCopies, side_by_side
from hsiseu.faults.keras.graph import ChannelRule, LayerGraph, channel_rule
from hsiseu.faults.keras.logits import LogitTail
from hsiseu.faults.keras.partial import PartialBatches, smaller_batches
from hsiseu.faults.keras.paths import PIXELS, WHOLE, PathTimes, wall_seconds
from hsiseu.faults.keras.pixels import PixelTail
from hsiseu.faults.keras.reference import NaiveLoop
from hsiseu.faults.keras.softmax import SoftmaxApart, next_rung, rung_at_least
from hsiseu.faults.keras.whole import WholeTail
from hsiseu.faults.outcomes import Prediction
from hsiseu.faults.shared import UNCHANGED, Memo, MemoWorth, state_digest

log = logging.getLogger(__name__)

__all__ = ["CompiledEngine", "classes_op"]


@dataclass
class _Plan:
    """How the faults of one layer are run."""

    layer: str
    rule: ChannelRule | None  # None: the layer's whole output changes
    chain: list[str]  # the layer, then the pass-through layers up to the chain end
    input: str

    @property
    def end(self) -> str:
        return self.chain[-1]


@dataclass
class _Waiting:
    """A faulty state at a chain end (one channel, or the whole tensor), waiting for a batch."""

    c: int
    state: np.ndarray
    members: list[int] = field(default_factory=list)
    changed: np.ndarray | None = None  # the pixels it changed, where only those run downstream


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where values differ bitwise (-0.0 != 0.0, NaN payloads count)."""
    ua = a.view(np.uint32) if a.dtype.itemsize == 4 else a
    ub = b.view(np.uint32) if b.dtype.itemsize == 4 else b
    return ua != ub


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per fault (first axis), whether every value is bitwise equal."""
    return ~_differs(a, b).reshape(a.shape[0], -1).any(axis=1)


def _channel_major(a: np.ndarray) -> np.ndarray:
    """(C, N, ...) contiguous: each channel's values in one block, to compare and hash whole."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def _channels(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Channels ``c`` of ``a`` (..., C), channel-major (K, ...). Where a pixel's channels take
    at most 32 bytes (a late layer's 5-8: two or more pixels to a cache line), one strided copy
    per channel: 27 us for 4 of 5 channels of a 2 x 64 x 128 map, where a take over the last
    axis and a transpose cost 134 us; on wide layers the take is faster (463 against 673 us for
    16 of 32 channels)."""
    if a.shape[-1] * a.itemsize > 32:
        return _channel_major(np.take(a, c, axis=-1))
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
        self.model_vars = list(model.variables)
        self._var_index = {id(v): i for i, v in enumerate(self.model_vars)}
        self.stored = [np.array(v.numpy(), copy=True) for v in self.model_vars]
        self.values = [compiled.to_device(a) for a in self.stored]
        self.memory_bytes, self.max_batch = float(memory_mb) * 2**20, int(max_batch)
        self.n = len(x)
        self.stats: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()  # chain and downstream time per faulty layer / end
        self._memo: Memo[Prediction] = Memo(memo_size, int(memo_mb * 2**20),
                                            lambda p: 0 if p.classes is None else p.classes.nbytes)
        names = self.graph.computed()
        every = keras.Model(model.inputs, [self.graph.nodes[n].layer.output for n in names])
        self._every = compiled.compile_fn(compiled.with_values(every, self.model_vars))
        self._names = names
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.chunks = reference.chunks
        self.classes = reference.classes
        self._chunk: int | None = None
        self._exact: dict[int, bool] = {}
        self.cache: dict[str, Any] = {}
        self._host: dict[str, np.ndarray] = {}
        self._windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per chain end, of the loaded images
        self._load(0)
        self._plans: dict[str, _Plan | None] = {}
        self._whole_tails: dict[str, WholeTail] = {}
        self._trusted: dict[tuple, bool] = {}  # per compiled shape: whether it reproduces the cache
        self._dense_k: dict[tuple, int] = {}  # per (end, channel, images): faults per whole-tensor call
        self._widths: dict[str, int] = {}  # per faulty layer: most batches side by side in one chain call
        self._chain_calls: dict[tuple, ChainCopies | None] = {}  # per (layer, width, images): trusted copies or None
        self.partial = PartialBatches()  # per (end, channel, images): the times behind partial batches
        self._pass: dict[int, float] = {}  # per image chunk: the reference loop's fastest fault-free pass
        self._batch: dict[str, int] = {}
        self._pixel_tails: dict[str, PixelTail | LogitTail | None] = {}
        self._bounds: dict[str, ClassifierBound | None] = {}
        self._path_times: defaultdict[str, PathTimes] = defaultdict(PathTimes)
        self._memo_worth: defaultdict[str, MemoWorth] = defaultdict(MemoWorth)
        self.apart = SoftmaxApart.of(self.graph, self.host)
        self._gold_nonfinite: dict[int, bool] = {}  # per image chunk: any fault-free score NaN or inf

    # ------------------------------------------------------------ helpers

    def _load(self, i: int) -> None:
        """Cache the fault-free activations of image chunk ``i`` (one compiled call), and check
        that they reproduce the reference loop's scores for those images bit for bit."""
        if self._chunk == i:
            return
        a, b = self.chunks[i]
        x_dev = compiled.to_device(self.x[a:b])
        self.cache = dict(zip(self._names, self._every(self.values, x_dev)))
        self.cache[self.graph.input] = x_dev
        self._host = {}
        self._windows = {}
        self._chunk, self.n = i, b - a
        if i not in self._exact:
            want = np.asarray(self.reference.scores[a:b], np.float32)
            self._exact[i] = bool(np.array_equal(self.host(self.graph.output).view(np.uint32), want.view(np.uint32)))
            if not self._exact[i]:
                log.warning("cached fault-free scores of images %d..%d differ from the reference loop's: "
                            "their faults run through the reference loop", a, b - 1)

    def host(self, name: str) -> np.ndarray:
        if name not in self._host:
            self._host[name] = compiled.to_host(self.cache[name])
        return self._host[name]

    def batch_size(self, plan: _Plan) -> int:
        """Faults per downstream call for a plan: as many as fit in the memory budget, each
        needing the peak of what is alive at once downstream of its chain end
        (:meth:`~hsiseu.faults.keras.graph.LayerGraph.live_peak`; the tiled skip tensors from the
        start)."""
        if plan.layer not in self._batch:
            peak = self.graph.live_peak(plan.end, lambda n: 4 * math.prod(self.cache[n].shape))
            self._batch[plan.layer] = int(max(1, min(self.max_batch, self.memory_bytes // max(peak, 1))))
        return self._batch[plan.layer]

    def plan(self, set_name: str) -> _Plan | None:
        """How a set's faults run; None when its layer takes the reference loop."""
        layer_name = self.layer_of[set_name]
        if layer_name not in self._plans:
            node = self.graph.nodes[layer_name]
            rule = channel_rule(node.layer)
            if rule is not None and not {v.name for v in node.layer.weights} <= set(rule.axes):
                rule = None
            if len(node.inputs) != 1:
                self._plans[layer_name] = None
            else:
                chain = self.graph.channel_chain(layer_name) if rule is not None else [layer_name]
                self._plans[layer_name] = _Plan(layer_name, rule, chain, node.inputs[0])
        return self._plans[layer_name]

    def _flipped(self, plan: _Plan, faults: Sequence[Fault]) -> dict[int, np.ndarray]:
        """Host copies of the faulty layer's weights that ``faults`` flip, by position in its
        weights, with every fault flipped (in distinct channels: they never meet)."""
        weights = self.graph.nodes[plan.layer].layer.weights
        at = {v.name: i for i, v in enumerate(weights)}
        copied: dict[int, np.ndarray] = {}
        for fault in faults:
            i = at[fault.set.split("/", 1)[1]]
            if i not in copied:
                copied[i] = self.stored[self._var_index[id(weights[i])]].copy()
            flip_at(copied[i], fault.index, fault.bit)
        return copied

    def copies_per_call(self, plan: _Plan) -> int:
        """How many batches of ``plan``'s faults share one chain call: several where the chain's
        layers with weights run side by side (:mod:`~hsiseu.faults.keras.copies`), as many as
        the memory budget holds of its largest tensor (at most ``max_batch``, a size of the
        ladder)."""
        if plan.layer not in self._widths:
            most = 1
            if plan.rule is not None and all(side_by_side(layer) for layer in self._chain_layers(plan) if layer.weights):
                largest = max(4 * math.prod(self.cache[n].shape) for n in [plan.input, *plan.chain])
                fit = min(self.max_batch, self.memory_bytes // largest)
                while next_rung(most) <= fit:
                    most = next_rung(most)
            self._widths[plan.layer] = most
        return self._widths[plan.layer]

    def _chain_layers(self, plan: _Plan) -> list[keras.layers.Layer]:
        return [self.graph.nodes[n].layer for n in plan.chain]

    def _chain_call(self, plan: _Plan, k: int) -> ChainCopies | None:
        """The chain's ``k`` copies side by side (``k = 1``: the chain itself), where ``k``
        fault-free copies reproduce the cache bit for bit (checked once per layer, width and
        image chunk size); None where they do not."""
        key = (plan.layer, k, self.n)
        if key not in self._chain_calls:
            layers = self._chain_layers(plan)
            stored = [[self.stored[self._var_index[id(v)]] for v in layer.weights] for layer in layers]
            call = ChainCopies(layers, k, stored[0], [a for weights in stored[1:] for a in weights])
            out = call([{}] * k, self.cache[plan.input])
            trusted = _same_bits(out, np.broadcast_to(self.host(plan.end), out.shape)).all()
            self._chain_calls[key] = call if trusted else None
            if not trusted:
                log.info("%d copies of the chain of %s do not reproduce the cache: %s", k, plan.layer,
                         "one call per batch" if k > 1 else "reference loop")
        return self._chain_calls[key]

    def _chained(self, plan: _Plan, faults: Sequence[Fault], parts: list[list[int]]
                 ) -> Iterator[tuple[list[int], np.ndarray | None]]:
        """Each batch of faults with the chain end's output it gives (None: the chain is not
        trusted), several batches to a call where the layer's copies run side by side."""
        most = self.copies_per_call(plan)
        x_in = self.cache[plan.input]
        for a in range(0, len(parts), most):
            group = parts[a:a + most]
            t0 = time.perf_counter()
            flips = [self._flipped(plan, [faults[i] for i in part]) for part in group]
            wide = self._chain_call(plan, rung_at_least(len(group)))
            if wide is not None:
                outs = list(wide(flips, x_in))
            else:  # one call per batch, where the chain itself is trusted
                narrow = self._chain_call(plan, 1) if len(group) > 1 else None
                outs = [None if narrow is None else narrow([flip], x_in)[0] for flip in flips]
            self.stats["chain_runs"] += 1 if wide is not None else len(group)
            self.stats["chain_batches_side_by_side"] += len(group) if wide is not None and wide.k > 1 else 0
            self.seconds[f"chain:{plan.layer}"] += time.perf_counter() - t0
            yield from zip(group, outs)

    def whole_tail(self, end: str) -> WholeTail:
        """The downstream of ``end`` over whole tensors (:mod:`~hsiseu.faults.keras.whole`)."""
        if end not in self._whole_tails:
            self._whole_tails[end] = WholeTail(self.graph, end, self._values_of, self.apart)
        return self._whole_tails[end]

    # ------------------------------------------------------------ trust

    def _gold_state(self, plan: _Plan, c: np.ndarray) -> np.ndarray:
        """Fault-free states at the chain end for channels ``c``: (K, N, ...)."""
        if plan.rule is not None:
            key = f"{plan.end}:channel-major"
            if key not in self._host:
                self._host[key] = _channel_major(self.host(plan.end))
            return self._host[key][c]
        return np.repeat(self.host(plan.end)[None], len(c), axis=0)

    def pixel_tail(self, end: str) -> PixelTail | LogitTail | None:
        """The downstream of ``end`` on changed pixels only, where no later layer mixes pixels
        (one logit at a time where ``end`` is the closing softmax's input)."""
        if end not in self._pixel_tails:
            tail = (PixelTail(self.graph, end, self._values_of, self.host, self.apart)
                    if self.graph.tail_keeps_pixels(end) else None)
            if tail is not None and self.apart is not None and end == self.apart.logits:
                tail = LogitTail(tail, self.apart, self.host)
            self._pixel_tails[end] = tail
        return self._pixel_tails[end]

    def safe_windows(self, end: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Per channel of ``end`` and pixel of the loaded images, the window a fault may move
        it in and keep the pixel's class (:mod:`~hsiseu.faults.keras.bound`), where ``end``
        feeds the classifier of the softmax apart; else None."""
        if end not in self._bounds:
            tail = self.pixel_tail(end)
            self._bounds[end] = (ClassifierBound.of(tail, lambda v: self.stored[self._var_index[id(v)]])
                                 if type(tail) is PixelTail else None)
        bound = self._bounds[end]
        if bound is None:
            return None
        if end not in self._windows:
            a, b = self.chunks[self._chunk]
            self._windows[end] = bound.windows(self.host(end), self.host(bound.logits), self.classes[a:b])
        return self._windows[end]

    def _values_of(self, variables: Sequence[keras.Variable]) -> list[Any]:
        return [self.values[self._var_index[id(v)]] for v in variables]

    def down_batch(self, plan: _Plan) -> int:
        """Faults per downstream call from ``plan``'s chain end: the budget's batch size where
        only changed pixels run (each row length is checked as it comes), else
        :meth:`dense_batch`."""
        if self.pixel_tail(plan.end) is not None:
            return self.batch_size(plan)
        return self.dense_batch(plan)

    def _end_key(self, plan: _Plan) -> tuple[str, bool, int]:
        """What a downstream's compiled shapes depend on: the chain end, whether faults come as
        channels, the loaded image chunk's size."""
        return plan.end, plan.rule is not None, self.n

    def _rung_key(self, plan: _Plan, k: int) -> tuple:
        """The trust cache's key of the downstream of ``plan``'s chain end at ``k`` faults per call."""
        return ("dense", *self._end_key(plan), k)

    def dense_batch(self, plan: _Plan) -> int:
        """Faults per call of the downstream over whole tensors from ``plan``'s chain end on the
        loaded chunk: the budget's batch size if that shape reproduces the cache fault-free, else
        the largest of the smaller :func:`smaller_batches` that does. oneDNN picks other kernels
        at other batch sizes, and which round as the reference's shape does follows no order: on
        the default model a batch of 64 images rounds differently and one of 32 does not; on an
        AMD EPYC's pruned ReLU model 3, 4, 6, 12 and 16 faults per call do, 2, 5, 8, 11 and 23
        do not, so halving from its budget of 23 ended at one. One fault per call has the
        reference's own shape, so it is always exact."""
        key = self._end_key(plan)
        if key not in self._dense_k:
            k = self.batch_size(plan)
            t0 = time.perf_counter()
            for k in [k, *smaller_batches(k)]:
                if k == 1 or self._rung_trusted(plan, k):
                    break
                self.stats["downstream_batch_refused"] += 1
            self._dense_k[key] = k
            self.partial.price[key] = time.perf_counter() - t0
            if k < self.batch_size(plan):
                log.info("downstream of %s: %d faults per call (a batch of %d does not reproduce the cache)",
                         plan.end, k, self.batch_size(plan))
        return self._dense_k[key]

    def _rung_trusted(self, plan: _Plan, k: int) -> bool:
        """Whether the downstream of ``plan``'s chain end reproduces the cache at ``k`` faults
        per call (checked once per end, batch size and image chunk size)."""
        key = self._rung_key(plan, k)
        if key not in self._trusted:
            self._trusted[key] = self._down_trusted(plan, k)
        return self._trusted[key]

    def fitted_batch(self, plan: _Plan, n: int) -> tuple[int, int | None]:
        """Faults per call for a last batch of ``n`` waiting states, and the smaller rung it
        rents if any (:class:`~hsiseu.faults.keras.partial.PartialBatches`: ski rental)."""
        end = self._end_key(plan)

        def buy(r: int) -> bool:
            self.stats["downstream_rungs_bought"] += 1
            return self._rung_trusted(plan, r)

        return self.partial.size(end, n, self.dense_batch(plan), lambda r: self._trusted.get(self._rung_key(plan, r)), buy)

    def _down_trusted(self, plan: _Plan, k: int) -> bool:
        tail = self.whole_tail(plan.end)
        c = np.zeros(k, dtype=np.int32)
        _, _, scores = tail(self._gold_state(plan, c), c, self.cache, channel=plan.rule is not None)
        want = np.concatenate([self.host(tail.target())] * k)
        return bool(np.array_equal(compiled.to_host(scores).view(np.uint32), want.view(np.uint32)))

    def _downstream(self, plan: _Plan, c: np.ndarray, states: np.ndarray, k: int):
        if k == 1 and not self._rung_trusted(plan, 1):
            return None
        tail = self.whole_tail(plan.end)
        classes, flag, out = tail(states, c, self.cache, channel=plan.rule is not None)
        classes, flag = (compiled.to_host(a).reshape(k, -1, *a.shape[1:]) for a in (classes, flag))
        if not tail.split():
            return classes, flag.reshape(k, -1).any(axis=1)
        self.stats["logit_pixels"] += flag.size
        self.stats["softmax_pixels"] += int(flag.size - flag.sum())
        resolved = self.apart.resolve(classes, flag,
                                      lambda m: compiled.to_host(out).reshape(m.size, -1)[m.reshape(-1)])
        if resolved is None:
            return None
        classes, nonfinite = resolved
        return classes, nonfinite.reshape(k, -1).any(axis=1)

    # ------------------------------------------------------------ running

    def _channel_of(self, plan: _Plan, fault: Fault) -> int:
        wname = fault.set.split("/", 1)[1]
        shape = self.reference.stored[fault.set].shape
        return int(np.unravel_index(fault.index, shape)[plan.rule.axes[wname] % len(shape)])

    def _chain_batches(self, plan: _Plan, faults: Sequence[Fault], group: list[int]) -> list[list[int]]:
        """The group's faults in batches that share one chain call: distinct channels (first
        fit), or one fault per batch for a layer without a channel rule."""
        if plan.rule is None:
            return [[i] for i in group]
        batches: list[tuple[list[int], set[int]]] = []
        for i in group:
            c = self._channel_of(plan, faults[i])
            for members, used in batches:
                if c not in used:
                    members.append(i)
                    used.add(c)
                    break
            else:
                batches.append(([i], {c}))
        return [members for members, _ in batches]

    def run(self, faults: Sequence[Fault]) -> Iterator[Prediction]:
        if len(self.chunks) == 1:
            self._load(0)
            yield from self._run_chunk(faults)
            self.stats["faults"] += len(faults)
            return
        parts = []
        for i in range(len(self.chunks)):
            self._load(i)
            parts.append(self._run_chunk(faults))
        self.stats["faults"] += len(faults)
        for per_chunk in zip(*parts):
            if all(p.classes is None for p in per_chunk):
                yield UNCHANGED
                continue
            classes = np.concatenate([self.classes[a:b] if p.classes is None else p.classes
                                      for p, (a, b) in zip(per_chunk, self.chunks)])
            yield Prediction(classes, any(p.nonfinite for p in per_chunk))

    def _run_chunk(self, faults: Sequence[Fault]) -> list[Prediction]:
        """Predictions for the images of the loaded chunk."""
        results: list[Prediction | None] = [None] * len(faults)
        queues: dict[tuple[str, bool], dict[tuple, _Waiting]] = defaultdict(dict)
        plans: dict[tuple[str, bool], _Plan] = {}
        i = 0
        while i < len(faults):
            j = i
            while j < len(faults) and faults[j].set == faults[i].set:
                j += 1
            plan = self.plan(faults[i].set) if self._exact[self._chunk] else None
            group = list(range(i, j))
            if plan is None:
                self._by_reference(faults, group, results, "reference_no_plan")
            else:
                k = self.down_batch(plan)
                qkey = (plan.end, plan.rule is not None)
                plans.setdefault(qkey, plan)
                for part, end_out in self._chained(plan, faults, self._chain_batches(plan, faults, group)):
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
            results[i] = self.reference.one(faults[i], [self._chunk])
        self.stats[reason] += len(idx)
        self.seconds[f"reference:{self.layer_of[faults[idx[0]].set]}"] += time.perf_counter() - t0

    def _through_chain(self, plan: _Plan, faults: Sequence[Fault], part: list[int], end_out: np.ndarray | None,
                       results: list, queue: dict[tuple, _Waiting]) -> None:
        """A batch of faults from the chain end's output they give: dropped, answered by the
        bound or the memo, or queued for the downstream."""
        if end_out is None:
            self._by_reference(faults, part, results, "reference_untrusted_chain")
            return
        t0 = time.perf_counter()
        batch = [faults[i] for i in part]
        if plan.rule is not None:
            c = np.array([self._channel_of(plan, f) for f in batch], dtype=np.int32)
            states = _channels(end_out, c)
        else:
            c = np.zeros(len(batch), dtype=np.int32)
            states = end_out[None]
        gold = self._gold_state(plan, c)
        differs = _differs(states, gold)
        # the pixels each fault changed, kept for a downstream that runs only those
        pixels = (differs if plan.rule is not None else differs.any(axis=-1)) \
            if self.pixel_tail(plan.end) is not None else None
        window = self.safe_windows(plan.end) if pixels is not None and plan.rule is not None else None
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
            key = (self._chunk, plan.end, int(c[r]), state_digest(state))
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

    def _flush(self, plan: _Plan, queue: dict[tuple, _Waiting], k: int, faults: Sequence[Fault],
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
            whole = len(items) * self.classes[slice(*self.chunks[self._chunk])].size
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

    def _whole(self, plan: _Plan, keys: list[tuple], items: list[_Waiting], faults: Sequence[Fault],
               results: list) -> bool:
        """The waiting states' predictions from whole tensors, in batches the cache trusts; a
        partial batch at the full size goes to the reference loop instead where that costs
        less (:class:`~hsiseu.faults.keras.partial.PartialBatches`)."""
        k = self.dense_batch(plan)
        end = self._end_key(plan)
        for a in range(0, len(items), k):
            part_keys, part = keys[a:a + k], items[a:a + k]
            size, renting = self.fitted_batch(plan, len(part))
            by_reference = size == k and len(part) < k and self.partial.cheaper_by_reference(
                end, len(part), self._reference_pass)
            t0 = time.perf_counter()
            if by_reference:
                self._answer(part_keys, part, [self.reference.one(faults[w.members[0]], [self._chunk]) for w in part],
                             results)
                self.stats["partial_states_by_reference"] += len(part)
            else:
                self._dense(plan, part_keys, part, size, faults, results)
            self.partial.ran(end, k, renting, time.perf_counter() - t0, full=size == k and not by_reference)
        return True

    def _reference_pass(self) -> float:
        """Seconds of the reference loop's fastest fault-free pass over the loaded images."""
        if self._chunk not in self._pass:
            self._pass[self._chunk] = min(wall_seconds(lambda: self.reference.scores_of([self._chunk])) for _ in range(2))
        return self._pass[self._chunk]

    def _by_pixels(self, plan: _Plan, tail: PixelTail | LogitTail, keys: list[tuple], items: list[_Waiting],
                   results: list) -> bool:
        """The waiting states' predictions from their changed pixels; False when the row length
        is not trusted (the caller runs them whole)."""
        a, b = self.chunks[self._chunk]
        if self._chunk not in self._gold_nonfinite:
            self._gold_nonfinite[self._chunk] = not bool(np.isfinite(self.host(self.graph.output)).all())
        states = [(w.c if plan.rule is not None else None, w.state, w.changed) for w in items]
        out = tail.run(self.classes[a:b], self._gold_nonfinite[self._chunk], states)
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

    def _dense(self, plan: _Plan, keys: list[tuple], items: list[_Waiting], k: int, faults: Sequence[Fault],
               results: list) -> None:
        pad = k - len(items)
        c = np.array([w.c for w in items] + [items[-1].c] * pad, dtype=np.int32)
        states = np.stack([w.state for w in items] + [items[-1].state] * pad)
        out = self._downstream(plan, c, states, k)
        if out is None:
            members = [i for w in items for i in w.members]
            self._by_reference(faults, members, results, "reference_untrusted_downstream")
            return
        classes, nonfinite = out
        self._answer(keys, items, [Prediction(classes[r].copy(), bool(nonfinite[r])) for r in range(len(items))], results)
        self.stats["padded_downstream_slots"] += pad
