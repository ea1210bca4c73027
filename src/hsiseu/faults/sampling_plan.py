"""``hsiseu faults-sampling-plan``: how many faults, and how much time, the paper's guarantee
costs under each sampling method and population, for the default model and projected for the
paper-size model.

The per-bit error profile comes from a campaign that ran (its ``cells.csv``: every cell's mean
and spread); :func:`hsiseu.faults.stats.projection.expected_faults` turns it into the faults
``leveugle`` needs (exact) and ``adaptive`` needs (simulated stopping n) at another e. For the
paper-size model (5 pooling levels, 32 base filters: the config's ``model`` section of
``--paper-config``) each of its parameter sets takes the profile of the default model's set of
the same kind (kernel, bias, gamma, beta) at the nearest relative depth, with its own size: a
projection, said so in the output. Time = faults x ms per fault of a loop (``--ms``: e.g. the
naive loop and the fast engine from ``hsiseu faults-benchmark`` on the ``--cells`` model); on the
paper-size model the ms are scaled by GFLOPs per image x test images (:func:`cost_scale`), so its
CPU-hours are a projection too.

When the ``--cells`` campaign ran with strata (its ``fault_list.csv`` beside it has them), a row
``cell+strata`` projects the stratified rule from each stratum's own profile
(:func:`hsiseu.faults.stats.projection.stratum_profile`, read from the ``outcomes.csv`` beside it).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["paper_cells", "cost_scale", "main"]


def paper_cells(cells: pd.DataFrame, sets: pd.DataFrame, paper_sets) -> pd.DataFrame:
    """The default model's cells mapped onto the paper-size model's sets (same kind, nearest
    relative depth), with the paper sets' sizes as populations."""
    own = sets.sort_values("order").reset_index(drop=True)
    own["depth"] = own.index / max(len(own) - 1, 1)
    by_set = {name: group for name, group in cells.groupby("set")}
    rows = []
    for i, ps in enumerate(paper_sets):
        depth = i / max(len(paper_sets) - 1, 1)
        same = own[own["kind"] == ps.kind]
        if same.empty:
            continue
        source = same.iloc[int(np.argmin(np.abs(same["depth"].to_numpy() - depth)))]["name"]
        mapped = by_set[source].assign(set=ps.name, population=ps.size, order=i)
        rows.append(mapped)
    return pd.concat(rows, ignore_index=True)


def _model_of(config: dict):
    from hsiseu.model import build_unet
    from hsiseu.settings import model_kwargs

    return build_unet(**model_kwargs(config, "relu"))


def _paper_sets(model):
    from hsiseu.faults.keras.backend import injectable_variables
    from hsiseu.faults.keras.graph import LayerGraph
    from hsiseu.faults.paramsets import ParameterSet

    return [ParameterSet(name=n, kind=v.name, layer=n.split("/", 1)[0], shape=tuple(int(s) for s in v.shape),
                         dtype="float32") for n, v in injectable_variables(LayerGraph(model)).items()]


