"""The activation functions a study may name: Keras 3's element-wise built-ins.

The list is written out, not read from Keras, so that the workflow validates ``afs`` at start
without importing Keras (seconds per Snakemake start); ``tests/test_activations.py`` checks it
against the installed Keras, so a Keras release that adds or drops one fails the suite instead
of drifting. Keras's activations that are not element-wise are refused: the U-Net's blocks and
channel pruning assume that a channel's activation depends on that channel alone (a removed
channel carries ``AF(BN(0))``), which ``softmax`` and its kin break, and ``glu`` halves the
channel count.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["ACTIVATIONS", "CHANNEL_MIXING", "REFUSED", "af_label", "check_af", "check_afs", "kernel_initializer_name"]

#: Element-wise Keras 3 activations, with the label the tables and figures print.
ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "sigmoid": "Sigmoid",
    "hard_sigmoid": "Hard Sigmoid",
    "relu6": "ReLU6",
    "leaky_relu": "Leaky ReLU",
    "elu": "ELU",
    "selu": "SELU",
    "celu": "CELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "swish": "Swish",
    "hard_silu": "Hard SiLU",
    "hard_swish": "Hard Swish",
    "mish": "Mish",
    "tanh": "Tanh",
    "hard_tanh": "Hard Tanh",
    "softsign": "Softsign",
    "softplus": "Softplus",
    "sparse_plus": "SparsePlus",
    "squareplus": "Squareplus",
    "log_sigmoid": "Log Sigmoid",
    "sparse_sigmoid": "Sparse Sigmoid",
    "exponential": "Exponential",
    "linear": "Linear",
    "hard_shrink": "Hard Shrink",
    "soft_shrink": "Soft Shrink",
    "tanh_shrink": "Tanh Shrink",
}

#: Keras activations whose output at one channel depends on the others: a fault or a pruned
#: channel does not stay in its channel through them (the fault engines and the pruner's walk
#: stop there).
CHANNEL_MIXING = frozenset({"softmax", "log_softmax", "sparsemax"})

#: Keras activations the study cannot use, and why.
REFUSED: dict[str, str] = {
    **{name: "couples the channels (not element-wise)" for name in sorted(CHANNEL_MIXING)},
    "glu": "halves the channel count",
    "threshold": "needs arguments (threshold, default_value) that a name cannot carry",
}

# He init keeps the variance of ReLU-like (unbounded above, one-sided) activations stable,
# LeCun normal is what SELU's self-normalisation assumes; Glorot suits the saturating rest.
_HE = frozenset(
    {"relu", "relu6", "leaky_relu", "elu", "celu", "gelu", "silu", "swish", "hard_silu",
     "hard_swish", "mish", "softplus", "sparse_plus", "squareplus", "exponential"}
)
_LECUN = frozenset({"selu"})


def check_af(name: str, *, key: str = "afs") -> str:
    """``name`` if the study can use it; otherwise a ValueError naming it, ``key`` and the fix."""
    if name in ACTIVATIONS:
        return name
    if name in REFUSED:
        raise ValueError(f"{key}: activation {name!r} cannot be used: it {REFUSED[name]}")
    close = difflib.get_close_matches(str(name), list(ACTIVATIONS), n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"{key}: {name!r} is not a Keras 3 element-wise activation{hint} "
        f"(known: {', '.join(ACTIVATIONS)})"
    )


def check_afs(names: Iterable[str], *, key: str = "afs") -> list[str]:
    """Every name checked, duplicates refused (each AF is one wildcard value and one column)."""
    names = list(names)
    for name in names:
        check_af(name, key=key)
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"{key} lists {', '.join(sorted(seen))} more than once")
    return names


def af_label(name: str) -> str:
    """How tables and figures print an AF (the name itself when it is not a known one)."""
    return ACTIVATIONS.get(name, name)


def kernel_initializer_name(name: str) -> str:
    """The Keras initializer conventional for ``name``: he_normal, lecun_normal or glorot_uniform."""
    if name in _HE:
        return "he_normal"
    if name in _LECUN:
        return "lecun_normal"
    return "glorot_uniform"
