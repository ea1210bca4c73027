"""Config-level entry points of the campaign, one per workflow step (the scripts call these).

Here the config's ``faults`` section meets the data: the test images (the first
``faults.test_images`` of the test split), their labels, and the backend for the stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hsiseu import settings
from hsiseu.faults import campaign
from hsiseu.faults.backend import Backend
from hsiseu.faults.registry import open_backend

log = logging.getLogger(__name__)

__all__ = ["test_data", "backend_for", "with_engine_settings", "fault_list", "shard", "merge", "whole_campaign"]


def test_data(config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The test images and labels a campaign evaluates on."""
    from hsiseu.data import load_split

    x, y = load_split(config["data"]["root"], "test", **settings.data_kwargs(config))
    n = config["faults"].get("test_images")
    if n is not None:
        if int(n) > len(x):
            raise ValueError(f"faults.test_images = {n} but the test split has only {len(x)} images")
        x, y = x[: int(n)], y[: int(n)]
    return x, y


def backend_for(config: Mapping[str, Any], stage: str, model_path: str | os.PathLike[str],
                x: np.ndarray, threads: int | None = None) -> Backend:
    from hsiseu.runtime import configure_tensorflow

    configure_tensorflow(threads, int(config["seed"]))
    options = dict(config["faults"])
    if "kernels" in config.get("quantization", {}):
        options["kernels"] = config["quantization"]["kernels"]
    return open_backend(stage, model_path, x, options)


def with_engine_settings(job_config: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign job's config with the engine, batch and checkpoint settings of the whole
    ``config`` added: they cannot change an outcome (the engines are proven equal), so they are
    not among the keys the job reads, and editing them does not rerun finished campaigns."""
    return {**job_config, "faults": {**config["faults"], **job_config["faults"]}}


def fault_list(config: Mapping[str, Any], stage: str, model_path: str | os.PathLike[str], *,
               out_faults: str | os.PathLike[str], out_sets: str | os.PathLike[str], threads: int | None = None,
               backend: Backend | None = None) -> None:
    """``backend``: one already open on the model (the whole campaign's job lists and runs on one)."""
    f = config["faults"]
    if backend is None:
        x, _ = test_data(config)
        # the list needs the parameter sets only: the reference engine builds nothing else
        backend = backend_for({**config, "faults": {**f, "engine": "reference"}}, stage, model_path, x[:1], threads)
    campaign.write_fault_list(backend, sampling=f["sampling"], bits=f.get("bits"), seed=int(f["seed"]),
                              out_faults=out_faults, out_sets=out_sets)


def shard(config: Mapping[str, Any], stage: str, model_path: str | os.PathLike[str], *,
          faults_path: str | os.PathLike[str], shard: int, n_shards: int, out: str | os.PathLike[str],
          threads: int | None = None, opened: tuple[Backend, np.ndarray] | None = None) -> None:
    """``opened``: a backend already open on the campaign's test images, and their labels (the
    whole campaign's job lists and runs on one)."""
    f = config["faults"]
    if opened is None:
        x, y = test_data(config)
        opened = backend_for(config, stage, model_path, x, threads), y
    backend, labels = opened
    campaign.run_shard(backend, faults_path=faults_path, labels=labels, shard=shard, n_shards=n_shards, out=out,
                       chunk_size=int(f["checkpoint_faults"]), sampling=f["sampling"], bits=f.get("bits"))
    stats = getattr(getattr(backend, "engine", None), "stats", None)
    if stats:
        log.info("engine stats: %s", dict(sorted(stats.items())))


def merge(config: Mapping[str, Any], shards: Sequence[str], *, faults_path: str, sets_path: str, out_outcomes: str,
          out_cells: str, out_faults_run: str) -> None:
    f = config["faults"]
    campaign.merge_shards(shards, faults_path=faults_path, sets_path=sets_path, out_outcomes=out_outcomes,
                          out_cells=out_cells, sampling=f["sampling"], bits=f.get("bits"),
                          out_faults_run=out_faults_run)


def whole_campaign(config: Mapping[str, Any], stage: str, model_path: str | os.PathLike[str], *,
                   out_faults: str, out_sets: str, out_shard: str, out_outcomes: str, out_cells: str,
                   out_faults_run: str, threads: int | None = None) -> None:
    """List, run as the one shard and merge in one process: with ``faults.shards: 1`` the three
    steps' separate jobs cost three interpreter and TensorFlow start-ups per campaign, more than
    a small model's list and merge themselves; and one backend lists and runs. Same files, same
    bytes as the three jobs."""
    x, y = test_data(config)
    backend = backend_for(config, stage, model_path, x, threads)
    fault_list(config, stage, model_path, out_faults=out_faults, out_sets=out_sets, backend=backend)
    shard(config, stage, model_path, faults_path=out_faults, shard=0, n_shards=1, out=out_shard,
          opened=(backend, y))
    merge(config, [out_shard], faults_path=out_faults, sets_path=out_sets, out_outcomes=out_outcomes,
          out_cells=out_cells, out_faults_run=out_faults_run)
