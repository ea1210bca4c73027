"""Time the float fault-injection loops on the same faults, in one process, against the loop a
user would write.

``hsiseu faults-benchmark``: on the campaign's own fault list (contiguous blocks spread over it,
or all of it), run in chunks as a shard does, it times

- **naive**: per fault flip, ``variable.assign``, ``tf.function(model.__call__)`` with
  TensorFlow's default graph rewrites, class map, restore: the baseline of record;
- **model.predict** per fault (how TensorFI2 evaluates), on the first faults only (it is slow);
- **reference**: the project's definition, the naive loop with the reassociating rewrites off
  (``compiled.exact_graphs``);
- **fast**: the compiled engine, cold (compiling included, as a shard pays it once) and warm,

compares every fault's outcome with the naive loop and the reference, and prints the exact
engine's FLOP ceiling on the sample: the mean share of a forward pass's convolution FLOPs that
lie downstream of the faulty layer (plus the faulty channel), whose inverse bounds the speed-up
of any engine that recomputes exactly what a fault can change.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from hsiseu.faults.shared import same_array_bits

__all__ = ["main", "flop_shares"]


def flop_shares(graph, faults) -> np.ndarray:
    """Per fault, the share of a pass's convolution FLOPs an exact engine must recompute: the
    faulty layer's one output channel and every layer downstream of it."""
    from hsiseu.faults.keras.graph import channel_rule
    from hsiseu.keras_graph import conv_flops

    flops = {n: conv_flops(graph.nodes[n].layer) for n in graph.computed()}
    total = max(sum(flops.values()), 1)
    share: dict[str, float] = {}
    out = np.empty(len(faults))
    for i, f in enumerate(faults):
        layer = f.set.split("/", 1)[0]
        if layer not in share:
            node = graph.nodes[layer]
            channels = int(node.layer.output.shape[-1]) if channel_rule(node.layer) is not None else 1
            share[layer] = (flops[layer] / channels + sum(flops[d] for d in graph.descendants(layer))) / total
        out[i] = share[layer]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsiseu faults-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config (data and faults sections)")
    parser.add_argument("--model", default="results/relu/rep0/original/model.keras", help="Keras model file")
    parser.add_argument("--blocks", type=int, default=4, help="contiguous blocks of the fault list")
    parser.add_argument("--block-size", type=int, default=600, help="faults per block")
    parser.add_argument("--all", action="store_true", help="the whole fault list instead of blocks")
    parser.add_argument("--predict-faults", type=int, default=100,
                        help="faults for the model.predict row (the first of the sample; 0 = skip)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    parser.add_argument("--memory-mb", type=float, default=None, help="fast engine batch budget (default: config)")
    parser.add_argument("--chunk", type=int, default=None, help="faults per run call (default: config checkpoint_faults)")
    args = parser.parse_args(argv)

    from hsiseu.faults.timing import spread_blocks, take_turns, timed as timed_run
    from hsiseu.faults.outcomes import outcome_of
    from hsiseu.faults.tasks import test_data
    from hsiseu.runtime import configure_tensorflow

    from hsiseu.settings import stage_config
    from hsiseu.stage_keys import STAGES

    # the stage's own fault settings (a per-stage e): the pipeline's folder names it
    stage = Path(args.model).parent.name if Path(args.model).parent.name in STAGES else "original"
    config = stage_config(yaml.safe_load(Path(args.config).read_text()), stage)
    configure_tensorflow(args.threads, int(config["seed"]))
    import keras

    from hsiseu.faults import faultlist
    from hsiseu.faults.keras import compiled
    from hsiseu.faults.keras.backend import KerasBackend, injectable_variables
    from hsiseu.faults.keras.graph import LayerGraph
    from hsiseu.faults.keras.reference import NaiveLoop

    fcfg = config["faults"]
    path = Path(args.model)
    if not path.is_file():
        parser.error(f"--model {path}: no such file (run the pipeline first, or name your own .keras model)")
    model = keras.saving.load_model(path, compile=False)
    x, y = test_data(config)
    chunk = int(args.chunk or fcfg["checkpoint_faults"])
    variables = injectable_variables(LayerGraph(model), bool(fcfg.get("include_bn_moving_stats", False)))
    # TensorFlow's defaults first: these functions are optimized before exact_graphs() is set
    naive = NaiveLoop(model, x, variables, image_chunk=fcfg.get("image_chunk"))
    predict = NaiveLoop(model, x, variables, call=lambda t: model.predict(t, verbose=0)) if args.predict_faults else None
    reference = KerasBackend(model, x, engine="reference", image_chunk=fcfg.get("image_chunk"),
                             include_moving_stats=bool(fcfg.get("include_bn_moving_stats", False)))
    t0 = time.perf_counter()
    fast = KerasBackend(model, x, engine="fast", memory_mb=float(args.memory_mb or fcfg["memory_mb"]),
                        image_chunk=fcfg.get("image_chunk"),
                        include_moving_stats=bool(fcfg.get("include_bn_moving_stats", False)))
    setup = time.perf_counter() - t0
    frame = faultlist.generate(fast.parameter_sets(), sampling=fcfg["sampling"], bits=fcfg.get("bits"),
                               seed=int(fcfg["seed"]))
    spans = [(0, len(frame))] if args.all else spread_blocks(len(frame), args.blocks, args.block_size)
    faults = [f for a, b in spans for f in faultlist.faults_of(frame.iloc[a:b])]
    labelled = y != 255
    golden = naive.classes

    def timed(run, sample) -> tuple[list, float, float]:
        preds, wall, cpu = timed_run(run, sample, chunk)
        return preds, wall / len(sample), cpu / len(sample)

    cold = timed(fast.run, faults)
    engine = fast.engine
    cold_stats = dict(engine.stats)
    engine._memo.clear()
    engine.stats.clear()
    engine.seconds.clear()
    # the loops take turns chunk by chunk, so that a drift of the machine's speed (shared cores)
    # reaches all of them alike
    turns = take_turns({"naive": naive.run, "reference": reference.run, "fast": fast.run}, faults, chunk)
    rows: list[tuple[str, float, float, list]] = [("naive compiled loop (TF defaults)", *turns["naive"][1:], turns["naive"][0])]
    if predict is not None:
        few = faults[: args.predict_faults]
        preds, wall, cpu = timed(predict.run, few)
        rows.append((f"model.predict per fault (first {len(few)})", wall, cpu, preds))
    rows.append(("reference (naive loop, exact graphs)", *turns["reference"][1:], turns["reference"][0]))
    rows.append(("fast, cold (compiling included)", cold[1], cold[2], cold[0]))
    rows.append(("fast, warm", *turns["fast"][1:], turns["fast"][0]))
    preds_naive, ref_preds = turns["naive"][0], turns["reference"][0]

    def same(ps: list, base: list) -> int:
        return sum(outcome_of(golden, a, labelled) == outcome_of(golden, b, labelled) for a, b in zip(ps, base))

    shares = flop_shares(engine.graph, faults)
    ceiling = 1.0 / float(shares.mean())
    naive_wall, naive_cpu = rows[0][1], rows[0][2]
    ratio_wall, ratio = naive_wall / rows[-1][1], naive_cpu / rows[-1][2]
    print(f"model: {path}; {len(x)} test images {'x'.join(map(str, x.shape[1:]))}; "
          f"{len(fast.parameter_sets())} parameter sets")
    print(f"device: {compiled.device_name()}; TensorFlow intra-op threads: {args.threads}; "
          f"fast engine budget {engine.memory_bytes / 2**20:.0f} MiB, setup {setup:.1f} s")
    print(f"sample: {len(faults)} faults of the {len(frame)}-fault list in "
          + ", ".join(f"[{a}, {b})" for a, b in spans) + f"; run {chunk} faults per call, as a shard does")
    same_golden = same_array_bits(naive.scores, reference.reference.scores)
    print(f"fault-free scores, TF default graphs vs exact graphs: {'identical' if same_golden else 'differ'}")
    print(f"{'loop':<40}{'ms/fault':>10}{'x naive':>9}{'CPU ms':>9}{'x naive':>9}  "
          "identical outcomes: to naive, to reference")
    for name, wall, cpu, ps in rows:
        print(f"{name:<40}{1e3 * wall:>10.2f}{naive_wall / wall:>9.2f}{1e3 * cpu:>9.2f}{naive_cpu / cpu:>9.2f}  "
              f"{same(ps, preds_naive[: len(ps)])}/{len(ps)}, {same(ps, ref_preds[: len(ps)])}/{len(ps)}")
    print(f"FLOP ceiling of the sample: {100 * shares.mean():.1f} % of a pass's conv FLOPs recomputed on "
          f"average -> {ceiling:.2f}x; fast (warm) reaches {ratio:.2f}x in CPU time ({ratio_wall:.2f}x wall) "
          f"= {100 * ratio / ceiling:.0f} % of it")
    st = engine.stats
    fallbacks = {k: v for k, v in cold_stats.items() if k.startswith("reference_")}
    print(f"fast engine: {st['dropped_at_chain_end']} dropped at the chain end, {st['kept_by_bound']} answered "
          f"unchanged by the classifier bound ({st['pixels_kept_by_bound']} changed pixels it kept, none run), "
          f"{st['memo_hits']} memo hits, "
          f"{st['downstream_faults']} faults in {st['downstream_runs']} downstream calls "
          f"(mean {st['downstream_faults'] / max(st['downstream_runs'], 1):.1f}, {st['padded_downstream_slots']} "
          f"padding slots), {st['chain_runs']} chain calls; faults sent to the reference loop (cold run) "
          f"{fallbacks or 'none'}; batch sizes refused because they did not reproduce the cache: "
          f"{cold_stats.get('downstream_batch_refused', 0)}; partial batches: smaller sizes bought "
          f"{cold_stats.get('downstream_rungs_bought', 0)} (cold) + {st['downstream_rungs_bought']} (warm), "
          f"{st['partial_states_by_reference']} states by the reference loop (warm); changed pixels only (batch marked p): "
          f"{st['pixel_downstream_faults']} faults, {st['pixel_rows']} pixel rows; softmax apart: it ran on "
          f"{st['softmax_pixels']} of the {st['logit_pixels']} pixels whose logits the engine classed "
          "(the logits decided the rest)")
    _profile(engine, faults, rows[-1][1] * len(faults), shares, naive_wall)
    ok = all(same(ps, ref_preds[: len(ps)]) == len(ps) for name, _, _, ps in rows if name.startswith("fast"))
    if not ok:
        print("ERROR: the fast engine's outcomes differ from the reference's")
    return 0 if ok else 1


def _profile(engine, faults, total: float, shares: np.ndarray, naive: float) -> None:
    """Where the warm run's time went, by chain end in graph order (a layer's chain, and the
    downstream of its end, which the faults of the layers ending there share), against what
    the arithmetic predicts: the naive loop's time per fault x the FLOP share those faults must
    recompute. The difference is the engine's own overhead (calls, batching, copies), which
    does not shrink when the kernels get faster."""
    g = engine.graph

    def end_of(layer: str) -> str:
        plan = engine._plans.get(layer)
        return plan.end if plan is not None else layer

    share_sum: dict[str, float] = {}
    counts: dict[str, int] = {}
    for f, share in zip(faults, shares):
        end = end_of(f.set.split("/", 1)[0])
        counts[end] = counts.get(end, 0) + 1
        share_sum[end] = share_sum.get(end, 0.0) + float(share)
    by_end: dict[str, list[float]] = {}
    for key, sec in engine.seconds.items():
        kind, name = key.split(":", 1)
        end = name if kind == "downstream" else end_of(name)
        by_end.setdefault(end, [0.0, 0.0])[0 if kind == "chain" else 1] += sec
    batch = {plan.end: f"{engine.down_batch(plan)}{'p' if engine.pixel_tail(plan.end) else ''}"
             for plan in engine._plans.values() if plan is not None}
    print(f"{'chain end':<14}{'position':>9}{'faults':>8}{'batch':>7}{'chain ms':>10}{'down ms':>10}"
          f"{'ms/fault':>10}{'FLOP ms':>9}{'over ms':>9}{'% naive':>9}{'time %':>8}{'pass ms':>9}")
    passes = {end: _pass_from(engine, end) for end in set(by_end) | set(counts)}
    worst = (0.0, "-")
    for end in sorted(by_end, key=g.position.__getitem__):
        c, d = by_end[end]
        n = counts.get(end, 0)
        measured = 1e3 * (c + d) / max(n, 1)
        predicted = 1e3 * naive * share_sum.get(end, 0.0) / max(n, 1)
        over = measured - predicted
        if n and over / (1e3 * naive) > worst[0]:
            worst = (over / (1e3 * naive), end)
        print(f"{end:<14}{g.position[end]:>9}{n:>8}{batch.get(end, '-'):>7}{1e3 * c:>10.0f}{1e3 * d:>10.0f}"
              f"{measured:>10.2f}{predicted:>9.2f}{over:>9.2f}{100 * over / (1e3 * naive):>9.1f}"
              f"{100 * (c + d) / total:>8.1f}{1e3 * passes[end]:>9.2f}")
    print(f"largest overhead over the FLOP prediction: {100 * worst[0]:.1f} % of the naive loop's time per "
          f"fault, at {worst[1]} (FLOP ms = naive ms/fault x the recomputed share; over = measured - FLOP; "
          "pass ms = one fault's pass from the chain end to the class map at the naive loop's shapes, softmax "
          "and class map included, which the FLOP share does not count)")
    mean_pass = sum(counts[end] * passes[end] for end in counts) / max(len(faults), 1)
    print(f"pass ceiling of the sample: one pass from each fault's chain end takes {1e3 * mean_pass:.2f} ms on "
          f"average -> {naive / max(mean_pass, 1e-12):.2f}x the naive loop; fast (warm) reaches "
          f"{naive / (total / max(len(faults), 1)):.2f}x (the pass ceiling is what recomputing each fault's pass "
          "from its chain end gives; dropping, batching and changed pixels go past it)")


def _pass_from(engine, end: str, repeats: int = 5) -> float:
    """Seconds of the fastest of ``repeats`` calls that take one fault's state at ``end`` (the
    cached fault-free one, all the loaded images) to the class map, as the naive loop computes it
    after that layer: the arithmetic no exact engine avoids for a fault that changes every pixel."""
    from hsiseu.faults.keras import compiled

    tail, images = engine.dense.tail(end), engine.images
    state, c = compiled.to_device(images.host(end)[None]), compiled.to_device(np.zeros(1, np.int32))
    compiled.to_host(tail(state, c, images.cache, channel=False, apart=False)[0])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        compiled.to_host(tail(state, c, images.cache, channel=False, apart=False)[0])
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    raise SystemExit(main())
