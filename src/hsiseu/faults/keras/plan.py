"""How the faults of one layer run through the fast engine: the layer, its channel rule and the
chain of pass-through layers after it, whose last layer is the chain end.

Why one object: the faulty layer's calls (:mod:`~hsiseu.faults.keras.chains`), the downstream's
batch sizes (:mod:`~hsiseu.faults.keras.dense`) and the engine all key their compiled functions
and their checks by it, so it is decided once per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsiseu.faults.faultlist import Fault
from hsiseu.faults.keras.graph import ChannelRule, LayerGraph, channel_rule

__all__ = ["Plan", "plan_of"]


@dataclass
class Plan:
    """How the faults of one layer are run."""

    layer: str
    rule: ChannelRule | None  # None: the layer's whole output changes
    chain: list[str]  # the layer, then the pass-through layers up to the chain end
    input: str

    @property
    def end(self) -> str:
        return self.chain[-1]

    @property
    def channels(self) -> bool:
        """Whether a fault changes one channel at the chain end (else the whole tensor)."""
        return self.rule is not None

    def channel_of(self, fault: Fault, shape: tuple[int, ...]) -> int:
        """The output channel a fault in a weight of ``shape`` changes (channel rule only)."""
        axis = self.rule.axes[fault.set.split("/", 1)[1]] % len(shape)
        return int(np.unravel_index(fault.index, shape)[axis])


def plan_of(graph: LayerGraph, layer_name: str) -> Plan | None:
    """The plan of a layer's faults; None where the layer takes several inputs (the reference
    loop runs those)."""
    node = graph.nodes[layer_name]
    if len(node.inputs) != 1:
        return None
    rule = channel_rule(node.layer)
    if rule is not None and not {v.name for v in node.layer.weights} <= set(rule.axes):
        rule = None
    chain = graph.channel_chain(layer_name) if rule is not None else [layer_name]
    return Plan(layer_name, rule, chain, node.inputs[0])
