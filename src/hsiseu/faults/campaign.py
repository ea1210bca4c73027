"""A campaign: fault list -> K independent shards -> merged outcomes and per-cell summary.

Backend-agnostic: a shard gets a :class:`~hsiseu.faults.backend.Backend` and never asks what it
is. A shard is killed and resumed without losing or repeating a fault: it works in chunks of
consecutive faults, each written atomically to ``.<shard file>.chunks/<i>.csv`` beside its
output (with a manifest naming the fault list it belongs to); a restart skips the chunks already
on disk, and the shard file appears, atomically, only when every chunk is done.

With ``faults.sampling.method: adaptive`` the fault list holds every unit's candidates in their
seeded order (:mod:`hsiseu.faults.stats.candidates`) and a shard owns whole units (every K-th):
it runs them round by round, each round's faults (the next ranks of every unit not yet done,
:class:`~hsiseu.faults.stats.adaptive.UnitState`) in checkpointed chunks ``r<round>-<i>.csv``.
The faults a round holds follow from the outcomes of the rounds before it, so a restart replays
the finished chunks and continues with exactly the faults an uninterrupted run would have run.
The merge writes the faults actually run as ``faults_run.csv`` (the fault-list format) and
checks them: each unit a prefix of its candidates, stopped where the rule stops it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hsiseu.faults import faultlist
from hsiseu.faults.backend import Backend
from hsiseu.faults.bitflip import flip_bits
from hsiseu.faults.outcomes import OUTCOME_COLUMNS, outcome_of
from hsiseu.faults.paramsets import sets_frame, sets_from_frame
from hsiseu.faults.stats.adaptive import UnitState
from hsiseu.faults.stats.candidates import (candidate_faults, cell_units, in_rank_order, list_strata, method_of,
                                            pending_faults, population_of, strata_keys_of, unit_layout, unit_state,
                                            units)
from hsiseu.faults.stats.intervals import normal_interval
from hsiseu.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

__all__ = ["write_fault_list", "run_shard", "merge_shards", "cell_summary", "CELL_COLUMNS"]

CELL_COLUMNS = (
    "order", "set", "kind", "layer", "bit", "population", "n", "error_rate", "error_rate_std",
    "error_rate_low", "error_rate_high", "interval", "unit", "unit_bits", "unit_error_rate",
    "unit_error_rate_low", "unit_error_rate_high", "error_rate_labelled", "changed", "nonfinite",
)


def write_fault_list(backend: Backend, *, sampling, bits: Sequence[int] | None, seed: int,
                     out_faults: str | os.PathLike[str], out_sets: str | os.PathLike[str]) -> pd.DataFrame:
    """Draw and store the fault list of a model, with its parameter-set table (sizes, dtypes,
    share of values in 1 < |x| < 2)."""
    sets = backend.parameter_sets()
    values = {s.name: backend.values(s.name) for s in sets}
    if in_rank_order(sampling):
        frame = candidate_faults(sets, bits, population_of(sampling), sampling, seed, values)
    else:
        frame = faultlist.generate(sets, sampling=sampling, bits=bits, seed=seed)
    table = sets_frame(sets, [values[s.name] for s in sets])
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


def _checkpoints(out: Path, manifest: dict) -> Path:
    """The shard's checkpoint folder, emptied when it belongs to another list or chunking."""
    chunk_dir = out.parent / f".{out.name}.chunks"
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
    return chunk_dir


def chunk_writer(backend: Backend, labels: np.ndarray, ignore_label: int = 255) -> Callable[[pd.DataFrame, Path], None]:
    """``write(chunk, path)``: the outcomes of a chunk of the fault list on ``backend``, written
    atomically to ``path`` (what a shard and a worker process do with each chunk).

    ``labels`` (N, H, W) are the test labels (``ignore_label`` = unlabelled), for the error rate
    over labelled pixels."""
    labelled, golden = np.asarray(labels) != ignore_label, backend.golden()
    if labelled.shape != golden.shape:
        raise ValueError(f"labels of shape {labelled.shape} do not match the predictions {golden.shape}")
    kinds = {s.name: (s.kind, s.layer) for s in backend.parameter_sets()}

    def write(chunk: pd.DataFrame, path: Path) -> None:
        rows = _outcome_rows(backend, chunk, labelled, kinds)
        with atomic_path(path) as tmp:
            rows.to_csv(tmp, index=False, lineterminator="\n")

    return write


