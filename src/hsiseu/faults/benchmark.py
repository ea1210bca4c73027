"""Time both engines on one fault sample and project the paper-scale campaign.

``hsiseu faults-benchmark`` (or ``python -m hsiseu.faults.benchmark``): runs the reference and
the fast engine on the same faults of the default model, checks that their outcomes agree,
prints faults/s of each and their ratio, then times the paper's model (192x384x25, 5 pools,
base 32, random weights: only the cost matters) layer by layer and projects the paper-scale
campaign (every trainable set x 32 bits x Leveugle's n) for both engines.

Rates are given in wall time and in CPU time of this process (with one TensorFlow thread the
CPU time does not grow when other jobs load the machine, so its ratio is the stable one). The
per-bit-class table shows where the time goes: the share of faults dropped without reaching the
output and the mean share of a full pass's FLOPs an exact engine must still recompute (the
faulty layer's channel plus everything downstream); one over that mean is the ceiling of any
exact recompute-downstream engine on this fault mix.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

__all__ = ["main", "project_paper_campaign", "node_flops", "bit_class"]

BIT_CLASSES = ("sign", "exponent MSB", "other exponent", "high mantissa", "low mantissa")


def bit_class(bit: int) -> str:
    """float32 bit -> class: 31 sign, 30 exponent MSB, 29..23, mantissa 22..16 high, 15..0 low."""
    if bit == 31:
        return "sign"
    if bit == 30:
        return "exponent MSB"
    if bit >= 23:
        return "other exponent"
    return "high mantissa" if bit >= 16 else "low mantissa"


def node_flops(graph, values: dict) -> dict[str, float]:
    """FLOPs per node for one image, from the cached activations' shapes (convolutions: 2 per
    multiply-add; other nodes: one per output value)."""
    out = {}
    for name in graph.order[1:]:
        node, y = graph.nodes[name], values[name]
        if node.kind in ("conv", "tconv"):
            kh, kw = node.cfg["kernel_size"]
            cin = values[node.inputs[0]].shape[-1]
            macs = y[0].size * kh * kw * cin
            if node.kind == "tconv":
                macs /= node.cfg["strides"][0] * node.cfg["strides"][1]
            out[name] = 2.0 * macs
        else:
            out[name] = float(y[0].size)
    return out


def _class_table(graph, values: dict, faults, preds) -> list[tuple[str, int, float, float, float]]:
    """(class, faults, dropped share, non-finite share, mean FLOP share recomputed) per bit class."""
    flops = node_flops(graph, values)
    total = sum(flops.values())
    position = {n: i for i, n in enumerate(graph.order)}
    rows = []
    for cls in BIT_CLASSES:
        picked = [(f, p) for f, p in zip(faults, preds) if bit_class(f.bit) == cls]
        if not picked:
            continue
        shares = []
        for f, p in picked:
            layer = graph.layer_of[f.set]
            own = flops[layer] / values[layer].shape[-1]
            down = 0.0 if p.classes is None else sum(c for n, c in flops.items() if position[n] > position[layer])
            shares.append((own + down) / total)
        rows.append((cls, len(picked), float(np.mean([p.classes is None for _, p in picked])),
                     float(np.mean([p.nonfinite for _, p in picked])), float(np.mean(shares))))
    return rows


def _sample(frame, per_set: int, seed: int):
    """``per_set`` random faults of every set (all its bits mixed), in fault-list order: the
    campaign's own mix of layers and bits, with the same batching as a shard."""
    rng = np.random.default_rng(seed)
    picks = [
        np.sort(rng.choice(idx, min(per_set, len(idx)), replace=False))
        for idx in frame.groupby("set", sort=False).indices.values()
    ]
    return frame.iloc[np.sort(np.concatenate(picks))].reset_index(drop=True)


