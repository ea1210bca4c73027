"""A campaign's chunks on K processes, one thread each: all the cores a user's machine has.

Why processes and not TensorFlow's intra-op threads: one fault's model call on a small model
splits poorly over threads (2 threads gave 1.61x on 2 cores), while K processes running their own
faults scale with the cores, as the pipeline's shard jobs do.

Why chunks handed out as they come, not shards fixed in advance: a campaign is one shard whose
chunks (the checkpoint files a one-process run writes, the same faults in each) go to whichever
process is free, this one included. Shards of every K-th unit ran unevenly (an exponent-MSB cell
costs ten times an all-zero one, and which shard gets which is luck), and every shard paid a
process start-up (TensorFlow, the model, the engine's traces) that this process, with the model
open already, does not pay again. The chunk files and the outcomes are those of one process, byte
for byte, and a killed run resumes from them with any number of workers.

The workers start as early as the caller can (``start``; the campaign API starts them before it
imports TensorFlow and opens the model itself), so that their start-up overlaps this process's
own: a worker reads the fault list and the labels only with its first chunk, by which time they
exist. A worker's exit skips the interpreter's last garbage collection, as every process that
configured TensorFlow does (:mod:`hsiseu.runtime`).

Each worker is a fresh interpreter (``python -m hsiseu.faults.workers SPEC``), not a
``multiprocessing`` child: those re-import the caller's main script, so a user's script without
an ``if __name__ == "__main__":`` guard would start its campaign again in every worker. It opens
the model from a file, then reads one chunk per line on its stdin (fault ids and the file to
write) and answers each with a line on its stdout once the file is written.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["available_cores", "ChunkPool"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ChunkPool:
    """``workers - 1`` worker processes beside this one, started once: by :meth:`start`, or at
    the first call of :meth:`run` that has more than one chunk to give out (one that dies is not
    replaced: its share runs here); :meth:`close` ends them."""

    def __init__(self, spec: Mapping[str, Any], workers: int, scratch: Path) -> None:
        self.spec, self.workers, self.scratch = dict(spec), int(workers), Path(scratch)
        self._procs: list[subprocess.Popen] = []
        self._logs: dict[int, Path] = {}  # the log of each worker, by pid
        self._started = False
        self._fed = False

    def start(self) -> None:
        """Start the workers now (once): they open the model while this process does the same."""
        if not self._started and self.workers > 1:
            self._start()

    def _start(self) -> None:
        self._started = True
        (self.scratch / "spec.json").write_text(json.dumps(self.spec))
        for i in range(self.workers - 1):
            path = self.scratch / f"worker{i}.log"
            with open(path, "w") as err:
                proc = subprocess.Popen([sys.executable, "-m", "hsiseu.faults.workers", str(self.scratch / "spec.json")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
            self._procs.append(proc)
            self._logs[proc.pid] = path

    def run(self, jobs: Sequence[tuple[pd.DataFrame, Path]], here: Callable[[pd.DataFrame, Path], Any],
            done: Callable[[int], Any]) -> None:
        """Write every job's chunk file: ``here(chunk, path)`` in this process, the workers
        taking the next job whenever they finish one; ``done(n)`` after each (from any thread).
        A job a worker could not finish (it died) is run here.

        This process takes jobs from the front, the workers from the back. A campaign's list
        runs layer after layer, so each process then meets mostly its own part of the layers
        and compiles and checks the engine's functions for those (each process pays them once
        per layer and shape it meets), instead of every process meeting every layer. On the
        default model that saved memory (the largest process's peak 6 % lower), not time."""
        if len(jobs) > 1:
            self.start()
        self._fed = self._fed or bool(self._procs)
        todo = collections.deque(jobs)  # its pops and appends are atomic: no lock for them
        lock = threading.Lock()

        def report(n: int) -> None:
            with lock:
                done(n)

        def take(front: bool) -> tuple[pd.DataFrame, Path] | None:
            try:
                return todo.popleft() if front else todo.pop()
            except IndexError:
                return None

        def feed(proc: subprocess.Popen) -> None:
            while proc.poll() is None:
                if (job := take(front=False)) is None:
                    return
                chunk, path = job
                try:
                    proc.stdin.write(json.dumps({"faults": chunk["fault"].astype(int).tolist(), "out": str(path)}) + "\n")
                    proc.stdin.flush()
                    answer = proc.stdout.readline()
                    while answer and answer.strip() != "done":  # a library's own print
                        answer = proc.stdout.readline()
                except OSError:
                    answer = ""
                if not answer:
                    todo.append(job)  # the worker died: the job goes back
                    return
                report(len(chunk))

        def drain() -> None:
            while (job := take(front=True)) is not None:
                chunk, path = job
                here(chunk, path)
                report(len(chunk))

        feeders = [threading.Thread(target=feed, args=(p,), daemon=True) for p in self._procs]
        for feeder in feeders:
            feeder.start()
        drain()
        for feeder in feeders:
            feeder.join()
        drain()  # jobs handed back by a worker that died after this process ran out of work
        self._procs = [p for p in self._procs if not self._exited(p)]

    def _exited(self, proc: subprocess.Popen) -> bool:
        """Whether ``proc`` has ended; a worker that failed is logged with the tail of its log
        (its chunks run in this process)."""
        if proc.poll() is None:
            return False
        if proc.returncode:
            tail = self._logs[proc.pid].read_text()[-1500:]
            log.warning("a worker exited early (code %d); its chunks ran in this process:\n%s", proc.returncode, tail)
        return True

    def close(self) -> None:
        if not self._fed:  # started early for a campaign that had nothing left to run
            for proc in self._procs:
                proc.kill()
                proc.wait()
            self._procs = []
        for proc in self._procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self._procs:
            proc.wait()
            self._exited(proc)
        self._procs = []

    def __enter__(self) -> "ChunkPool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            for proc in self._procs:
                proc.kill()
        self.close()


def _serve(spec: Mapping[str, Any]) -> None:
    """One worker: open the model, then run each chunk named on stdin (module docstring)."""
    from hsiseu.faults import faultlist
    from hsiseu.faults.registry import open_model  # the spec names a model file
    from hsiseu.faults.campaign import chunk_writer
    from hsiseu.runtime import configure_tensorflow

    if not str(spec["model"]).endswith(".tflite"):
        configure_tensorflow(1)
    backend = open_model(spec["model"], np.load(spec["images"]), spec["options"])
    write = listed = None
    for line in sys.stdin:
        job = json.loads(line)
        if listed is None:  # written by the caller after it started this worker
            write = chunk_writer(backend, np.load(spec["labels"]))
            listed = faultlist.read(spec["faults"]).set_index("fault", drop=False)
        write(listed.loc[job["faults"]].reset_index(drop=True), Path(job["out"]))
        print("done", flush=True)


if __name__ == "__main__":
    _serve(json.loads(Path(sys.argv[1]).read_text()))
