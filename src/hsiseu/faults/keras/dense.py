"""Step 5 of the fast engine (:mod:`~hsiseu.faults.keras.fast`): how many faults one call of a
chain end's whole-tensor downstream (:mod:`~hsiseu.faults.keras.whole`) takes, and that call.

Why sizes are checked, not assumed: oneDNN picks other kernels at other batch sizes, and which of
them round as the reference's shape does follows no order (on the default model a batch of 64
images rounds differently and one of 32 does not; on an AMD EPYC's pruned ReLU model 3, 4, 6, 12
and 16 faults per call do, 2, 5, 8, 11 and 23 do not, so halving from its budget of 23 ended at
one). So a size is used only once fault-free states at it reproduce the cache bit for bit (per
chain end, size and image chunk size); the budget's size is tried first, then the smaller sizes
of :func:`~hsiseu.faults.keras.partial.smaller_batches`, and one fault per call has the
reference's own shape. A partial last batch pays padding at the full size or rents a smaller
trusted size (:class:`~hsiseu.faults.keras.partial.PartialBatches`: ski rental).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.images import LoadedImages
from hsiseu.faults.keras.partial import PartialBatches, smaller_batches
from hsiseu.faults.keras.plan import Plan
from hsiseu.faults.keras.softmax import SoftmaxApart
from hsiseu.faults.keras.whole import WholeTail
from hsiseu.faults.shared import same_array_bits

log = logging.getLogger(__name__)

__all__ = ["DenseDownstream"]


class DenseDownstream:
    """The whole-tensor downstream of every chain end on the loaded images. ``values_of`` gives
    variables' stored values on the device; ``apart`` the closing softmax's split (None: it runs
    whole); ``stats`` the engine's counters, added to."""

    def __init__(self, graph: LayerGraph, images: LoadedImages,
                 values_of: Callable[[Sequence[keras.Variable]], list[Any]], apart: SoftmaxApart | None, *,
                 memory_bytes: float, max_batch: int, stats: Counter[str]) -> None:
        self.graph, self.images, self.values_of, self.apart = graph, images, values_of, apart
        self.memory_bytes, self.max_batch, self.stats = memory_bytes, max_batch, stats
        self.partial = PartialBatches()  # per (end, channel, images): the times behind partial batches
        self._budget: dict[str, int] = {}  # per faulty layer
        self._tails: dict[str, WholeTail] = {}
        self._trusted: dict[tuple, bool] = {}  # per compiled shape: whether it reproduces the cache
        self._sizes: dict[tuple, int] = {}  # per (end, channel, images): faults per call

    def tail(self, end: str) -> WholeTail:
        """The compiled downstream of ``end`` over whole tensors."""
        if end not in self._tails:
            self._tails[end] = WholeTail(self.graph, end, self.values_of, self.apart)
        return self._tails[end]

    def budget(self, plan: Plan) -> int:
        """Faults per downstream call that fit in the memory budget, each needing the peak of
        what is alive at once downstream of its chain end
        (:meth:`~hsiseu.faults.keras.graph.LayerGraph.live_peak`; the tiled skip tensors from the
        start), at most ``max_batch``."""
        if plan.layer not in self._budget:
            peak = self.graph.live_peak(plan.end, lambda n: 4 * math.prod(self.images.cache[n].shape))
            self._budget[plan.layer] = int(max(1, min(self.max_batch, self.memory_bytes // max(peak, 1))))
        return self._budget[plan.layer]

    def end_key(self, plan: Plan) -> tuple[str, bool, int]:
        """What a downstream's compiled shapes depend on: the chain end, whether faults come as
        channels, the loaded image chunk's size."""
        return plan.end, plan.channels, self.images.n

    def size(self, plan: Plan) -> int:
        """Faults per call from ``plan``'s chain end on the loaded chunk: the budget's size if
        that shape reproduces the cache fault-free, else the largest smaller one that does."""
        key = self.end_key(plan)
        if key not in self._sizes:
            k = self.budget(plan)
            t0 = time.perf_counter()
            for k in [k, *smaller_batches(k)]:
                if k == 1 or self.trusted(plan, k):
                    break
                self.stats["downstream_batch_refused"] += 1
            self._sizes[key] = k
            self.partial.price[key] = time.perf_counter() - t0
            if k < self.budget(plan):
                log.info("downstream of %s: %d faults per call (a batch of %d does not reproduce the cache)",
                         plan.end, k, self.budget(plan))
        return self._sizes[key]

    def trusted(self, plan: Plan, k: int) -> bool:
        """Whether the downstream of ``plan``'s chain end reproduces the cache at ``k`` faults
        per call (checked once per end, size and image chunk size)."""
        key = self._size_key(plan, k)
        if key not in self._trusted:
            self._trusted[key] = self._reproduces(plan, k)
        return self._trusted[key]

    def fitted(self, plan: Plan, n: int) -> tuple[int, int | None]:
        """Faults per call for a last batch of ``n`` waiting states, and the smaller size it
        rents if any."""

        def buy(r: int) -> bool:
            self.stats["downstream_rungs_bought"] += 1
            return self.trusted(plan, r)

        return self.partial.size(self.end_key(plan), n, self.size(plan),
                                 lambda r: self._trusted.get(self._size_key(plan, r)), buy)

    def __call__(self, plan: Plan, c: np.ndarray, states: np.ndarray, k: int
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """Classes (K, N, ...) and non-finite flags (K,) of ``k`` faulty states at ``plan``'s
        chain end (channels ``c``), or None where no call of that size is trusted."""
        if k == 1 and not self.trusted(plan, 1):
            return None
        tail = self.tail(plan.end)
        classes, flag, out = tail(states, c, self.images.cache, channel=plan.channels)
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

    def _size_key(self, plan: Plan, k: int) -> tuple:
        return (*self.end_key(plan), k)

    def _reproduces(self, plan: Plan, k: int) -> bool:
        tail = self.tail(plan.end)
        c = np.zeros(k, dtype=np.int32)
        _, _, scores = tail(self.images.states(plan.end, c, plan.channels), c, self.images.cache, channel=plan.channels)
        want = np.concatenate([self.images.host(tail.target())] * k)
        return same_array_bits(compiled.to_host(scores), want)
