"""A campaign's shards in K worker processes, one thread each: all the cores a user's machine has.

Why processes and not TensorFlow's intra-op threads: one fault's model call on a small model
splits poorly over threads (2 threads gave 1.61x on 2 cores), while K independent shards of the
same fault list scale with the cores, as the pipeline's shard jobs do. Each worker is a fresh
interpreter (``python -m hsiseu.faults.workers SPEC``), not a ``multiprocessing`` child: those
re-import the caller's main script, so a user's script without an ``if __name__ ==
"__main__":`` guard would start its campaign again in every worker. A worker opens the model from
a file, runs :func:`hsiseu.faults.campaign.run_shard` for its shard and prints its progress; the
shards checkpoint and resume exactly as the pipeline's, and the merge sorts by fault, so the
outcomes are those of one worker, byte for byte.

The calling process runs shard 0 itself while K - 1 workers run the rest: it has the model open
and its fault-free outputs computed already, so one start-up (TensorFlow, the model, the
engine's first traces) is saved; on 2 cores that start-up was the larger part of what 2
workers lost against 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
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


def _worker(spec: Mapping[str, Any]) -> None:
    """One shard, as ``spec`` (written by :func:`run_shards`) describes it; progress on stdout."""
    from hsiseu.faults.api import open_model
    from hsiseu.faults.campaign import run_shard
    from hsiseu.runtime import configure_tensorflow

    if not str(spec["model"]).endswith(".tflite"):
        configure_tensorflow(1)
    x = np.load(spec["images"])
    backend = open_model(spec["model"], x, spec["options"])

    def tick(n: int) -> None:
        print(n, flush=True)

    run_shard(backend, faults_path=spec["faults"], labels=np.load(spec["labels"]), shard=spec["shard"],
              n_shards=spec["n_shards"], out=spec["out"], chunk_size=spec["chunk_size"], progress=False,
              sampling=spec["sampling"], bits=spec["bits"], on_progress=tick)


def run_shards(model_file: Path, images: np.ndarray, labels: np.ndarray, options: Mapping[str, Any], *,
               faults_path: Path, out: Path, workers: int, chunk_size: int, sampling: Mapping[str, Any],
               bits: Sequence[int] | None, total: int, progress: bool, scratch: Path,
               local: Callable[[Path, Callable[[int], Any]], Any] | None = None) -> list[Path]:
    """Run the fault list's ``workers`` shards (those not finished already); their outcome files.

    ``model_file`` is the model as a file the workers open; ``scratch`` a folder for the arrays
    and specs they read; ``total`` the faults the bar counts (at most: adaptive units stop early).
    ``local(out, on_progress)``, when given, runs shard 0 in this process while worker processes
    run the others; without it every shard gets a process."""
    from tqdm.auto import tqdm

    paths = [shard_path(out, i, workers) for i in range(workers)]
    todo = [i for i, path in enumerate(paths) if not path.exists()]  # a finished shard is kept
    if not todo:
        return paths
    here = local is not None and todo[0] == 0
    if here:
        todo = todo[1:]
    np.save(scratch / "images.npy", images)
    np.save(scratch / "labels.npy", labels)
    procs = []
    for i in todo:
        spec = {"model": str(model_file), "images": str(scratch / "images.npy"),
                "labels": str(scratch / "labels.npy"), "options": dict(options), "faults": str(faults_path),
                "shard": i, "n_shards": workers, "out": str(paths[i]), "chunk_size": int(chunk_size),
                "sampling": dict(sampling), "bits": None if bits is None else [int(b) for b in bits]}
        (scratch / f"spec{i}.json").write_text(json.dumps(spec))
        err = open(scratch / f"worker{i}.log", "w")
        procs.append((i, subprocess.Popen([sys.executable, "-m", "hsiseu.faults.workers", str(scratch / f"spec{i}.json")],
                                          stdout=subprocess.PIPE, stderr=err, text=True), err))
    with tqdm(total=total, desc=f"{workers} workers (at most)", unit="fault", disable=not progress,
              mininterval=5.0) as bar:
        lock = threading.Lock()

        def forward(stream) -> None:
            for line in stream:  # read to the end, so that a worker never blocks on a full pipe
                if line.strip().isdigit():  # anything else a library prints is not progress
                    with lock:
                        bar.update(int(line))

        readers = [threading.Thread(target=forward, args=(p.stdout,), daemon=True) for _, p, _ in procs]
        for reader in readers:
            reader.start()
        if here:
            def tick(n: int) -> None:
                with lock:
                    bar.update(n)

            try:
                local(paths[0], tick)
            except BaseException:
                for _, proc, _ in procs:  # the workers' checkpoints stay: a rerun resumes them
                    proc.terminate()
                raise
        for reader in readers:
            reader.join()
    failed = []
    for i, proc, err in procs:
        proc.wait()
        err.close()
        if proc.returncode:
            tail = (scratch / f"worker{i}.log").read_text()[-2000:]
            failed.append(f"worker of shard {i}/{workers} exited with {proc.returncode}:\n{tail}")
    if failed:
        raise RuntimeError("\n".join(failed))
    return paths


if __name__ == "__main__":
    _worker(json.loads(Path(sys.argv[1]).read_text()))
