"""Time the int8 engines on the same faults: ``hsiseu faults-int8-benchmark`` (or
``python -m hsiseu.faults.litert.benchmark``).

Every engine runs the same seeded fault sample (``--per-cell`` faults per parameter set x bit)
on the same images; their class maps are compared fault by fault before any rate is reported,
so a fast engine that got faster by being wrong fails here. ``reference`` rebuilds the
interpreter from flipped bytes per fault; ``inplace`` flips in the live interpreter and starts at
the faulty operator; ``fast`` adds fault dropping and the memo (see ``litert.fast``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hsiseu.faults import faultlist
from hsiseu.faults.litert.backend import ENGINES, TFLiteBackend

__all__ = ["benchmark", "main"]


def benchmark(content: bytes, x: np.ndarray, *, per_cell: int = 2, seed: int = 0,
              engines: Sequence[str] = ENGINES, include_int8_constants: bool = False) -> dict:
    """Faults per second of each engine on one fault sample, and each rate over the reference's.

    Rates are per CPU second of this process (the interpreters run one thread), which stays
    meaningful on a shared machine; wall-clock rates are reported beside them."""
    rates: dict[str, float] = {}
    wall: dict[str, float] = {}
    classes: dict[str, list] = {}
    golden = None
    faults = None
    for name in engines:
        t0 = time.perf_counter()
        backend = TFLiteBackend(content, x, engine=name, include_other_constants=include_int8_constants)
        setup = time.perf_counter() - t0
        if faults is None:
            frame = faultlist.generate(backend.parameter_sets(), sampling={"fixed_n": per_cell}, bits=None, seed=seed)
            faults = faultlist.faults_of(frame)
            golden = backend.golden()
        if not np.array_equal(backend.golden(), golden):
            raise AssertionError(f"engine {name}: fault-free class map differs from {engines[0]}'s")
        t0, c0 = time.perf_counter(), time.process_time()
        preds = list(backend.run(faults))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        classes[name] = [golden if p.classes is None else p.classes for p in preds]
        rates[name] = len(faults) / cpu
        wall[name] = len(faults) / elapsed
        print(f"{name:>10}: {len(faults)} faults in {cpu:.1f} s CPU ({elapsed:.1f} s wall) = {rates[name]:.1f} "
              f"faults per CPU second (setup {setup:.1f} s) {dict(getattr(backend.engine, 'stats', {}))}",
              file=sys.stderr)
    first = engines[0]
    for name in engines[1:]:
        bad = [f.fault for f, a, b in zip(faults, classes[first], classes[name], strict=True) if not np.array_equal(a, b)]
        if bad:
            raise AssertionError(f"engines {first} and {name} disagree on {len(bad)} faults, e.g. {bad[:5]}")
    changed = sum(bool((c != golden).any()) for c in classes[first])
    base = rates.get("reference")
    return {"faults": len(faults), "changed": changed, "images": int(len(x)), "faults_per_cpu_s": rates,
            "faults_per_wall_s": wall,
            "speedup_vs_reference": {k: v / base for k, v in rates.items()} if base else {}}


def _tiny_model(af: str) -> bytes:
    from hsiseu.model import build_unet
    from hsiseu.quantization.convert import quantize_int8

    model = build_unet(height=32, width=64, bands=25, n_classes=5, af=af, pools=2, base_filters=4, seed=0)
    return quantize_int8(model, np.random.default_rng(0).random((4, 32, 64, 25), dtype=np.float32))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hsiseu faults-int8-benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help=".tflite int8 model (default: a tiny untrained U-Net)")
    p.add_argument("--af", default="relu", help="activation of the tiny model when --model is not given")
    p.add_argument("--images", type=Path, help=".npy float32 (N, H, W, B) test images (default: random)")
    p.add_argument("--n-images", type=int, default=4, help="first n images used")
    p.add_argument("--per-cell", type=int, default=2, help="faults per (parameter set, bit) cell")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the result as JSON here")
    args = p.parse_args(argv)
    content = args.model.read_bytes() if args.model else _tiny_model(args.af)
    if args.images:
        x = np.load(args.images)[: args.n_images]
    else:
        from hsiseu.quantization.interpreter import make_interpreter

        shape = make_interpreter(content).get_input_details()[0]["shape"][1:]
        x = np.random.default_rng(args.seed).random((args.n_images, *shape), dtype=np.float32)
    result = benchmark(content, x, per_cell=args.per_cell, seed=args.seed, engines=args.engines)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from hsiseu.io import write_text

        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
