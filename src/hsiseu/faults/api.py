"""A fault-injection campaign on one's own model, from Python: :func:`run`.

>>> import hsiseu.faults
>>> result = hsiseu.faults.run(model, images, error_margin=0.1, bits=[31, 30, 23])  # doctest: +SKIP
>>> result.network_rate, result.set_mean          # model-level error rates (%), with intervals
>>> result.cells                                  # per (parameter set, bit): n, mean, interval
>>> result.outcomes                               # per fault

``model`` is a ``keras.Model`` (float, any backend Keras runs on), a ``.keras`` file, or an int8
``.tflite`` model (file or bytes); ``images`` a numpy array of inputs the model takes. The
outcome of a fault is the share of output positions (pixels of a segmentation map, or images
for a classifier) whose arg-max class differs from the fault-free model's. The campaign is the
pipeline's own (:mod:`hsiseu.faults.campaign`: the same fault list, engines, checkpoints, merge
and per-cell intervals), and ``out=`` keeps its files: ``parameter_sets.csv``,
``fault_list.csv``, ``outcomes.csv``, ``cells.csv`` (plus ``faults_run.csv``, ``campaign.json``),
the files ``hsiseu faults-campaign`` writes, which is this function behind a command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.faults.backend import Backend

__all__ = ["run", "CampaignResult", "CampaignInputError", "check_arrays", "open_model"]

#: what a model argument may be: a Keras model, a ``.keras`` / ``.tflite`` path, or ``.tflite`` bytes
ModelLike = Any


class CampaignInputError(ValueError):
    """Inputs that do not fit together: labels shaped unlike the model's class map, an ``out``
    folder holding a campaign with other settings."""


def check_arrays(x: Any, y: Any = None, *, images_name: str = "images",
                 labels_name: str = "labels") -> tuple[np.ndarray, np.ndarray | None]:
    """The images as contiguous float32 and the optional labels (integers, 255 = unlabelled),
    checked; an error names the argument (``images_name``, ``labels_name``)."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{images_name}: expected a non-empty float array (N, ...), got {x.dtype} {x.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{labels_name}: expected {len(x)} integer label maps, got {y.dtype} {y.shape}")
    return np.ascontiguousarray(x, dtype=np.float32), y


def _is_path(model: ModelLike) -> bool:
    return isinstance(model, (str, os.PathLike))


def _is_keras(model: ModelLike) -> bool:
    if _is_path(model):
        return str(model).lower().endswith(".keras")
    return not isinstance(model, (bytes, bytearray, memoryview))


def _is_keras_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _openable(model: Any) -> bool:
    """Whether :func:`open_model` takes ``model`` (it refuses anything else, by name)."""
    return _is_path(model) or isinstance(model, (bytes, bytearray, memoryview)) or _is_keras_model(model)


def open_model(model: ModelLike, x: np.ndarray, options: Mapping[str, Any]) -> Backend:
    """The backend serving ``model`` on images ``x``: a file goes through
    :func:`hsiseu.faults.registry.open_model` (by its suffix), a ``keras.Model`` to the float
    backend, bytes to the int8 one; ``options`` as the config's ``faults`` section (engine,
    memory_mb, image_chunk, include_bn_moving_stats, include_int8_constants) plus ``kernels``."""
    if _is_path(model):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model {path}: no such file")
        from hsiseu.faults.registry import open_model as open_file

        return open_file(path, x, options)
    engine = str(options.get("engine", "fast"))
    if isinstance(model, (bytes, bytearray, memoryview)):
        from hsiseu.faults.litert.backend import TFLiteBackend
        from hsiseu.quantization.interpreter import DEFAULT_KERNELS

        return TFLiteBackend(bytes(model), x, kernels=str(options.get("kernels", DEFAULT_KERNELS)), engine=engine,
                             include_other_constants=bool(options.get("include_int8_constants", False)))
    if not _is_keras_model(model):
        raise TypeError(f"model: expected a keras.Model, a .keras or .tflite path, or .tflite bytes; "
                        f"got {type(model).__name__}")
    from hsiseu.faults.keras.backend import KerasBackend

    return KerasBackend(model, x, engine=engine, memory_mb=float(options.get("memory_mb", 32)),
                        image_chunk=options.get("image_chunk"),
                        include_moving_stats=bool(options.get("include_bn_moving_stats", False)))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:16]


