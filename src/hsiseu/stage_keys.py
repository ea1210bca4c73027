"""Which config keys each job of the workflow reads: the one table behind the Snakemake params
and ``dvc.yaml``.

A job's outputs are stale exactly when one of the keys it reads changes, so the table is what
makes editing a late stage's setting re-run that stage only. Snakemake hands each job the
sub-config :func:`job_config` cuts from it (``params: config=``), and ``tests/test_dvc_params.py``
checks that every ``dvc.yaml`` stage lists :func:`dvc_keys` of its rules, and nothing else.

Key syntax: dotted paths into the config; ``{af}`` is the job's AF, resolved through
:func:`hsiseu.settings.per_af` (its own entry or ``default``); a trailing ``[:k]`` keeps the
first ``k`` entries (pruning iteration ``k`` reads the ratios up to its own); a ``quantized:``
prefix marks a key read only by the int8 stage's jobs. A job of a model stage gets the per-stage
keys (:data:`hsiseu.settings.PER_STAGE_KEYS`) resolved to its stage's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hsiseu.settings import PER_AF_KEYS, lookup, per_af, replicate_config, stage_config

__all__ = ["READS", "STAGES", "dvc_keys", "job_config"]

#: The model stages every AF goes through, in order: each has its own metrics and fault campaign.
STAGES: tuple[str, ...] = ("original", "pruned", "quantized")

_SCORING = ("seed", "threads", "data", "model")
# not training.verbose: the scripts pass it on from the whole config, since progress output
# cannot change a model
_TRAINING = ("training.batch_size", "training.learning_rate", "training.class_weighting", "training.monitor")
_EVALUATION = (*_SCORING, "training.batch_size")  # scoring a model on a split: data and batching
_FAULT_LIST = (
    "seed", "data", "faults.seed", "faults.sampling", "faults.bits", "faults.include_bn_moving_stats",
    "faults.include_int8_constants",
)

#: rule -> the config keys its jobs read.
READS: dict[str, tuple[str, ...]] = {
    "train": (*_SCORING, "training.epochs.{af}", *_TRAINING),
    # the sensitivity cache survives edits of the fine-tuning and the ratios
    "prune_sensitivity": (*_EVALUATION, "pruning.sparsities", "pruning.metric"),
    "prune_iteration": (
        *_SCORING, *_TRAINING, "pruning.ratios.{af}[:k]", "pruning.flops_tolerance",
        "pruning.finetune.epochs.{af}", "pruning.finetune.learning_rate", "pruning.acceptance",
    ),
    "prune": (*_EVALUATION, "pruning.metric", "pruning.ratios.{af}", "pruning.acceptance"),
    # the throughput settings are left out, so that changing them re-times without re-quantizing
    "quantize": (
        *_EVALUATION, "quantization.representative_samples", "quantization.kernels",
        "quantization.recovery",
    ),
    "throughput": (*_EVALUATION, "quantization.kernels", "quantization.fps_threads", "quantization.fps_repeats"),
    # not the engine, shard or checkpoint settings, which cannot change an outcome
    "fault_list": _FAULT_LIST,
    "fault_merge": _FAULT_LIST,
    # the test images, how many go into one model call (the reference's batch), and the int8
    # kernels, which define the int8 model's outcomes
    "fault_shard": (*_FAULT_LIST, "faults.test_images", "faults.image_chunk", "quantized:quantization.kernels"),
}
#: faults.shards = 1: the three campaign steps in one job, which reads what they read
READS["fault_campaign"] = READS["fault_shard"]


def _parse(key: str) -> tuple[str | None, str, bool]:
    """(stage it is limited to, dotted path, whether it is cut to the first k entries)."""
    path = key.removesuffix("[:k]")
    cut = path != key
    stage, _, path = path.rpartition(":")
    return stage or None, path, cut


def job_config(
    config: Mapping[str, Any], rule: str, *, af: str | None = None, stage: str | None = None,
    k: int | None = None, rep: int | None = None,
) -> dict[str, Any]:
    """The part of ``config`` that ``rule``'s job for (af, stage, k) of replicate ``rep`` reads,
    nested as in the config (the replicate's seeds in place of the config's:
    :func:`hsiseu.settings.replicate_config`; the stage's value of a per-stage key)."""
    if rep is not None:
        config = replicate_config(config, rep)
    out: dict[str, Any] = {}
    for key in READS[rule]:
        only, path, cut = _parse(key)
        if only is not None and stage != only:
            continue
        parts = path.split(".")
        if parts[-1] == "{af}":
            value = per_af(config, ".".join(parts[:-1]), str(af))
            parts[-1] = str(af)
        else:
            value = lookup(config, path)
        if cut:
            value = list(value)[: int(k)]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return stage_config(out, stage) if stage is not None else out


def dvc_keys(rule: str) -> list[str]:
    """The ``dvc.yaml`` params that stand for ``rule``'s keys: DVC cannot resolve a ``default``
    entry, so a per-AF key is listed whole (editing one AF's entry re-runs every AF's stage under
    ``dvc repro``, where Snakemake re-runs only that AF's jobs)."""
    keys = []
    for key in READS[rule]:
        _, path, _ = _parse(key)
        if path.endswith(".{af}"):
            path = path.removesuffix(".{af}")
            assert path in PER_AF_KEYS, path
        if path not in keys:
            keys.append(path)
    return keys
