"""The one place that knows which Keras backend runs: compile a function, move arrays, name the
device.

The engines are written against ``keras.ops`` and the layers' own ``call``; this adapter gives
them a compiler (``tf.function`` on TensorFlow, ``jax.jit`` on JAX; PyTorch runs eagerly) and
host transfers, so the same engine runs a campaign on TensorFlow's CPU kernels or on a GPU under
JAX or PyTorch. Compiled functions take every array as an argument (never a captured constant),
so no compiler folds a weight-only expression at compile time with other rounding than at run
time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["backend_name", "exact_graphs", "compile_fn", "compile_fused", "to_device", "to_host", "device_name", "stateless", "with_values", "model_caller"]


def backend_name() -> str:
    return keras.backend.backend()


#: TensorFlow graph rewrites that reassociate floating-point arithmetic across layers (found by
#: bisection: each alone makes ``act(bn(x))`` round differently inside a larger graph than as a
#: graph of its own, for Keras's hard sigmoid ``relu6(x + 3) / 6`` after BatchNorm).
REASSOCIATING_REWRITES = ("arithmetic_optimization", "constant_folding")


def exact_graphs() -> None:
    """Make every compiled function compute exactly the ops Keras emits, as eager execution
    does: with TensorFlow's reassociating rewrites on, a value depends on which graph it is
    computed in, so no part of a model could reproduce the whole. Call before compiling
    anything that fault-injection results are compared across (the reference loop included).
    Other backends do not reassociate floating point by default."""
    if backend_name() == "tensorflow":
        import logging

        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({name: False for name in REASSOCIATING_REWRITES})
        # The engines compile one function per faulty layer and shape, each traced once; TensorFlow
        # counts the traces of every closure of the same code together and warns of "retracing".
        logging.getLogger("tensorflow").addFilter(lambda r: "triggered tf.function retracing" not in r.getMessage())


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled for the running backend (one trace per argument shape)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, autograph=False)
    if name == "jax":
        import jax

        return jax.jit(fn)
    return fn


def compile_fused(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled with its elementwise ops fused (XLA; ``jax.jit`` is anyway): one pass
    over memory instead of one per op. Only for functions that compute no layer's arithmetic
    (comparisons and selections, a margin test with room to spare), whose results do not
    depend on how the compiler rounds. Falls back to :func:`compile_fn` where TensorFlow
    cannot compile it with XLA."""
    if backend_name() != "tensorflow":
        return compile_fn(fn)
    import tensorflow as tf

    fused, plain = tf.function(fn, autograph=False, jit_compile=True), None

    def call(*args):
        nonlocal fused, plain
        if fused is not None:
            try:
                return fused(*args)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
                fused = None
        plain = plain or compile_fn(fn)
        return plain(*args)

    return call


def to_device(a: Any) -> Any:
    if backend_name() == "tensorflow" and isinstance(a, np.ndarray):
        import tensorflow as tf

        return tf.constant(a)  # a third of keras.ops.convert_to_tensor's 30 us on a small array
    return keras.ops.convert_to_tensor(a)


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array; on TensorFlow a read-only view of the tensor's own buffer
    (``convert_to_numpy`` copies: 0.8 ms for a 9 MiB row of pixel vectors)."""
    if backend_name() == "tensorflow":
        return np.asarray(a)
    return np.asarray(keras.ops.convert_to_numpy(a))


def device_name() -> str:
    """Where the backend places new arrays: e.g. ``tensorflow:/CPU:0`` or ``jax:cuda:0``."""
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return f"tensorflow:{tf.constant(0.0).device.split('device:')[-1]}"
        if name == "jax":
            import jax

            return f"jax:{jax.devices()[0]}"
        if name == "torch":
            import torch

            return f"torch:{'cuda:0' if torch.cuda.is_available() else 'cpu'}"
    except Exception as err:  # the name is informative only
        return f"{name}:unknown ({err})"
    return name


def stateless(variables: Sequence[keras.Variable], values: Sequence[Any]):
    """A scope in which ``variables`` read as ``values`` (Keras's own stateless mechanism)."""
    return keras.StatelessScope(state_mapping=list(zip(variables, values)))


def with_values(fn: Callable[..., Any], variables: Sequence[keras.Variable]) -> Callable[..., Any]:
    """``fn(*args, training=False)`` as a function of ``variables``' values first: weights are
    arguments of a compiled function, never captured constants."""

    def run(values, *args):
        with stateless(variables, values):
            return fn(*args, training=False)

    return run


def model_caller(model: keras.Model) -> Callable[[Any], Any]:
    """The model compiled once, reading its variables' current values at every call: what a
    user writes to evaluate a model repeatedly (``tf.function(model.__call__)`` on TensorFlow;
    on JAX, whose compiled functions would freeze captured weights, the current values are
    passed in as arguments)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        call = tf.function(model.__call__)
        return lambda x: call(x, training=False)
    variables = list(model.variables)
    compiled = compile_fn(with_values(model, variables))
    return lambda x: compiled([v.value for v in variables], x)