def _chunked(write, frame: pd.DataFrame, paths: Sequence[Path], chunk_size: int, bar,
             on_progress: Callable[[int], Any] | None = None, pool=None) -> pd.DataFrame:
    """Outcomes of ``frame`` in chunks, each written once to its path (skipped when on disk);
    the missing ones in this process, or handed out by ``pool``
    (:class:`~hsiseu.faults.workers.ChunkPool`)."""
    def done(n: int) -> None:
        bar.update(n)
        if on_progress is not None:
            on_progress(n)

    jobs = [(frame.iloc[start : start + chunk_size], path) for start, path in zip(range(0, len(frame), chunk_size), paths)]
    missing = [(chunk, path) for chunk, path in jobs if not path.exists()]
    done(sum(len(chunk) for chunk, path in jobs if path.exists()))
    if pool is None:
        for chunk, path in missing:
            write(chunk, path)
            done(len(chunk))
    else:
        pool.run(missing, write, done)
    parts = [pd.read_csv(p) for p in paths]
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    if not result["fault"].astype(np.int64).equals(frame["fault"].reset_index(drop=True).astype(np.int64)):
        raise RuntimeError(f"{paths[0].parent}: checkpointed faults do not match the shard's fault list")
    return result


def _fresh_states(sets, bits, sampling, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, UnitState]]:
    """The units of ``sampling`` on these sets, each with its sampling state before any fault
    (its strata read from the list of candidates ``frame``)."""
    table = units(sets, bits, population_of(sampling), sampling)
    strata = list_strata(frame)
    return table, {row.unit: unit_state(row._asdict(), sampling, strata.get(row.unit))
                   for row in table.itertuples(index=False)}


def _unit_states(sets, bits, sampling, frame: pd.DataFrame, path) -> tuple[pd.DataFrame, dict[str, UnitState]]:
    """:func:`_fresh_states`, checked against the fault list ``frame`` (read from ``path``)."""
    table, states = _fresh_states(sets, bits, sampling, frame)
    listed = frame.groupby("unit", sort=False)["rank"].size()
    if set(listed.index) != set(table["unit"]) or not (table.set_index("unit")["candidates"] == listed).all():
        raise ValueError(f"{path}: its units and candidates are not those of faults.sampling {dict(sampling)} "
                         "on this model (the list was made with other settings)")
    return table, states


