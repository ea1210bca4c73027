"""Which TensorFlow build the environment holds, read from the installed distributions.

Answered without importing TensorFlow (seconds), because the SLURM profile asks it on the login
node for every training job it submits: a GPU is requested only where the installed TensorFlow
can use one. Both builds install the same ``tensorflow`` package directory, so two of them side
by side overwrite each other's files; that is reported, never guessed around.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["TENSORFLOW_DISTRIBUTIONS", "check_single_tensorflow", "tensorflow_can_use_gpu", "tensorflow_distributions"]

#: PyPI distributions that install the ``tensorflow`` package.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")

#: What the ``gpu`` extra (``tensorflow[and-cuda]``) adds, and TensorFlow's GPU kernels load.
_CUDA_MARKER = "nvidia-cudnn-cu12"


def _installed() -> set[str]:
    return {str(d.metadata["Name"]).lower().replace("_", "-") for d in metadata.distributions()}


def tensorflow_distributions() -> list[str]:
    """The TensorFlow distributions installed, in :data:`TENSORFLOW_DISTRIBUTIONS` order."""
    names = _installed()
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
    names = _installed()
    return tensorflow_distributions() == ["tensorflow"] and _CUDA_MARKER in names
