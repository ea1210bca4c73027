"""The int8 loops of ``hsiseu faults-benchmark`` (a ``.tflite`` model), against what a LiteRT user
would write: per fault, flip the bit in a copy of the model bytes, build an interpreter from them
and run the test images.

On the campaign's own fault list (contiguous blocks spread over it, or all of it), in the chunks
a shard runs, with one thread, the loops take turns chunk by chunk:

- **naive, default interpreter**: ``Interpreter(model_content=..., num_threads=1)``, which is
  LiteRT's default resolver with the XNNPACK delegate (``quantization.kernels: xnnpack``);
- **naive, builtin kernels**: the same with
  ``experimental_op_resolver_type=BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (``builtin``);
- **fast**, cold (its set-up and the first building of each downstream included) and warm, with
  the kernels asked for (default: the config's ``quantization.kernels``).

The naive loop with the engine's kernels is the baseline of record: every fault's outcome must
be identical to it (the command fails otherwise). The other kernels' loop is timed for reference;
its outcomes differ where the kernels round differently, which is counted, not an error. The FLOP
ceiling is the mean share of a forward pass's multiply-accumulates that a fault can change (the
faulty operator's one output channel and every operator downstream of it): its inverse bounds the
speed-up of any engine that recomputes that exactly, not counting the interpreter builds the
naive loop pays on top.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import yaml

__all__ = ["NaiveRebuild", "flop_shares", "run_benchmark", "main"]


class NaiveRebuild:
    """The loop a LiteRT user writes, with the given kernels (``None``: the interpreter's own
    default), on test images already quantized by the model's input quantization."""

    def __init__(self, content: bytes, xq: np.ndarray, tensor_of: dict[str, int], kernels: str | None) -> None:
        from hsiseu.quantization.interpreter import KERNELS

        self.content, self.xq, self.tensor_of = bytes(content), xq, tensor_of
        self.options = {} if kernels is None else {"experimental_op_resolver_type": KERNELS[kernels]}
        from hsiseu.faults.outcomes import classes_from_scores

        self.golden = classes_from_scores(self._classes(self.content))

    def _classes(self, model: bytes) -> np.ndarray:
        """The model's scores on the images (the name: what the naive loop turns into classes)."""
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=model, num_threads=1, **self.options)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
        scores = []
        for i in range(len(self.xq)):
            interp.set_tensor(inp, self.xq[i : i + 1])
            interp.invoke()
            scores.append(interp.get_tensor(out).copy())
        return np.concatenate(scores)

    def run(self, faults) -> Iterator:
        from hsiseu.faults.litert.reference import flipped_model
        from hsiseu.faults.shared import prediction_from_scores

        for f in faults:
            yield prediction_from_scores(self._classes(bytes(flipped_model(self.content, self.tensor_of[f.set],
                                                                           f.index, f.bit))))


def flop_shares(content: bytes, sets, faults) -> np.ndarray:
    """Per fault, the share of a pass's multiply-accumulates a fault can change: the faulty
    operator's one output channel and every operator downstream of it."""
    from ai_edge_litert import schema_py_generated as schema

    from hsiseu.quantization.graph import op_macs, operators

    graph = schema.Model.GetRootAs(content, 0).Subgraphs(0)
    ops, macs = operators(content), op_macs(content)
    readers: dict[int, list[int]] = {}
    for op in ops:
        for t in op.inputs:
            readers.setdefault(t, []).append(op.index)
    total = max(sum(macs), 1)
    share: dict[int, float] = {}
    for s in sets:
        j = s.consumers[0]
        seen, todo = set(), [t for k in s.consumers for t in ops[k].outputs]
        while todo:
            for k in readers.get(todo.pop(), []):
                if k not in seen:
                    seen.add(k)
                    todo.extend(ops[k].outputs)
        channels = int(graph.Tensors(ops[j].outputs[0]).ShapeAsNumpy()[-1])
        share[s.tensor] = (macs[j] / channels + sum(macs[k] for k in seen)) / total
    tensor_of = {s.pset.name: s.tensor for s in sets}
    return np.array([share[tensor_of[f.set]] for f in faults])