def run_shard(backend: Backend, *, faults_path: str | os.PathLike[str], labels: np.ndarray,
              shard: int, n_shards: int, out: str | os.PathLike[str], chunk_size: int = 64,
              ignore_label: int = 255, progress: bool = True, sampling=None,
              bits: Sequence[int] | None = None, on_progress: Callable[[int], Any] | None = None,
              pool=None) -> pd.DataFrame:
    """Outcomes of shard ``shard`` (0-based) of ``n_shards``, written to ``out``.

    ``labels`` (N, H, W) are the test labels (``ignore_label`` = unlabelled), for the error rate
    over labelled pixels. ``sampling`` and ``bits`` (the config's) are read for an adaptive list.
    ``on_progress`` is called with each chunk's fault count. ``pool``: a
    :class:`~hsiseu.faults.workers.ChunkPool` whose processes share the chunks with this one.
    """
    out = Path(out)
    listed = faultlist.read(faults_path)
    adaptive = "unit" in listed.columns and method_of(sampling or {}) == "adaptive"
    write = chunk_writer(backend, labels, ignore_label)
    manifest = {"fault_list_sha256": _digest(faults_path), "shard": shard, "n_shards": n_shards,
                "chunk_size": int(chunk_size)}
    t0 = time.perf_counter()
    if not adaptive:
        frame = faultlist.shard_of(listed, shard, n_shards)
        chunk_dir = _checkpoints(out, {**manifest, "n_faults": len(frame)})
        paths = [chunk_dir / f"{i:06d}.csv" for i in range(len(range(0, len(frame), chunk_size)))]
        done = sum(p.exists() for p in paths)
        if done:
            log.info("resuming shard %d/%d: %d of %d chunks already done", shard, n_shards, done, len(paths))
        with tqdm(total=len(frame), desc=f"shard {shard}/{n_shards}", unit="fault", disable=not progress,
                  mininterval=5.0) as bar:
            result = _chunked(write, frame, paths, chunk_size, bar, on_progress, pool)
    else:
        if not 0 <= shard < n_shards:
            raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
        table, states = _unit_states(backend.parameter_sets(), bits, sampling, listed, faults_path)
        mine = set(table["unit"].iloc[shard::n_shards])
        states = {u: st for u, st in states.items() if u in mine}
        candidates = listed[listed["unit"].isin(mine)].reset_index(drop=True)
        chunk_dir = _checkpoints(out, {**manifest, "sampling": dict(sampling), "units": len(states)})
        parts, r = [], 0
        with tqdm(total=len(candidates), desc=f"shard {shard}/{n_shards} (at most)", unit="fault",
                  disable=not progress, mininterval=5.0) as bar:
            while len(todo := pending_faults(candidates, states)):
                paths = [chunk_dir / f"r{r:04d}-{i:06d}.csv" for i in range(len(range(0, len(todo), chunk_size)))]
                rows = _chunked(write, todo, paths, chunk_size, bar, on_progress, pool)
                for unit, group in rows.assign(unit=todo["unit"].to_numpy()).groupby("unit", sort=False):
                    states[unit].record(np.clip(group["error_rate"].to_numpy(dtype=np.float64) / 100.0, 0, 1))
                parts.append(rows)
                r += 1
        result = (pd.concat(parts, ignore_index=True).sort_values("fault").reset_index(drop=True) if parts
                  else pd.DataFrame(columns=list(OUTCOME_COLUMNS)))
        log.info("shard %d/%d: %d units in %d rounds, %d of %d candidates run", shard, n_shards, len(states), r,
                 len(result), len(candidates))
    with atomic_path(out) as tmp:
        result.to_csv(tmp, index=False, lineterminator="\n")
    shutil.rmtree(chunk_dir)
    log.info("shard %d/%d: %d faults in %.1f s", shard, n_shards, len(result), time.perf_counter() - t0)
    return result


