"""What both formats' benchmarks share (no TensorFlow, no LiteRT): which faults are timed
(contiguous blocks spread over the campaign's list, so that every layer's share of the campaign
is kept), how a loop is timed (in the chunks a shard runs, CPU and wall time), and the loops
taking turns chunk by chunk (this machine's speed drifts by 15-30 % between runs; turns spread a
drift over all of them alike).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["spread_blocks", "timed", "take_turns"]


def spread_blocks(n_total: int, n_blocks: int, size: int) -> list[tuple[int, int]]:
    """``n_blocks`` contiguous [start, stop) blocks of ``size`` faults at evenly spaced offsets
    of a list of ``n_total`` (the whole list when they would cover it)."""
    if n_blocks * size >= n_total:
        return [(0, n_total)]
    starts = [int(round(i * (n_total - size) / max(n_blocks - 1, 1))) for i in range(n_blocks)]
    return [(a, a + size) for a in starts]


def timed(run: Callable[[Sequence], Iterable], faults: Sequence, chunk: int) -> tuple[list, float, float]:
    """Predictions, wall seconds and CPU seconds of this process (with one thread the CPU time
    does not grow when other jobs load the machine: the stable figure)."""
    t0, c0 = time.perf_counter(), time.process_time()
    preds: list = []
    for s in range(0, len(faults), chunk):
        preds.extend(run(faults[s : s + chunk]))
    return preds, time.perf_counter() - t0, time.process_time() - c0


def take_turns(loops: Mapping[str, Callable[[Sequence], Iterable]], faults: Sequence,
               chunk: int) -> dict[str, tuple[list, float, float]]:
    """Every loop over the same faults, chunk by chunk in turns: predictions and the mean wall
    and CPU seconds per fault."""
    turns: dict[str, list] = {name: [[], 0.0, 0.0] for name in loops}
    for s in range(0, len(faults), chunk):
        for name, run in loops.items():
            preds, wall, cpu = timed(run, faults[s : s + chunk], chunk)
            turns[name][0].extend(preds)
            turns[name][1] += wall / len(faults)
            turns[name][2] += cpu / len(faults)
    return {name: (p, w, c) for name, (p, w, c) in turns.items()}