def run_benchmark(content: bytes, x: np.ndarray, faults, *, kernels: str, chunk: int,
                  include_other_constants: bool = False) -> dict:
    """Every loop on the same faults; rows of (name, wall s/fault, CPU s/fault, predictions)."""
    import time

    from hsiseu.faults.timing import take_turns, timed
    from hsiseu.faults.litert.backend import TFLiteBackend
    from hsiseu.quantization.interpreter import KERNELS

    t0 = time.perf_counter()
    fast = TFLiteBackend(content, x, kernels=kernels, engine="fast", include_other_constants=include_other_constants)
    setup = time.perf_counter() - t0
    tensor_of = {s.pset.name: s.tensor for s in fast.tensor_sets}
    naive = {k: NaiveRebuild(content, fast.engine.xq, tensor_of, None if k == "xnnpack" else k) for k in KERNELS}
    cold, wall, cpu = timed(fast.run, faults, chunk)
    cold_stats = dict(fast.engine.stats)
    fast.engine._memo.clear()
    fast.engine.stats.clear()
    turns = take_turns({**{f"naive-{k}": loop.run for k, loop in naive.items()}, "fast": fast.run}, faults, chunk)
    rows = [(f"naive, {'default interpreter (xnnpack)' if k == 'xnnpack' else 'builtin kernels'}", k,
             turns[f"naive-{k}"]) for k in KERNELS]
    rows.append(("fast, cold (set-up included)", kernels, (cold, (wall + setup) / len(faults), cpu / len(faults))))
    rows.append(("fast, warm", kernels, turns["fast"]))
    goldens = {k: loop.golden for k, loop in naive.items()}
    if not np.array_equal(goldens[kernels], fast.golden()):
        raise AssertionError(f"the fast engine's fault-free class map differs from the naive {kernels} loop's")
    return {"rows": rows, "backend": fast, "goldens": goldens, "cold_stats": cold_stats, "setup_s": setup}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsiseu faults-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config (data, quantization, faults)")
    parser.add_argument("--model", default="results/relu/rep0/quantized/model.tflite", help="int8 .tflite model file")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin"), default=None,
                        help="kernels of the fast engine and of the baseline of record (default: the config's)")
    parser.add_argument("--blocks", type=int, default=4, help="contiguous blocks of the fault list")
    parser.add_argument("--block-size", type=int, default=300, help="faults per block")
    parser.add_argument("--all", action="store_true", help="the whole fault list instead of blocks")
    parser.add_argument("--chunk", type=int, default=None, help="faults per run call (default: config checkpoint_faults)")
    args = parser.parse_args(argv)

    from hsiseu.faults import faultlist
    from hsiseu.faults.timing import spread_blocks
    from hsiseu.faults.litert.sets import int8_parameter_sets
    from hsiseu.faults.outcomes import outcome_of
    from hsiseu.faults.tasks import test_data

    from hsiseu.settings import stage_config

    config = stage_config(yaml.safe_load(Path(args.config).read_text()), "quantized")
    fcfg = config["faults"]
    kernels = args.kernels or config["quantization"]["kernels"]
    path = Path(args.model)
    if not path.is_file():
        parser.error(f"--model {path}: no such file (run the pipeline first, or name your own .tflite model)")
    content = path.read_bytes()
    x, y = test_data(config)
    chunk = int(args.chunk or fcfg["checkpoint_faults"])
    others = bool(fcfg.get("include_int8_constants", False))
    sets = int8_parameter_sets(content, include_other_constants=others)
    frame = faultlist.generate([s.pset for s in sets], sampling=fcfg["sampling"], bits=fcfg.get("bits"),
                               seed=int(fcfg["seed"]))
    spans = [(0, len(frame))] if args.all else spread_blocks(len(frame), args.blocks, args.block_size)
    faults = [f for a, b in spans for f in faultlist.faults_of(frame.iloc[a:b])]
    result = run_benchmark(content, x, faults, kernels=kernels, chunk=chunk, include_other_constants=others)
    rows, goldens = result["rows"], result["goldens"]
    labelled = y != 255
    record = [outcome_of(goldens[kernels], p, labelled) for p in next(ps for _, k, (ps, _, _) in rows if k == kernels)]
    base = {k: (wall, cpu) for name, k, (_, wall, cpu) in rows if name.startswith("naive")}

    def same(ps: list, k: str) -> int:
        """Faults whose outcome (against the fault-free map of the same kernels) is the record's."""
        return sum(outcome_of(goldens[k], p, labelled) == r for p, r in zip(ps, record))

    print(f"model: {path}; {len(x)} test images {'x'.join(map(str, x.shape[1:]))}; {len(sets)} parameter sets; "
          f"kernels of record: {kernels}; 1 thread")
    print(f"sample: {len(faults)} faults of the {len(frame)}-fault list in "
          + ", ".join(f"[{a}, {b})" for a, b in spans) + f"; run {chunk} faults per call, as a shard does")
    others_k = [k for k in base if k != kernels]
    print(f"fault-free class maps, xnnpack vs builtin kernels: "
          f"{100 * float(np.mean(goldens['xnnpack'] == goldens['builtin'])):.3f} % of pixels equal")
    print(f"{'loop':<36}{'kernels':>9}{'ms/fault':>10}{'CPU ms':>9}" + "".join(f"{'x naive ' + k:>16}" for k in base)
          + f"  identical outcomes to naive {kernels}")
    for name, k, (preds, wall, cpu) in rows:
        ratios = "".join(f"{base[b][1] / cpu:>16.2f}" for b in base)
        print(f"{name:<36}{k:>9}{1e3 * wall:>10.2f}{1e3 * cpu:>9.2f}{ratios}  {same(preds, k)}/{len(preds)}")
    shares = flop_shares(content, sets, faults)
    ceiling = 1.0 / float(shares.mean())
    warm_cpu = rows[-1][2][2]
    print(f"FLOP ceiling of the sample: {100 * shares.mean():.1f} % of a pass's multiply-accumulates can change "
          f"on average -> {ceiling:.2f}x (interpreter builds not counted); fast (warm) reaches "
          f"{base[kernels][1] / warm_cpu:.2f}x the naive loop with its kernels in CPU time "
          f"= {100 * base[kernels][1] / warm_cpu / ceiling:.0f} % of it"
          + "".join(f", {base[k][1] / warm_cpu:.2f}x the naive {k} loop" for k in others_k))
    st = result["cold_stats"]
    print(f"fast engine (cold run): {st.get('dropped', 0)} dropped at the faulty operator, {st.get('memo_hits', 0)} "
          f"memo hits, {st.get('tail_runs', 0)} downstream runs, {st.get('rebuilt', 0)} faulty operators rebuilt "
          f"from flipped bytes, {st.get('interpreters_built', 0)} interpreters built once, "
          f"{st.get('reference_faults', 0)} faults sent to the naive loop; set-up {result['setup_s']:.2f} s")
    bad = [name for name, k, (preds, _, _) in rows if name.startswith("fast") and same(preds, k) != len(preds)]
    if bad:
        print(f"ERROR: {', '.join(bad)}: outcomes differ from the naive loop with the same kernels")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