def project_paper_campaign(n_images: int, sampling: dict, *, unmasked: float = 1.0, repeats: int = 2) -> dict:
    """Seconds per model of the paper-scale campaign for each engine, from per-node timings of
    the paper's model on this CPU at one image (costs scale linearly with images)."""
    from hsiseu.faults.keras_executor import LayerGraph
    from hsiseu.faults.sampling import cell_sample_size
    from hsiseu.model import build_unet

    model = build_unet(height=192, width=384, bands=25, n_classes=5, af="relu", pools=5, base_filters=32, seed=0)
    g = LayerGraph(model)
    x = np.random.default_rng(0).random((1, 192, 384, 25), dtype=np.float32)
    values = {g.input: x}
    cost = {}
    for name in g.order[1:]:
        node = g.nodes[name]
        ins = [values[s] for s in node.inputs]
        g.apply(node, ins, g.params)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            out, _ = g.apply(node, ins, g.params)
        cost[name] = (time.perf_counter() - t0) / repeats
        values[name] = out
    full = sum(cost.values())
    position = {n: i for i, n in enumerate(g.order)}
    total_faults = 0
    fast_s = 0.0
    for set_name, arr in g.params.items():
        if g.role_of[set_name] in ("moving_mean", "moving_variance"):
            continue
        node = g.nodes[g.layer_of[set_name]]
        n = sum(cell_sample_size(arr.size, sampling) for _ in range(32))
        total_faults += n
        # the faulty node: one of its channels; then everything after it
        channels = arr.shape[g.channel_axis[set_name]] if node.kind != "bn" else arr.size
        own = cost[node.name] / max(channels, 1) if g.role_of[set_name] == "kernel" else 0.0
        downstream = sum(c for nm, c in cost.items() if position[nm] > position[node.name])
        fast_s += n * (own + unmasked * downstream)
    return {
        "sets": sum(1 for s in g.params if g.role_of[s] not in ("moving_mean", "moving_variance")),
        "faults": total_faults,
        "full_pass_s_per_image": full,
        "reference_s": total_faults * full * n_images,
        "fast_s": fast_s * n_images,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsiseu faults-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config (data, faults sections)")
    parser.add_argument("--model", default=None, help="Keras model (default results/relu/original/model.keras; "
                        "an untrained seeded model if missing)")
    parser.add_argument("--per-set", type=int, default=16, help="faults per parameter set in the shared sample")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    parser.add_argument("--batch-size", type=int, default=None, help="fast engine batch (default: config)")
    parser.add_argument("--image-chunk", type=int, default=None,
                        help="fast engine: test images per cached chunk (default: config, else all)")
    parser.add_argument("--no-projection", action="store_true", help="skip timing the paper-size model")
    args = parser.parse_args(argv)

    from hsiseu import settings
    from hsiseu.faults import faultlist
    from hsiseu.faults.keras_backend import KerasBackend
    from hsiseu.faults.outcomes import outcome_of
    from hsiseu.faults.tasks import test_data
    from hsiseu.training import configure_tensorflow

    config = yaml.safe_load(Path(args.config).read_text())
    configure_tensorflow(args.threads, int(config["seed"]))
    import keras

    fcfg = config["faults"]
    x, y = test_data(config)
    model_path = Path(args.model or "results/relu/original/model.keras")
    if model_path.exists():
        model = keras.saving.load_model(model_path, compile=False)
        origin = str(model_path)
    else:
        from hsiseu.model import build_unet

        model = build_unet(**settings.model_kwargs(config, "relu"))
        origin = "untrained relu model (no trained model found)"
    batch = args.batch_size or int(fcfg["batch_size"])
    t0 = time.perf_counter()
    ref = KerasBackend(model, x, engine="reference")
    chunk = args.image_chunk if args.image_chunk is not None else fcfg.get("image_chunk")
    fast = KerasBackend(model, x, engine="fast", batch_size=batch, image_chunk=chunk)
    setup = time.perf_counter() - t0
    frame = faultlist.generate(fast.parameter_sets(), sampling=fcfg["sampling"], bits=fcfg.get("bits"),
                               seed=int(fcfg["seed"]))
    faults = faultlist.faults_of(_sample(frame, args.per_set, int(fcfg["seed"])))
    list(fast.run(faults[: min(len(faults), 2 * batch)]))  # first-use checks of the shortcuts
    fast.engine._memo.clear()
    fast.engine.stats.clear()
    timings, cpu, preds = {}, {}, {}
    for name, backend in (("reference", ref), ("fast", fast)):
        t0, c0 = time.perf_counter(), time.process_time()
        preds[name] = list(backend.run(faults))
        timings[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0
    labelled = y != 255
    agree = sum(outcome_of(ref.golden(), a, labelled) == outcome_of(ref.golden(), b, labelled)
                for a, b in zip(preds["reference"], preds["fast"]))
    rate = {k: len(faults) / v for k, v in timings.items()}
    cpu_rate = {k: len(faults) / v for k, v in cpu.items()}
    stats = fast.engine.stats
    unmasked = 1.0 - (stats["masked_in_faulty_layer"] + stats["memo_hits"]) / max(stats["faults"], 1)
    print(f"model: {origin}; {len(x)} test images {x.shape[1]}x{x.shape[2]}x{x.shape[3]}; "
          f"{len(fast.parameter_sets())} parameter sets; campaign list {len(frame)} faults")
    print(f"sample: {len(faults)} faults; engine setup {setup:.1f} s; fast batch {batch}; "
          f"image chunks {len(fast.engine.chunks)}")
    print("                 wall        CPU time (this process)")
    print(f"reference: {rate['reference']:8.2f} {cpu_rate['reference']:8.2f} faults/s")
    print(f"fast:      {rate['fast']:8.2f} {cpu_rate['fast']:8.2f} faults/s")
    print(f"ratio:     {rate['fast'] / rate['reference']:8.2f} {cpu_rate['fast'] / cpu_rate['reference']:8.2f} x"
          f"   (outcomes identical: {agree}/{len(faults)})")
    print(f"fast engine: masked in the faulty layer {stats['masked_in_faulty_layer']}, memo hits "
          f"{stats['memo_hits']} (+{stats['nan_memo_hits']} all-NaN), reached the output "
          f"{stats['node_faults:' + fast.graph.output]}")
    if len(fast.engine.chunks) == 1:
        table = _class_table(fast.graph, fast.engine.cache, faults, preds["fast"])
        share = sum(n * s for _, n, _, _, s in table) / len(faults)
        print(f"{'bit class':<16}{'faults':>7}{'dropped':>9}{'NaN/inf':>9}{'FLOPs recomputed':>18}")
        for cls, n, dropped, nonfinite, s in table:
            print(f"{cls:<16}{n:>7}{dropped:>9.2f}{nonfinite:>9.2f}{s:>18.3f}")
        print(f"{'all':<16}{len(faults):>7}{'':>18}{share:>18.3f}  -> ceiling of exact recomputation "
              f"{1 / share:.2f} x the reference")
    print(f"projected default campaign ({len(frame)} faults, this model): reference "
          f"{len(frame) / rate['reference'] / 60:.1f} min, fast {len(frame) / rate['fast'] / 60:.1f} min per core")
    if not args.no_projection:
        paper = {"error_margin": 0.025, "confidence": 0.95, "p": 0.5, "fixed_n": None}
        p = project_paper_campaign(len(x), paper, unmasked=unmasked)
        print(f"paper model on this CPU: {p['full_pass_s_per_image']:.3f} s per image and full pass; "
              f"{p['sets']} sets, {p['faults']} faults (32 bits x Leveugle n, e=2.5 %)")
        print(f"projected paper-scale campaign per model on {len(x)} test images, 1 core: reference "
              f"{p['reference_s'] / 86400:.1f} days, fast {p['fast_s'] / 86400:.1f} days "
              f"(fast = delayed start + one channel, masked share {1 - unmasked:.2f} as measured here; "
              f"batching gains not included)")
    if agree != len(faults):
        print("ERROR: engines disagree")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
