"""A campaign on the user's own model and data, without the Snakemake pipeline.

``hsiseu faults-campaign --model my.keras --images x.npy [--labels y.npy] --out dir/`` draws the
fault list (Leveugle's n per (set, bit) cell, or ``--fixed-n``), runs it with the fast engine
(checkpointed: run the same command again after a kill and it resumes) and writes the same
files as the pipeline's campaigns: ``parameter_sets.csv``, ``fault_list.csv``, ``outcomes.csv``
and ``cells.csv`` (and ``campaign.json``, the settings a resumed run must match). A ``.keras`` model goes to the float backend, a ``.tflite`` one to the int8
backend; the outcome of a fault is the share of output positions (pixels, or images for a
classifier) whose arg-max class differs from the fault-free model's.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main", "load_arrays"]

log = logging.getLogger(__name__)


def load_arrays(images: str | Path, labels: str | Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (float32) and optional labels (integers, 255 = unlabelled), checked."""
    images = Path(images)
    if not images.is_file():
        raise FileNotFoundError(f"--images {images}: no such file")
    try:
        x = np.load(images, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"--images {images}: not a .npy array ({err})") from None
    if x.dtype.kind != "f" or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"--images {images}: expected a non-empty float array (N, ...), got {x.dtype} {x.shape}")
    y = None
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise FileNotFoundError(f"--labels {labels}: no such file")
        y = np.load(labels, allow_pickle=False)
        if y.dtype.kind not in "iu" or len(y) != len(x):
            raise ValueError(f"--labels {labels}: expected {len(x)} integer label maps, got {y.dtype} {y.shape}")
    return np.ascontiguousarray(x, dtype=np.float32), y


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsiseu faults-campaign", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=".keras (float) or .tflite (int8) model")
    parser.add_argument("--images", required=True, help=".npy array of test images (N, ...) the model takes")
    parser.add_argument("--labels", default=None,
                        help=".npy integer labels (N, ...) shaped like the class map; 255 = unlabelled")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--error-margin", type=float, default=0.025, help="Leveugle's e (default 0.025)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--p", type=float, default=0.5, help="assumed failure probability (default 0.5)")
    parser.add_argument("--fixed-n", type=int, default=None, help="a fixed number of faults per cell instead")
    parser.add_argument("--method", choices=("fixed", "leveugle", "adaptive"), default=None,
                        help="sampling: leveugle (default; fixed with --fixed-n) or adaptive (stops each unit "
                             "once Leveugle's n at its earned variance bound is reached)")
    parser.add_argument("--population", choices=("cell", "set", "network"), default="cell",
                        help="population unit of the sample size: a (set, bit) cell (default), a set, the network")
    parser.add_argument("--bits", type=int, nargs="+", default=None, help="bit positions (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault list")
    parser.add_argument("--engine", default="fast", help="fast (default) or reference")
    parser.add_argument("--memory-mb", type=float, default=32, help="float fast engine batch budget (MiB)")
    parser.add_argument("--image-chunk", type=int, default=None, help="float models: images per model call")
    parser.add_argument("--include-bn-moving-stats", action="store_true", help="also inject into BN statistics")
    parser.add_argument("--checkpoint-faults", type=int, default=512, help="faults per checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads (default: all)")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin"), default="xnnpack",
                        help=".tflite models: LiteRT kernels that define the int8 model, fault-free and faulty "
                             "(default xnnpack, what LiteRT's Interpreter uses by default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from hsiseu.faults import campaign
    from hsiseu.faults.registry import open_model

    model = Path(args.model)
    if not model.is_file():
        parser.error(f"--model {model}: no such file")
    try:
        x, y = load_arrays(args.images, args.labels)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    from hsiseu.runtime import configure_tensorflow

    configure_tensorflow(args.threads, args.seed)
    options = {"engine": args.engine, "memory_mb": args.memory_mb, "image_chunk": args.image_chunk,
               "include_bn_moving_stats": args.include_bn_moving_stats, "kernels": args.kernels}
    backend = open_model(model, x, options)
    labels = np.zeros(backend.golden().shape, np.uint8) if y is None else y
    if labels.shape != backend.golden().shape:
        parser.error(f"--labels {args.labels}: shape {labels.shape} does not match the model's class map "
                     f"{backend.golden().shape}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = {"method": args.method, "population": args.population,
                "error_margin": args.error_margin, "confidence": args.confidence, "p": args.p,
                "fixed_n": args.fixed_n}
    from hsiseu.io import read_json, write_json

    settings = {"model": str(model.resolve()), "images": str(Path(args.images).resolve()), "sampling": sampling,
                "bits": args.bits, "seed": args.seed, "include_bn_moving_stats": args.include_bn_moving_stats}
    if model.suffix.lower() == ".tflite":
        settings["kernels"] = args.kernels
    record = out / "campaign.json"
    if record.exists() and read_json(record) != settings:
        parser.error(f"--out {out} holds a campaign with other settings ({record}); use another directory "
                     "or delete it")
    write_json(record, settings)
    faults, sets = out / "fault_list.csv", out / "parameter_sets.csv"
    if not faults.exists():
        campaign.write_fault_list(backend, sampling=sampling, bits=args.bits, seed=args.seed,
                                  out_faults=faults, out_sets=sets)
    shard = out / "shards" / "0-of-1.csv"
    campaign.run_shard(backend, faults_path=faults, labels=labels, shard=0, n_shards=1, out=shard,
                       chunk_size=args.checkpoint_faults, sampling=sampling, bits=args.bits)
    campaign.merge_shards([shard], faults_path=faults, sets_path=sets, out_outcomes=out / "outcomes.csv",
                          out_cells=out / "cells.csv", sampling=sampling, bits=args.bits,
                          out_faults_run=out / "faults_run.csv")
    print(f"{out / 'outcomes.csv'}, {out / 'cells.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
