"""A campaign on the user's own model and data, without the Snakemake pipeline.

``hsiseu faults-campaign --model my.keras --images x.npy [--labels y.npy] --out dir/`` draws the
fault list (Leveugle's n per (set, bit) cell, or ``--fixed-n``), runs it with the fast engine
(checkpointed: run the same command again after a kill and it resumes) and writes the same
files as the pipeline's campaigns: ``parameter_sets.csv``, ``fault_list.csv``, ``outcomes.csv``
and ``cells.csv`` (and ``campaign.json``, the settings a resumed run must match). A ``.keras`` model goes to the float backend, a ``.tflite`` one to the int8
backend; the outcome of a fault is the share of output positions (pixels, or images for a
classifier) whose arg-max class differs from the fault-free model's.

The command line of :func:`hsiseu.faults.api.run` (the same campaign from Python).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hsiseu.faults.api import CampaignInputError, check_arrays

__all__ = ["main", "load_arrays"]


def load_arrays(images: str | Path, labels: str | Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (float32) and optional labels (integers, 255 = unlabelled) from .npy files, checked."""
    images = Path(images)
    if not images.is_file():
        raise FileNotFoundError(f"--images {images}: no such file")
    try:
        x = np.load(images, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"--images {images}: not a .npy array ({err})") from None
    y = None
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise FileNotFoundError(f"--labels {labels}: no such file")
        y = np.load(labels, allow_pickle=False)
    return check_arrays(x, y, images_name=f"--images {images}", labels_name=f"--labels {labels}")


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
    parser.add_argument("--strata", nargs="*", choices=("sign", "bit_value"), default=None,
                        help="adaptive: strata inside a unit, known from the weights (default: sign; "
                             "--strata with no key: none)")
    parser.add_argument("--bits", type=int, nargs="+", default=None, help="bit positions (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault list")
    parser.add_argument("--engine", default="fast", help="fast (default) or reference")
    parser.add_argument("--memory-mb", type=float, default=32, help="float fast engine batch budget (MiB)")
    parser.add_argument("--image-chunk", type=int, default=None, help="float models: images per model call")
    parser.add_argument("--include-bn-moving-stats", action="store_true", help="also inject into BN statistics")
    parser.add_argument("--checkpoint-faults", type=int, default=128,
                        help="faults per checkpoint, and per chunk a worker takes (default 128)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads of this process (default: all with one worker, "
                             "else 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes running the campaign's chunks, one thread each: this one and "
                             "workers - 1 others, each taking the next chunk as it finishes one (default: the "
                             "cores this process may use; the outcomes do not depend on it)")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin"), default="xnnpack",
                        help=".tflite models: LiteRT kernels that define the int8 model, fault-free and faulty "
                             "(default xnnpack, what LiteRT's Interpreter uses by default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from hsiseu.faults.api import run

    model = Path(args.model)
    if not model.is_file():
        parser.error(f"--model {model}: no such file")
    try:
        x, y = load_arrays(args.images, args.labels)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    try:
        result = run(model, x, y, error_margin=args.error_margin, confidence=args.confidence, method=args.method,
                     population=args.population, strata=args.strata, p=args.p, fixed_n=args.fixed_n, bits=args.bits, seed=args.seed,
                     out=args.out, engine=args.engine, kernels=args.kernels, memory_mb=args.memory_mb,
                     image_chunk=args.image_chunk, include_bn_moving_stats=args.include_bn_moving_stats,
                     checkpoint_faults=args.checkpoint_faults, threads=args.threads,
                     workers=args.workers)
    except CampaignInputError as err:  # labels that do not fit the model, a folder of another campaign
        parser.error(str(err))
    print(f"{result.out / 'outcomes.csv'}, {result.out / 'cells.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
