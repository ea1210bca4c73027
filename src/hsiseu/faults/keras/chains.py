"""Steps 1 and 2 of the fast engine (:mod:`~hsiseu.faults.keras.fast`): the faulty layer and its
channel chain, called on the fault-free input with several faults per call.

Why batches of distinct channels: with a channel rule, output channel c of the faulty layer
depends on the weights' slice c only, so faults in distinct channels share one copy of the
weights, each flip in its own channel, and one call at the fault-free shapes gives each its
faulty channel (first fit over the faults, in their order). Why several batches to a call: where
every layer of the chain with weights holds its output channel on each weight's last axis, copies
of the chain run side by side in one call of a wider chain (:mod:`~hsiseu.faults.keras.copies`),
as many as the memory budget holds of its largest tensor. Each width is trusted only once ``k``
fault-free copies reproduce the cached chain end bit for bit (per layer, width and image chunk
size); a chain that does not, even alone, sends its faults to the reference loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np

from hsiseu.faults.bitflip import flip_at
from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras.copies import ChainCopies, side_by_side
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.images import LoadedImages
from hsiseu.faults.keras.plan import Plan
from hsiseu.faults.keras.softmax import next_rung, rung_at_least
from hsiseu.faults.shared import same_bits

log = logging.getLogger(__name__)

__all__ = ["FaultyChains"]


class FaultyChains:
    """The chain calls of each faulty layer on the loaded images. ``stored(v)`` is variable
    ``v``'s fault-free value on the host; ``shapes`` each parameter set's shape; ``stats`` and
    ``seconds`` the engine's counters, added to."""

    def __init__(self, graph: LayerGraph, images: LoadedImages, stored: Callable[[keras.Variable], np.ndarray],
                 shapes: dict[str, tuple[int, ...]], *, memory_bytes: float, max_batch: int,
                 stats: Counter[str], seconds: Counter[str]) -> None:
        self.graph, self.images, self.stored, self.shapes = graph, images, stored, shapes
        self.memory_bytes, self.max_batch = memory_bytes, max_batch
        self.stats, self.seconds = stats, seconds
        self._widths: dict[str, int] = {}  # per faulty layer: most batches side by side in one call
        self._calls: dict[tuple, ChainCopies | None] = {}  # per (layer, width, images): trusted copies or None

    def channel_of(self, plan: Plan, fault: Fault) -> int:
        return plan.channel_of(fault, self.shapes[fault.set])

    def batches(self, plan: Plan, faults: Sequence[Fault], group: list[int]) -> list[list[int]]:
        """The group's faults in batches that share one chain call: distinct channels (first
        fit), or one fault per batch for a layer without a channel rule."""
        if not plan.channels:
            return [[i] for i in group]
        batches: list[tuple[list[int], set[int]]] = []
        for i in group:
            c = self.channel_of(plan, faults[i])
            for members, used in batches:
                if c not in used:
                    members.append(i)
                    used.add(c)
                    break
            else:
                batches.append(([i], {c}))
        return [members for members, _ in batches]

    def copies_per_call(self, plan: Plan) -> int:
        """How many batches of ``plan``'s faults share one chain call: several where the chain's
        layers with weights run side by side, as many as the memory budget holds of its largest
        tensor (at most ``max_batch``, a size of the ladder)."""
        if plan.layer not in self._widths:
            most = 1
            if plan.channels and all(side_by_side(layer) for layer in self._layers(plan) if layer.weights):
                cache = self.images.cache
                largest = max(4 * math.prod(cache[n].shape) for n in [plan.input, *plan.chain])
                fit = min(self.max_batch, self.memory_bytes // largest)
                while next_rung(most) <= fit:
                    most = next_rung(most)
            self._widths[plan.layer] = most
        return self._widths[plan.layer]

    def outputs(self, plan: Plan, faults: Sequence[Fault], parts: list[list[int]]
                ) -> Iterator[tuple[list[int], np.ndarray | None]]:
        """Each batch of faults with the chain end's output it gives (None: the chain is not
        trusted), several batches to a call where the layer's copies run side by side."""
        most = self.copies_per_call(plan)
        x_in = self.images.cache[plan.input]
        for a in range(0, len(parts), most):
            group = parts[a:a + most]
            t0 = time.perf_counter()
            flips = [self._flipped(plan, [faults[i] for i in part]) for part in group]
            wide = self._call(plan, rung_at_least(len(group)))
            if wide is not None:
                outs = list(wide(flips, x_in))
            else:  # one call per batch, where the chain itself is trusted
                narrow = self._call(plan, 1) if len(group) > 1 else None
                outs = [None if narrow is None else narrow([flip], x_in)[0] for flip in flips]
            self.stats["chain_runs"] += 1 if wide is not None else len(group)
            self.stats["chain_batches_side_by_side"] += len(group) if wide is not None and wide.k > 1 else 0
            self.seconds[f"chain:{plan.layer}"] += time.perf_counter() - t0
            yield from zip(group, outs)

    def _layers(self, plan: Plan) -> list[keras.layers.Layer]:
        return [self.graph.nodes[n].layer for n in plan.chain]

    def _flipped(self, plan: Plan, faults: Sequence[Fault]) -> dict[int, np.ndarray]:
        """Host copies of the faulty layer's weights that ``faults`` flip, by position in its
        weights, with every fault flipped (in distinct channels: they never meet)."""
        weights = self.graph.nodes[plan.layer].layer.weights
        at = {v.name: i for i, v in enumerate(weights)}
        copied: dict[int, np.ndarray] = {}
        for fault in faults:
            i = at[fault.set.split("/", 1)[1]]
            if i not in copied:
                copied[i] = self.stored(weights[i]).copy()
            flip_at(copied[i], fault.index, fault.bit)
        return copied

    def _call(self, plan: Plan, k: int) -> ChainCopies | None:
        """The chain's ``k`` copies side by side (``k = 1``: the chain itself), where ``k``
        fault-free copies reproduce the cache bit for bit (checked once per layer, width and
        image chunk size); None where they do not."""
        key = (plan.layer, k, self.images.n)
        if key not in self._calls:
            layers = self._layers(plan)
            stored = [[self.stored(v) for v in layer.weights] for layer in layers]
            call = ChainCopies(layers, k, stored[0], [a for weights in stored[1:] for a in weights])
            out = call([{}] * k, self.images.cache[plan.input])
            trusted = same_bits(out, np.broadcast_to(self.images.host(plan.end), out.shape)).all()
            self._calls[key] = call if trusted else None
            if not trusted:
                log.info("%d copies of the chain of %s do not reproduce the cache: %s", k, plan.layer,
                         "one call per batch" if k > 1 else "reference loop")
        return self._calls[key]