def _interval_columns(cells: pd.DataFrame, outcomes: pd.DataFrame, sets: pd.DataFrame, sampling,
                      bits: Sequence[int] | None, confidence: float, faults: pd.DataFrame | None,
                      replayed: dict[str, UnitState] | None = None) -> pd.DataFrame:
    """Each cell's interval on its mean error rate (%), how it was made, and its unit's estimate.

    A cell that is a unit of its own reports the unit's interval: Leveugle's normal interval
    with p = 1/2 (``leveugle``) or with the variance bound p* its confidence sequence earned
    (``adaptive``, ``fixed``). A cell inside a larger unit (``set``, ``network``, a pooled
    mantissa) holds a random number of faults; it gets the p* interval on its own faults, which
    is valid but wider than e, and the ``unit_*`` columns carry the unit's mean and interval
    (the estimate with the guarantee; equal to the cell's own for a one-cell unit) and how many
    bits it spans (a cell of a pooled unit may have drawn no fault and be absent: set means
    weigh units by their bits, :func:`hsiseu.faults.stats.aggregate.set_estimates`)."""
    method = method_of(sampling)
    units_of = cell_units(sets_from_frame(sets), bits, sampling)
    table = unit_layout(sets_from_frame(sets), bits, sampling)
    # The confidence sequence behind p* reads the outcomes in draw order: a list of candidates
    # is numbered in it; a list drawn by faultlist.generate is sorted by index, so its (random)
    # sample is put in a seeded random order first.
    shuffle = not in_rank_order(sampling)
    rng = np.random.default_rng(0)
    ordered = outcomes.sort_values("fault")
    by_cell = {key: np.clip(rng.permutation(x) if shuffle else x, 0, 1) for key, g in
               ordered.groupby(["set", "bit"], sort=False) for x in [g["error_rate"].to_numpy(dtype=np.float64) / 100.0]}
    if shuffle:  # a per-cell list: every unit is one cell
        samples = {units_of[key]: x for key, x in by_cell.items()}
    else:
        unit = [units_of[key] for key in zip(ordered["set"], ordered["bit"].astype(int))]
        samples = {u: np.clip(g.to_numpy(dtype=np.float64) / 100.0, 0, 1)
                   for u, g in ordered["error_rate"].groupby(pd.Series(unit, index=ordered.index), sort=False)}
    p_unit = 0.5 if method == "leveugle" else None
    level = f"{100 * confidence:g} %"
    if method == "adaptive" and not shuffle:
        # a unit reports what its stopping rule reports (UnitState.interval: the confidence
        # sequence itself where it lies within +- e, e.g. [0, U0] for a run of zeros, else the
        # normal interval with p*); its outcomes, in rank order, end where the rule stopped
        if replayed is not None:  # replayed on these very outcomes by merge_shards' check
            states = replayed
            unit_iv = {u: states[u].interval() for u in samples}
        else:
            _, states = _fresh_states(sets_from_frame(sets), bits, sampling,
                                      faults if faults is not None else pd.DataFrame(columns=["unit"]))
            unit_iv = {u: states[u].replay(x).interval() for u, x in samples.items()}
        stratified = {u for u, state in states.items() if state.strata is not None}
        how = "the rule's interval"
    else:
        stratified = set()
        unit_iv = {u: normal_interval(x, confidence, int(table.loc[u, "population"]), p_unit)
                   for u, x in samples.items()}
        how = f"normal p={'1/2' if p_unit else 'p*'}"
    cols: dict[str, list] = {k: [] for k in ("error_rate", "error_rate_low", "error_rate_high", "interval", "unit", "unit_bits",
                                             "unit_error_rate", "unit_error_rate_low", "unit_error_rate_high")}
    for row in cells.itertuples(index=False):
        unit = units_of[(row.set, int(row.bit))]
        whole, unit_bits = unit_iv[unit], int(table.loc[unit, "bits"])
        alone = unit_bits == 1 and table.loc[unit, "set"] == row.set
        iv = whole if alone else normal_interval(by_cell[(row.set, row.bit)], confidence, int(row.population), None)
        # a stratified unit's estimate is its post-stratified mean (strata weighted by their
        # exact shares), the centre of its interval; a cell that is such a unit reports it
        post = alone and unit in stratified
        cols["error_rate"].append(100 * whole.mean if post else row.error_rate)
        cols["error_rate_low"].append(100 * iv.low)
        cols["error_rate_high"].append(100 * iv.high)
        cols["interval"].append(f"{method} unit {unit}{', post-stratified' if post else ''}, {how}, {level}" if alone
                                else f"{method}, cell of unit {unit}: cell's own faults, normal p=p*, {level}")
        cols["unit"].append(unit)
        cols["unit_bits"].append(unit_bits)
        cols["unit_error_rate"].append(100 * whole.mean)
        cols["unit_error_rate_low"].append(100 * whole.low)
        cols["unit_error_rate_high"].append(100 * whole.high)
    return cells.assign(**cols)


def cell_summary(outcomes: pd.DataFrame, sets: pd.DataFrame, sampling=None,
                 bits: Sequence[int] | None = None, faults: pd.DataFrame | None = None,
                 replayed: dict[str, UnitState] | None = None) -> pd.DataFrame:
    """Per (parameter set, bit): faults injected, population, mean (and std) error rate with its
    interval and its unit's estimate (``sampling``: the config's ``faults.sampling``, ``bits``
    its ``faults.bits``; the confidence is its ``confidence``, 95 % without it), share of faults
    that changed any pixel / made the output non-finite. ``faults``: the campaign's fault list
    (the units' strata, where ``faults.sampling.strata`` made them); ``replayed``: an adaptive
    campaign's unit states already replayed on ``outcomes``, which are then not replayed again."""
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
    sampling = dict(sampling or {})
    if strata_keys_of(sampling) and faults is None:
        raise ValueError(f"faults.sampling.strata {strata_keys_of(sampling)}: the cells of a stratified campaign "
                         "need its fault list (faults=), which holds the strata")
    cells = _interval_columns(cells, outcomes, sets, sampling, bits, float(sampling.get("confidence", 0.95)), faults,
                              replayed)
    return cells.sort_values(["order", "bit"], ascending=[True, False]).loc[:, list(CELL_COLUMNS)].reset_index(drop=True)