def _model_id(model: ModelLike) -> str:
    """What identifies the model in ``campaign.json`` (a resumed campaign must match it)."""
    if _is_path(model):
        path = Path(model)
        return f"{path.resolve()} sha256:{_digest(path.read_bytes())}"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return f".tflite bytes sha256:{_digest(bytes(model))}"
    weights = [np.ascontiguousarray(np.asarray(w)).tobytes() for w in model.get_weights()]
    try:
        architecture = model.to_json().encode()
    except (TypeError, ValueError, NotImplementedError):  # a model Keras cannot serialise
        architecture = b""
    return f"keras.Model {model.name!r} sha256:{_digest(architecture, *weights)}"


def _array_id(a: np.ndarray | None) -> str | None:
    return None if a is None else f"{a.dtype} {list(a.shape)} sha256:{_digest(np.ascontiguousarray(a).tobytes())}"


@dataclass(frozen=True)
class CampaignResult:
    """What :func:`run` returns: the campaign's tables (those of its files) and the model-level
    statistics of :mod:`hsiseu.faults.stats.aggregate` (% with the interval at ``confidence``).

    - ``outcomes``: one row per fault run (set, kind, layer, bit, index, original and faulty
      value, ``error_rate`` and ``error_rate_labelled`` in %, ``changed``, ``nonfinite``);
    - ``cells``: one row per (parameter set, bit): ``n``, ``error_rate`` with ``error_rate_low``
      / ``_high`` and how the interval was made, and its population unit's estimate;
    - ``parameter_sets``: the sets (name, kind, layer, shape, size, dtype);
    - ``set_mean``, ``network_rate``: dicts ``mean`` / ``low`` / ``high``; ``per_set``: a frame.
    """

    outcomes: pd.DataFrame
    cells: pd.DataFrame
    parameter_sets: pd.DataFrame
    sampling: dict[str, Any]
    out: Path | None = None
    statistics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def set_mean(self) -> dict[str, float]:
        """Mean over parameter sets (each set alike; the paper's Figs. 3, 5, 8)."""
        return self.statistics["set_mean"]

    @property
    def network_rate(self) -> dict[str, float]:
        """Error rate of one random bit flip anywhere in the parameter memory."""
        return self.statistics["network_rate"]

    @property
    def per_set(self) -> pd.DataFrame:
        """Each parameter set's mean over its bits with its interval, in graph order."""
        from hsiseu.faults.stats.aggregate import per_set_mean

        return per_set_mean(self.cells)

    def __repr__(self) -> str:
        level = f"{100 * float(self.sampling.get('confidence', 0.95)):g} %"
        stats = "; ".join(f"{name} {v['mean']:.3g} % [{v['low']:.3g}, {v['high']:.3g}]"
                          for name, v in self.statistics.items())
        return (f"CampaignResult({len(self.outcomes)} faults, {len(self.parameter_sets)} parameter sets, "
                f"{len(self.cells)} cells; {stats} ({level}){'; ' + str(self.out) if self.out else ''})")


