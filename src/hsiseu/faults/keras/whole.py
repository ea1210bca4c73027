"""Downstream of a chain end over whole tensors: the general path, for any later layers.

K faulty states at the chain end E (each one channel of E's output, or the whole of it for a
layer without a channel rule) are written over the cached fault-free output, faults x images on
the batch axis; a Keras sub-model from E to the model's output (plus the cached skip tensors the
layers after E still read, tiled K times) runs them in one compiled call, and a fused one takes
the class map with the NaN rule. Where the closing softmax runs apart
(:mod:`~hsiseu.faults.keras.softmax`), the sub-model stops at the logits and the flag says which
pixels the logits decide. Compiled once per (faults per call, images, softmax apart or not);
whether a shape reproduces the cache is the engine's check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from hsiseu.faults.keras import compiled
from hsiseu.faults.keras.classmap import decision
from hsiseu.faults.keras.graph import LayerGraph
from hsiseu.faults.keras.softmax import SoftmaxApart

__all__ = ["WholeTail"]


def _scatter(gold: Any, cols: Any, c: Any, k: int) -> Any:
    """(K * N, ..., C): the fault-free tensor with fault j's channel c[j] replaced by cols[j]."""
    ops = keras.ops
    channels = int(gold.shape[-1])
    mask = ops.reshape(ops.one_hot(c, channels, dtype="bool"), (k,) + (1,) * (len(gold.shape) - 1) + (channels,))
    y = ops.where(mask, ops.expand_dims(cols, -1), ops.expand_dims(gold, 0))
    return ops.reshape(y, (k * int(gold.shape[0]),) + tuple(gold.shape[1:]))


class WholeTail:
    """The layers after chain end ``end`` over whole tensors. ``values_of`` gives the stored
    values of variables; ``apart``, the closing softmax's split (None: it runs whole)."""

    def __init__(self, graph: LayerGraph, end: str, values_of: Callable[[Sequence[keras.Variable]], list[Any]],
                 apart: SoftmaxApart | None) -> None:
        self.graph, self.end, self.apart = graph, end, apart
        self.values_of = values_of
        self.skips = graph.frontier(end)  # the cached tensors the layers after ``end`` still read
        self._fns: dict[tuple[bool, int, int, bool], tuple[Callable[..., Any], list[Any]]] = {}

    def split(self, apart: bool = True) -> bool:
        """Whether this downstream leaves the closing softmax apart (``apart=False``: never)."""
        return apart and self.apart is not None and self.end != self.graph.output and self.apart.agrees

    def target(self, apart: bool = True) -> str:
        """The layer whose output this downstream returns: the logits where the softmax runs
        apart, else the model's output."""
        return self.apart.logits if self.split(apart) else self.graph.output

    def __call__(self, states: Any, c: Any, cache: Mapping[str, Any], *, channel: bool, apart: bool = True):
        """The downstream of K = ``len(c)`` faulty states (K, N, ...) at ``end``, or of channels
        ``c`` of ``end``'s cached output where ``channel`` (``cache``: the fault-free tensors of
        the loaded images, ``end``'s and the skips'): per-pixel classes, flag and scores or
        logits (:meth:`_fn`)."""
        gold = cache[self.end]
        fn, values = self._fn(channel, int(c.shape[0]), int(gold.shape[0]), apart)
        return fn(values, compiled.to_device(states), compiled.to_device(c), gold, [cache[s] for s in self.skips])

    def _fn(self, channel: bool, k: int, n: int, apart: bool = True) -> tuple[Callable[..., Any], list[Any]]:
        """The compiled ``run(values, states, c, gold, skip_values)`` for ``k`` faulty states
        on ``n`` images (channels ``c`` of ``gold``, E's cached output, where ``channel``, else
        whole states), giving per-pixel classes (K * N, ...), a per-pixel flag and the scores
        or logits (the flag: whether the logits decide the pixel's class where the softmax runs
        apart, else whether a score is non-finite); and the values it takes."""
        split = self.split(apart)
        key = (channel, k, n, split)
        if key not in self._fns:
            g, target = self.graph, self.target(apart)
            if self.end == target:
                tail, variables = None, []
            else:
                ins = [g.nodes[self.end].layer.output] + [g.nodes[s].layer.output for s in self.skips]
                tail = keras.Model(ins, g.nodes[target].layer.output)
                variables = list(tail.variables)

            def downstream(values, states, c, gold, skip_values):
                ops = keras.ops
                if channel:
                    y = _scatter(gold, states, c, k)
                else:
                    y = ops.reshape(states, (k * n,) + tuple(gold.shape[1:]))
                if tail is None:
                    return y
                tiled = [ops.tile(s, (k,) + (1,) * (len(s.shape) - 1)) for s in skip_values]
                with compiled.stateless(variables, values):
                    return tail([y, *tiled], training=False)

            layers, decide = compiled.compile_fn(downstream), decision(split)

            def run(*args):
                scores = layers(*args)
                return (*decide(scores), scores)

            self._fns[key] = (run, self.values_of(variables))
        return self._fns[key]
