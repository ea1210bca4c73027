"""The TensorFlow a job runs on: which build is installed, and the set-up every job makes.

Which build is answered from the installed distributions, without importing TensorFlow
(seconds), because the SLURM profile asks it on the login node for every training job it
submits: a GPU is requested only where the installed TensorFlow can use one. Both builds
install the same ``tensorflow`` package directory, so two of them side by side overwrite each
other's files; that is reported, never guessed around. The set-up (threads, determinism, seeds,
the device log) is one function, so that training, pruning, quantization, the fault engines and
the benchmarks make the same one.
"""

from __future__ import annotations

import atexit
import functools
import gc
import logging
from importlib import metadata

__all__ = ["TENSORFLOW_DISTRIBUTIONS", "check_single_tensorflow", "configure_tensorflow",
           "tensorflow_can_use_gpu", "tensorflow_distributions"]

log = logging.getLogger(__name__)

#: PyPI distributions that install the ``tensorflow`` package.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")

#: What the ``gpu`` extra (``tensorflow[and-cuda]``) adds, and TensorFlow's GPU kernels load.
_CUDA_MARKER = "nvidia-cudnn-cu12"


def _installed() -> set[str]:
    return {str(d.metadata["Name"]).lower().replace("_", "-") for d in metadata.distributions()}


def tensorflow_distributions(names: set[str] | None = None) -> list[str]:
    """The TensorFlow distributions installed (or among ``names``), in
    :data:`TENSORFLOW_DISTRIBUTIONS` order."""
    names = _installed() if names is None else names
    return [name for name in TENSORFLOW_DISTRIBUTIONS if name in names]


def check_single_tensorflow() -> None:
    """Raise RuntimeError naming the fix when both TensorFlow builds are installed."""
    found = tensorflow_distributions()
    if len(found) > 1:
        raise RuntimeError(
            f"both {' and '.join(found)} are installed; they share the tensorflow package directory "
            "and overwrite each other's files. Fix: pip uninstall -y tensorflow tensorflow-cpu, "
            "then pip install -e . (CPU) or pip install -e '.[gpu]' (GPU)"
        )


def tensorflow_can_use_gpu() -> bool:
    """Whether the installed TensorFlow has its CUDA libraries: the ``gpu`` extra's
    ``tensorflow[and-cuda]``. A ``tensorflow`` build relying on a cluster's own CUDA modules is
    not detectable here; HSISEU_SLURM_GPUS=1 asks for a GPU anyway (docs/cluster.md)."""
    names = _installed()  # one scan of the installed metadata
    return tensorflow_distributions(names) == ["tensorflow"] and _CUDA_MARKER in names


def configure_tensorflow(threads: int | None = None, seed: int | None = None) -> None:
    """Make runs repeatable: fixed seeds, deterministic kernels, a fixed thread count.

    Must run before TensorFlow executes its first op (thread pools are fixed then).
    """
    check_single_tensorflow()
    import tensorflow as tf

    _exit_without_last_collection()

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process (tests): keep going
            log.debug("TensorFlow thread pools already initialised")
    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        import keras

        keras.utils.set_random_seed(int(seed))
    # where the job's work runs: a GPU the installed TensorFlow sees, else the CPU (logged, so
    # that a cluster job that asked for a GPU shows whether it got to use it)
    gpus = tf.config.list_physical_devices("GPU")
    log.info("TensorFlow %s on %s; intra-op threads %s", tf.__version__,
             ", ".join(g.name for g in gpus) if gpus else "CPU (no GPU visible to TensorFlow)",
             threads or "TensorFlow's default")


@functools.cache
def _exit_without_last_collection() -> None:
    """Freeze the garbage collector once this process's exit handlers run.

    Why: at exit the interpreter's last collection walks TensorFlow's and Keras's object graphs
    (traced functions, graphs, layers), about a second of every job, command and campaign
    worker on a 2-core CPU, and nothing it would free outlives the process. Frozen objects are
    left to the operating system. Nothing is lost: every file the project writes is closed (and
    renamed into place) by the ``with`` block that wrote it, before exit (cached: registered
    once)."""
    atexit.register(gc.freeze)