def _check_sequential(outcomes: pd.DataFrame, listed: pd.DataFrame, sets, sampling, bits,
                      faults_path) -> tuple[np.ndarray, dict[str, UnitState]]:
    """The faults an adaptive campaign must have run, from its outcomes: per unit, a prefix of
    the candidates that ends where the rule stops (checked by replaying the rule); with the
    replayed unit states, whose intervals the cells report."""
    _, states = _unit_states(sets, bits, sampling, listed, faults_path)
    rows = listed.set_index("fault").reindex(outcomes["fault"].to_numpy())
    if rows["unit"].isna().any():
        raise ValueError(f"{faults_path}: the shards ran faults that are not candidates of this list")
    outcomes = outcomes.assign(unit=rows["unit"].to_numpy(), rank=rows["rank"].to_numpy()).sort_values(["unit", "rank"])
    # split once into arrays: a boolean mask (or a frame) per unit costs seconds on a
    # 160,000-candidate list
    units_run = outcomes["unit"].to_numpy()
    ends = np.flatnonzero(units_run[1:] != units_run[:-1]) + 1
    ranks = dict(zip(units_run[np.r_[0, ends]] if len(units_run) else [],
                     zip(np.split(outcomes["rank"].to_numpy(np.int64), ends),
                         np.split(np.clip(outcomes["error_rate"].to_numpy(np.float64) / 100.0, 0, 1), ends))))
    none = (np.zeros(0, np.int64), np.zeros(0))
    for unit, state in states.items():
        got, values = ranks.get(unit, none)
        if not np.array_equal(got, np.arange(len(got))):
            raise ValueError(f"unit {unit}: the faults run are not a prefix of its candidates")
        try:
            state.replay(values)
        except ValueError as err:
            raise ValueError(f"unit {unit}: {err}") from None
        if not state.done:
            raise ValueError(f"unit {unit}: {state.n} faults run, but the rule had not stopped there")
    stops = listed["unit"].map({unit: state.n for unit, state in states.items()}).to_numpy()
    return np.sort(listed["fault"].to_numpy()[listed["rank"].to_numpy() < stops]), states


def merge_shards(shard_paths: Sequence[str | os.PathLike[str]], *, faults_path: str | os.PathLike[str],
                 sets_path: str | os.PathLike[str], out_outcomes: str | os.PathLike[str],
                 out_cells: str | os.PathLike[str], sampling=None, bits: Sequence[int] | None = None,
                 out_faults_run: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Merge shard outputs into one outcome table (checked: every fault exactly once; for an
    adaptive list, every unit's prefix up to where its rule stops), the faults run as a fault
    list (``out_faults_run``) and the per-cell summary."""
    outcomes = pd.concat([pd.read_csv(p) for p in shard_paths], ignore_index=True)
    listed = faultlist.read(faults_path)
    if "unit" in listed.columns and method_of(sampling or {}) == "adaptive":
        sets = sets_from_frame(pd.read_csv(sets_path))
        expected, replayed = _check_sequential(outcomes.drop_duplicates("fault"), listed, sets, sampling, bits,
                                               faults_path)
    else:
        expected, replayed = listed["fault"].to_numpy(), None
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
    if out_faults_run is not None:
        faultlist.write(listed[listed["fault"].isin(expected)], out_faults_run)
    cells = cell_summary(outcomes, pd.read_csv(sets_path), sampling, bits, listed, replayed)
    with atomic_path(out_cells) as tmp:
        cells.to_csv(tmp, index=False, lineterminator="\n")
    return outcomes