def run(model: ModelLike, images: Any, labels: Any = None, *, error_margin: float = 0.025,
        confidence: float = 0.95, method: str | None = "adaptive", population: str = "cell",
        mantissa_population: str = "cell", mantissa_error_margin: float | None = None,
        strata: Sequence[str] | None = None, p: float = 0.5,
        fixed_n: int | None = None, bits: Sequence[int] | None = None, seed: int = 0,
        out: str | os.PathLike[str] | None = None, progress: bool = True, engine: str = "fast",
        kernels: str = "xnnpack", memory_mb: float = 32, image_chunk: int | None = None,
        include_bn_moving_stats: bool = False, include_int8_constants: bool = False,
        checkpoint_faults: int = 128, threads: int | None = None, workers: int | None = None) -> CampaignResult:
    """Run a statistical single-bit-flip campaign over ``model``'s parameters on ``images``.

    Model and data:
        model: a ``keras.Model`` (functional, made of Keras's own layers), a ``.keras`` path, or
            an int8 ``.tflite`` model as a path or bytes.
        images: array (N, ...) of inputs the model takes (cast to float32).
        labels: optional integer array shaped like the class map ((N, H, W) for a segmentation
            model, (N,) for a classifier; 255 = unlabelled): adds ``error_rate_labelled``.

    Sampling (per population unit, :mod:`hsiseu.faults.stats`):
        method: ``adaptive`` (default: stops a unit as soon as its earned variance bound gives
            +- ``error_margin``; never more faults than ``leveugle``), ``leveugle`` (Leveugle's n
            at ``p``), ``fixed`` (``fixed_n`` per unit); None: ``fixed`` when ``fixed_n`` is set,
            else ``leveugle`` (the command line's default).
        population: ``cell`` (one parameter set x bit), ``set`` (the bit drawn per fault),
            ``network`` (one estimate); ``mantissa_population="set"`` pools a float set's 23
            mantissa bits into one unit (at ``mantissa_error_margin``, None = ``error_margin``).
        strata: ``adaptive`` only: keys that split a unit into strata known from the weights,
            ``sign`` (the value is negative) and ``bit_value`` (the flipped bit is 1); each
            stratum is weighed by its exact share (post-stratification, docs/sampling.md).
            None: ``["sign"]`` for ``adaptive``, none otherwise.
        bits: bit positions to flip (default: every bit: 31..0 for float32, 7..0 for int8
            kernels, 31..0 for int32 biases); seed: seed of the fault list.

    Running:
        out: a folder for the campaign's files (resumable: call again after an interruption and
            it continues; a folder holding a campaign with other settings is refused). None:
            a temporary folder, removed afterwards.
        progress: a tqdm bar over the faults. engine: ``fast`` (default) or ``reference`` (the
            naive loop; identical outcomes). kernels: LiteRT kernels of a ``.tflite`` model
            (``xnnpack``, LiteRT's default, or ``builtin``). memory_mb / image_chunk: batch
            budget and images per call of the float engine. threads: TensorFlow's intra-op
            threads of this process (default: all with one worker; 1 with more, since this process
            then runs chunks beside the workers; only before TensorFlow has run its first op).
        workers: processes running the campaign's chunks, one thread each: this one and
            ``workers - 1`` worker processes, each taking the next chunk as it finishes one
            (default: the cores this process may use; 1 = this process alone). The outcomes and
            files do not depend on it.

    Returns a :class:`CampaignResult`.
    """
    x, y = check_arrays(images, labels)
    from hsiseu.faults.workers import available_cores

    workers = available_cores() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    options = {"engine": engine, "memory_mb": memory_mb, "image_chunk": image_chunk,
               "include_bn_moving_stats": include_bn_moving_stats,
               "include_int8_constants": include_int8_constants, "kernels": kernels}
    # the workers start first: their start-up (TensorFlow's import, the model) overlaps this
    # process's own from its beginning
    with _Pool(model, x, options, workers) as pool:
        if _is_keras(model):
            import keras

            if keras.backend.backend() == "tensorflow":
                from hsiseu.runtime import configure_tensorflow

                # with workers, this process runs chunks beside them: one thread, as they do
                configure_tensorflow(threads if threads is not None or workers == 1 else 1)
        backend = open_model(model, x, options)
        golden = backend.golden()
        labels_ = np.zeros(golden.shape, np.uint8) if y is None else y
        if labels_.shape != golden.shape:
            raise CampaignInputError(f"labels: shape {labels_.shape} does not match the model's class map {golden.shape}")
        if strata is None:
            strata = ["sign"] if method == "adaptive" else []
        sampling = {"method": method, "population": population, "mantissa_population": mantissa_population,
                    "strata": list(strata), "error_margin": error_margin, "mantissa_error_margin": mantissa_error_margin,
                    "confidence": confidence, "p": p, "fixed_n": fixed_n}
        bits = None if bits is None else [int(b) for b in bits]
        settings = {"model": _model_id(model), "images": _array_id(x), "labels": _array_id(y), "sampling": sampling,
                    "bits": bits, "seed": int(seed), "include_bn_moving_stats": include_bn_moving_stats,
                    "include_int8_constants": include_int8_constants}
        if not _is_keras(model):
            settings["kernels"] = kernels
        pool.labels = labels_
        if out is None:
            with tempfile.TemporaryDirectory(prefix="hsiseu-faults-") as tmp:
                result = _campaign(backend, Path(tmp), settings, checkpoint_faults, progress, pool)
            return replace(result, out=None)
        return _campaign(backend, Path(out), settings, checkpoint_faults, progress, pool)


