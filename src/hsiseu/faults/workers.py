"""A campaign's shards in K worker processes, one thread each: all the cores a user's machine has.

Why processes and not TensorFlow's intra-op threads: one fault's model call on a small model
splits poorly over threads (2 threads gave 1.61x on 2 cores), while K independent shards of the
same fault list scale with the cores, as the pipeline's shard jobs do. Each worker is a fresh
``spawn``-ed interpreter (TensorFlow's thread pools and a forked parent do not mix) that opens
the model from a file, runs :func:`hsiseu.faults.campaign.run_shard` for its shard and returns;
the shards checkpoint and resume exactly as the pipeline's, and the merge sorts by fault, so
the outcomes are those of one worker, byte for byte.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["available_cores", "run_shards", "shard_path"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shard_path(out: Path, shard: int, n_shards: int) -> Path:
    return out / "shards" / f"{shard}-of-{n_shards}.csv"


def _worker(shard: int, n_shards: int, model_file: str, images_file: str, labels_file: str,
            options: Mapping[str, Any], faults_path: str, out: str, chunk_size: int,
            sampling: Mapping[str, Any], bits: Sequence[int] | None, progress: Any) -> str:
    from hsiseu.faults.api import open_model
    from hsiseu.faults.campaign import run_shard
    from hsiseu.runtime import configure_tensorflow

    if not str(model_file).endswith(".tflite"):
        configure_tensorflow(1)
    x = np.load(images_file)
    backend = open_model(model_file, x, options)
    run_shard(backend, faults_path=faults_path, labels=np.load(labels_file), shard=shard, n_shards=n_shards,
              out=out, chunk_size=chunk_size, progress=False, sampling=sampling, bits=bits,
              on_progress=progress.put)
    return out


def run_shards(model_file: Path, images: np.ndarray, labels: np.ndarray, options: Mapping[str, Any], *,
               faults_path: Path, out: Path, workers: int, chunk_size: int, sampling: Mapping[str, Any],
               bits: Sequence[int] | None, total: int, progress: bool, scratch: Path) -> list[Path]:
    """Run the fault list's ``workers`` shards in as many processes (those not finished
    already); their outcome files.

    ``model_file`` is the model as a file the workers open; ``scratch`` a folder for the arrays
    they load; ``total`` the faults the bar counts (at most: adaptive units stop early)."""
    from tqdm.auto import tqdm

    images_file, labels_file = scratch / "images.npy", scratch / "labels.npy"
    np.save(images_file, images)
    np.save(labels_file, labels)
    paths = [shard_path(out, i, workers) for i in range(workers)]
    todo = [i for i, path in enumerate(paths) if not path.exists()]  # a finished shard is kept
    if not todo:
        return paths
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(len(todo), mp_context=context) as pool:
        ticks = manager.Queue()
        futures = [pool.submit(_worker, i, workers, str(model_file), str(images_file), str(labels_file),
                               dict(options), str(faults_path), str(paths[i]), chunk_size, dict(sampling),
                               None if bits is None else list(bits), ticks)
                   for i in todo]
        with tqdm(total=total, desc=f"{workers} workers (at most)", unit="fault", disable=not progress,
                  mininterval=5.0) as bar:
            _drain(ticks, bar.update, lambda: all(f.done() for f in futures))
        for future in futures:
            future.result()  # a worker's exception, raised here
    return paths


def _drain(ticks: Any, update: Callable[[int], Any], finished: Callable[[], bool]) -> None:
    """Forward the workers' progress ticks to the bar until every worker has finished."""
    while True:
        done = finished()  # before draining: no tick sent before the end is left behind
        try:
            while True:
                update(ticks.get(timeout=0.5))
        except queue.Empty:
            pass
        if done:
            return
