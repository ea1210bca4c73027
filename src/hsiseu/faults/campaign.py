"""A campaign: fault list -> K independent shards -> merged outcomes and per-cell summary.

Backend-agnostic: a shard gets a :class:`~hsiseu.faults.backend.Backend` and never asks what it
is. A shard is killed and resumed without losing or repeating a fault: it works in chunks of
consecutive faults, each written atomically to ``.<shard file>.chunks/<i>.csv`` beside its
output (with a manifest naming the fault list it belongs to); a restart skips the chunks already
on disk, and the shard file appears, atomically, only when every chunk is done.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hsiseu.faults import faultlist
from hsiseu.faults.backend import Backend
from hsiseu.faults.bitflip import flip_bits
from hsiseu.faults.outcomes import OUTCOME_COLUMNS, outcome_of
from hsiseu.faults.paramsets import sets_frame
from hsiseu.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

__all__ = ["write_fault_list", "run_shard", "merge_shards", "cell_summary", "CELL_COLUMNS"]

CELL_COLUMNS = (
    "order", "set", "kind", "layer", "bit", "population", "n", "error_rate", "error_rate_std",
    "error_rate_labelled", "changed", "nonfinite",
)


def write_fault_list(backend: Backend, *, sampling, bits: Sequence[int] | None, seed: int,
                     out_faults: str | os.PathLike[str], out_sets: str | os.PathLike[str]) -> pd.DataFrame:
    """Draw and store the fault list of a model, with its parameter-set table (sizes, dtypes,
    share of values in 1 < |x| < 2)."""
    sets = backend.parameter_sets()
    frame = faultlist.generate(sets, sampling=sampling, bits=bits, seed=seed)
    table = sets_frame(sets, [backend.values(s.name) for s in sets])
    with atomic_path(out_sets) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    faultlist.write(frame, out_faults)
    log.info("%d faults over %d parameter sets -> %s", len(frame), len(sets), out_faults)
    return frame


def _digest(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _outcome_rows(backend: Backend, chunk: pd.DataFrame, labelled: np.ndarray,
                  kinds: dict[str, tuple[str, str]]) -> pd.DataFrame:
    faults = faultlist.faults_of(chunk)
    golden = backend.golden()
    rows = []
    values_cache: dict[str, np.ndarray] = {}
    for fault, pred in zip(faults, backend.run(faults), strict=True):
        if fault.set not in values_cache:
            values_cache[fault.set] = backend.values(fault.set)
        original = values_cache[fault.set][fault.index]
        faulty = flip_bits(np.asarray([original]), fault.bit)[0]
        kind, layer = kinds[fault.set]
        rows.append({
            "fault": fault.fault, "set": fault.set, "kind": kind, "layer": layer, "bit": fault.bit,
            "index": fault.index, "original": original.item(), "faulty": faulty.item(),
            **outcome_of(golden, pred, labelled),
        })
    return pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))


def run_shard(backend: Backend, *, faults_path: str | os.PathLike[str], labels: np.ndarray,
              shard: int, n_shards: int, out: str | os.PathLike[str], chunk_size: int = 64,
              ignore_label: int = 255, progress: bool = True) -> pd.DataFrame:
    """Outcomes of shard ``shard`` (0-based) of ``n_shards``, written to ``out``.

    ``labels`` (N, H, W) are the test labels (``ignore_label`` = unlabelled), for the error rate
    over labelled pixels.
    """
    out = Path(out)
    frame = faultlist.shard_of(faultlist.read(faults_path), shard, n_shards)
    chunk_dir = out.parent / f".{out.name}.chunks"
    manifest = {"fault_list_sha256": _digest(faults_path), "shard": shard, "n_shards": n_shards,
                "chunk_size": int(chunk_size), "n_faults": len(frame)}
    if chunk_dir.exists():
        try:
            same = read_json(chunk_dir / "manifest.json") == manifest
        except (OSError, ValueError):
            same = False
        if not same:
            log.warning("%s: checkpoints belong to another fault list or chunking; starting over", chunk_dir)
            shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    write_json(chunk_dir / "manifest.json", manifest)
    labelled = np.asarray(labels) != ignore_label
    golden = backend.golden()
    if labelled.shape != golden.shape:
        raise ValueError(f"labels of shape {labelled.shape} do not match the predictions {golden.shape}")
    kinds = {s.name: (s.kind, s.layer) for s in backend.parameter_sets()}
    starts = range(0, len(frame), chunk_size)
    paths = [chunk_dir / f"{i:06d}.csv" for i in range(len(starts))]
    done = sum(p.exists() for p in paths)
    if done:
        log.info("resuming shard %d/%d: %d of %d chunks already done", shard, n_shards, done, len(paths))
    t0 = time.perf_counter()
    bar = tqdm(total=len(frame), desc=f"shard {shard}/{n_shards}", unit="fault", disable=not progress,
               mininterval=5.0)
    for start, path in zip(starts, paths):
        chunk = frame.iloc[start : start + chunk_size]
        if not path.exists():
            rows = _outcome_rows(backend, chunk, labelled, kinds)
            with atomic_path(path) as tmp:
                rows.to_csv(tmp, index=False, lineterminator="\n")
        bar.update(len(chunk))
    bar.close()
    parts = [pd.read_csv(p) for p in paths]
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    if not result["fault"].astype(np.int64).equals(frame["fault"].astype(np.int64)):
        raise RuntimeError(f"{chunk_dir}: checkpointed faults do not match shard {shard}'s fault list")
    with atomic_path(out) as tmp:
        result.to_csv(tmp, index=False, lineterminator="\n")
    shutil.rmtree(chunk_dir)
    log.info("shard %d/%d: %d faults in %.1f s", shard, n_shards, len(frame), time.perf_counter() - t0)
    return result


def cell_summary(outcomes: pd.DataFrame, sets: pd.DataFrame) -> pd.DataFrame:
    """Per (parameter set, bit): faults injected, population, mean (and std) error rate, share of
    faults that changed any pixel / made the output non-finite."""
    grouped = outcomes.groupby(["set", "bit"], sort=False)
    cells = grouped.agg(
        n=("fault", "size"),
        error_rate=("error_rate", "mean"),
        error_rate_std=("error_rate", "std"),
        error_rate_labelled=("error_rate_labelled", "mean"),
        changed=("changed", "mean"),
        nonfinite=("nonfinite", "mean"),
    ).reset_index()
    meta = sets.set_index("name")
    cells["order"] = cells["set"].map(meta["order"]).astype(int)
    cells["kind"] = cells["set"].map(meta["kind"])
    cells["layer"] = cells["set"].map(meta["layer"])
    cells["population"] = cells["set"].map(meta["size"]).astype(int)
    cells["error_rate_std"] = cells["error_rate_std"].fillna(0.0)
    return cells.sort_values(["order", "bit"], ascending=[True, False]).loc[:, list(CELL_COLUMNS)].reset_index(drop=True)


def merge_shards(shard_paths: Sequence[str | os.PathLike[str]], *, faults_path: str | os.PathLike[str],
                 sets_path: str | os.PathLike[str], out_outcomes: str | os.PathLike[str],
                 out_cells: str | os.PathLike[str]) -> pd.DataFrame:
    """Merge shard outputs into one outcome table (checked: every fault exactly once)."""
    outcomes = pd.concat([pd.read_csv(p) for p in shard_paths], ignore_index=True)
    expected = faultlist.read(faults_path)["fault"].to_numpy()
    got = np.sort(outcomes["fault"].to_numpy())
    if len(got) != len(expected) or not np.array_equal(got, expected):
        missing = np.setdiff1d(expected, got)
        dup = len(got) - len(np.unique(got))
        raise ValueError(
            f"shards {list(map(str, shard_paths))} do not cover {faults_path} exactly: "
            f"{len(missing)} faults missing (e.g. {missing[:5].tolist()}), {dup} duplicated"
        )
    outcomes = outcomes.sort_values("fault").reset_index(drop=True)
    with atomic_path(out_outcomes) as tmp:
        outcomes.to_csv(tmp, index=False, lineterminator="\n")
    cells = cell_summary(outcomes, pd.read_csv(sets_path))
    with atomic_path(out_cells) as tmp:
        cells.to_csv(tmp, index=False, lineterminator="\n")
    return outcomes