class _Pool:
    """The worker processes of one campaign (:class:`~hsiseu.faults.workers.ChunkPool`), started
    on entry, before this process imports TensorFlow and opens the model, so that their start-up
    overlaps its own: they need the model as a file and the images then, the labels and a copy
    of the fault list only with their first chunk."""

    def __init__(self, model: ModelLike, images: np.ndarray, options: Mapping[str, Any], workers: int) -> None:
        self.model, self.images, self.options, self.workers = model, images, dict(options), int(workers)
        self.labels: np.ndarray | None = None
        self._chunks = None
        self._spec: dict[str, Any] = {}

    def __enter__(self) -> "_Pool":
        if self.workers > 1 and _openable(self.model):  # else open_model refuses it before anything runs
            from hsiseu.faults.workers import ChunkPool

            self._scratch = tempfile.TemporaryDirectory(prefix="hsiseu-workers-")
            scratch = Path(self._scratch.name)
            self._spec = {"model": str(self._model_file(scratch)), "images": str(scratch / "images.npy"),
                          "labels": str(scratch / "labels.npy"), "options": self.options,
                          "faults": str(scratch / "fault_list.csv")}
            np.save(self._spec["images"], self.images)
            self._chunks = ChunkPool(self._spec, self.workers, scratch)
            self._chunks.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._chunks is not None:
            self._chunks.__exit__(*exc)
            self._scratch.cleanup()

    def run(self, backend: Backend, faults: Path, out: Path, *, chunk_size: int, sampling: Mapping[str, Any],
            bits: Sequence[int] | None, progress: bool) -> None:
        """The campaign's one shard on ``backend``, its chunks shared with the workers."""
        from hsiseu.faults.campaign import run_shard

        if self._chunks is not None:
            np.save(self._spec["labels"], self.labels)
            shutil.copyfile(faults, self._spec["faults"])
        run_shard(backend, faults_path=faults, labels=self.labels, shard=0, n_shards=1, out=out,
                  chunk_size=chunk_size, progress=progress, sampling=sampling, bits=bits, pool=self._chunks)

    def _model_file(self, scratch: Path) -> Path:
        if _is_path(self.model):
            return Path(self.model)
        if isinstance(self.model, (bytes, bytearray, memoryview)):
            path = scratch / "model.tflite"
            path.write_bytes(bytes(self.model))
            return path
        path = scratch / "model.keras"
        self.model.save(path)
        return path


def _campaign(backend: Backend, out: Path, settings: dict[str, Any], checkpoint_faults: int,
              progress: bool, pool: _Pool) -> CampaignResult:
    """The campaign's files in ``out`` (fault list, the shards, merge), read back."""
    from hsiseu.faults import campaign
    from hsiseu.faults.stats.aggregate import network_rate, set_mean
    from hsiseu.io import read_json, write_json

    sampling, bits = settings["sampling"], settings["bits"]
    out.mkdir(parents=True, exist_ok=True)
    record = out / "campaign.json"
    if record.exists() and read_json(record) != settings:
        raise CampaignInputError(f"out {out} holds a campaign with other settings ({record}); use another directory "
                         "or delete it")
    write_json(record, settings)
    faults, sets = out / "fault_list.csv", out / "parameter_sets.csv"
    if not faults.exists():
        campaign.write_fault_list(backend, sampling=sampling, bits=bits, seed=settings["seed"],
                                  out_faults=faults, out_sets=sets)
    shards = [out / "shards" / "0-of-1.csv"]
    if not shards[0].exists():  # written at its end: a finished shard is kept
        pool.run(backend, faults, shards[0], chunk_size=checkpoint_faults, sampling=sampling, bits=bits,
                 progress=progress)
    campaign.merge_shards(shards, faults_path=faults, sets_path=sets, out_outcomes=out / "outcomes.csv",
                          out_cells=out / "cells.csv", sampling=sampling, bits=bits,
                          out_faults_run=out / "faults_run.csv")
    cells = pd.read_csv(out / "cells.csv")
    return CampaignResult(outcomes=pd.read_csv(out / "outcomes.csv"), cells=cells,
                          parameter_sets=pd.read_csv(sets), sampling=dict(sampling), out=out,
                          statistics={"set_mean": set_mean(cells), "network_rate": network_rate(cells)})