def cost_scale(own_gflops: float, own_images: int, other_gflops: float, other_images: int) -> float:
    """ms per fault on another model from this one's: a fault's cost is one (partial) forward
    pass over the test images, so it scales with GFLOPs per image x images at the same FLOP
    rate (pessimistic for the larger model, whose kernels run nearer the machine's peak)."""
    return (other_gflops * other_images) / (own_gflops * own_images)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hsiseu faults-sampling-plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=Path, default=Path("results/relu/rep0/original/faults/cells.csv"))
    p.add_argument("--sets", type=Path, default=None, help="parameter_sets.csv (default: beside --cells)")
    p.add_argument("--error-margin", type=float, default=0.025)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--paper-config", type=Path, default=None, help="also project onto this config's model (e.g. config/paper.yaml)")
    p.add_argument("--ms", nargs="*", default=[], metavar="LOOP=MS",
                   help="ms per fault of loops to turn faults into time, e.g. naive=21.2 fast=9.0")
    p.add_argument("--replicates", type=int, default=4)
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"),
                   help="the config the --cells campaign ran under (its model and faults.test_images)")
    p.add_argument("--paper-test-images", type=int, default=None,
                   help="test images of the projected campaign (default: --paper-config's faults.test_images; "
                        "when that is null, hours are per test image)")
    args = p.parse_args(argv)
    from hsiseu.faults.stats.candidates import POPULATIONS
    from hsiseu.faults import faultlist
    from hsiseu.faults.stats.projection import POOLED_MANTISSA, STRATIFIED, expected_faults, stratum_profile
    from hsiseu.model import complexity

    if not args.cells.is_file():
        p.error(f"--cells {args.cells}: no such file (run the campaign first)")
    cells = pd.read_csv(args.cells)
    populations = (*POPULATIONS, POOLED_MANTISSA)
    listed, ran = args.cells.with_name("fault_list.csv"), args.cells.with_name("outcomes.csv")
    if listed.is_file() and ran.is_file():
        profile = stratum_profile(pd.read_csv(ran), faultlist.read(listed))
        if len(profile):
            cells = cells.merge(profile, on=["set", "bit"], how="left")
            populations += (STRATIFIED,)
    sets_path = args.sets or args.cells.with_name("parameter_sets.csv")
    loops = {k: float(v) for k, v in (item.split("=", 1) for item in args.ms)}
    own_sets = pd.read_csv(sets_path)
    floats = own_sets.loc[own_sets["dtype"].str.startswith("float"), "name"].tolist()
    models = {"this model": (cells, 1.0, "", floats)}
    if args.paper_config:
        if not args.config.is_file():
            p.error(f"--config {args.config}: no such file (needed to scale ms per fault to the paper model)")
        own_cfg = yaml.safe_load(args.config.read_text())
        paper_cfg = yaml.safe_load(args.paper_config.read_text())
        own_images = int(own_cfg["faults"]["test_images"] or own_cfg["data"]["synthetic"]["n_test"])
        given = args.paper_test_images or paper_cfg["faults"].get("test_images")
        paper_images = int(given or 1)
        paper_model = _model_of(paper_cfg)
        own_gflops, paper_gflops = complexity(_model_of(own_cfg)).gflops, complexity(paper_model).gflops
        scale = cost_scale(own_gflops, own_images, paper_gflops, paper_images)
        per = "" if given else " per test image"
        models["paper-size model (projected)"] = (
            paper_cells(cells, own_sets, paper_sets := _paper_sets(paper_model)), scale,
            f"ms per fault x {scale:.0f} (GFLOPs {paper_gflops:.2f} x {paper_images} images against "
            f"{own_gflops:.3f} x {own_images}){per}", [ps.name for ps in paper_sets])
    print(f"profile: {args.cells} ({len(cells)} cells, mean error rate {cells['error_rate'].mean():.3f} %); "
          f"e = {args.error_margin:g}, confidence {args.confidence:g}")
    for name, (table, scale, note, float_sets) in models.items():
        plan = expected_faults(table, error_margin=args.error_margin, confidence=args.confidence,
                               replicates=args.replicates, populations=populations,
                               float_sets=float_sets)
        print(f"\n{name}: {table['set'].nunique()} sets, {len(table)} cells" + (f"; CPU-hours: {note}" if note else ""))
        print(f"{'population':<14}{'units':>7}{'leveugle':>12}{'adaptive':>12}{'fewer':>8}{'floor':>10}{'at most':>9}"
              + "".join(f"{'h ' + k + ' lev':>14}{'h ' + k + ' ada':>14}" for k in loops))
        for row in plan.itertuples(index=False):
            hours = "".join(f"{row.leveugle * ms * scale / 3.6e6:>14.1f}{row.adaptive * ms * scale / 3.6e6:>14.1f}"
                            for ms in loops.values())
            print(f"{row.population:<14}{row.units:>7}{row.leveugle:>12.0f}{row.adaptive:>12.0f}"
                  f"{row.leveugle / max(row.adaptive, 1):>7.2f}x{row.floor:>10.0f}{row.leveugle / max(row.floor, 1):>8.2f}x"
                  f"{hours}")
        print("floor: the fewest faults any rule with this guarantee runs, every unit's outcomes zero "
              "(hsiseu.faults.stats.adaptive.fewest_draws); at most: leveugle / floor")
        if len(loops) >= 2:
            (a, ms_a), (b, ms_b) = list(loops.items())[:2]
            for population in ("cell", STRATIFIED):
                for cell in plan[plan["population"] == population].itertuples(index=False):
                    print(f"time to the guarantee ({population}): {a} x leveugle / {b} x adaptive = "
                          f"{cell.leveugle * ms_a / (cell.adaptive * ms_b):.1f}x "
                          f"(faults {cell.leveugle / cell.adaptive:.1f}x, engine {ms_a / ms_b:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
