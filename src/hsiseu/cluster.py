"""What the SLURM profile asks of the cluster it runs on.

`profiles/slurm/config.yaml` evaluates these functions (as Snakemake resource expressions) when
it submits a training job, so that one profile serves clusters with and without GPUs: where a
partition offers a `gpu` GRES, training asks for GPUs there; elsewhere it asks for none and
runs on the default partition, instead of being rejected by `sbatch`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from hsiseu.runtime import tensorflow_can_use_gpu

GPUS_ENV = "HSISEU_SLURM_GPUS"


def gpu_partitions(sinfo_text: str) -> list[str]:
    """Partitions that offer a `gpu` GRES, default partition first.

    `sinfo_text` is the output of `sinfo -h -o "%P %G"`: one line per partition and GRES set,
    e.g. `gpu gpu:a100:4(S:0-1)` or `debug* (null)` (`*` marks the default partition).
    """
    found: list[str] = []
    default: str | None = None
    for line in sinfo_text.splitlines():
        fields = line.split(None, 1)
        if len(fields) != 2:
            continue
        name, gres = fields
        is_default = name.endswith("*")
        name = name.rstrip("*")
        if not any(item.split(":", 1)[0] == "gpu" for item in gres.split(",")):
            continue
        if is_default:
            default = name
        if name not in found:
            found.append(name)
    if default is not None:
        found.remove(default)
        found.insert(0, default)
    return found


@functools.lru_cache(maxsize=1)
def _cluster_gpu_partitions() -> tuple[str, ...]:
    # One sinfo call per Snakemake process: the answer does not change during a run.
    if shutil.which("sinfo") is None:
        return ()
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return ()
    return tuple(gpu_partitions(out))


def requested_gpus() -> int:
    """GPUs per training job: the HSISEU_SLURM_GPUS environment variable (0 = none); unset, 1 where
    the installed TensorFlow can use a GPU (the ``gpu`` extra) and 0 where it cannot
    (``tensorflow`` without CUDA libraries), so that no GPU hours go to a CPU-only build."""
    raw = os.environ.get(GPUS_ENV)
    if raw is None:
        return 1 if tensorflow_can_use_gpu() else 0
    try:
        gpus = int(raw)
    except ValueError:
        raise ValueError(f"{GPUS_ENV}={raw!r}: expected a whole number of GPUs (0 = none)") from None
    if gpus < 0:
        raise ValueError(f"{GPUS_ENV}={raw!r}: must not be negative")
    return gpus


def gpu_request(partitions: Sequence[str], gpus: int) -> tuple[str, str]:
    """(partition, gres) of a job wanting `gpus` GPUs, given the cluster's GPU partitions.

    ("", "") = no GPU: the cluster's default partition and no `--gres`, so that the same profile
    submits to clusters without GPUs instead of being rejected by `sbatch`.
    """
    if not partitions or gpus == 0:
        return "", ""
    return partitions[0], f"gpu:{gpus}"


def training_partition() -> str:
    """The partition for training jobs: the first one with GPUs, or "" (the cluster's default)."""
    return gpu_request(_cluster_gpu_partitions(), requested_gpus())[0]


def training_gres() -> str:
    """The `--gres` of training jobs: `gpu:<n>` where a GPU partition exists, else "" (none)."""
    return gpu_request(_cluster_gpu_partitions(), requested_gpus())[1]
