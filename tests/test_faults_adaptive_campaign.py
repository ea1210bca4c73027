"""Adaptive sampling through the campaign's files: a shard owns whole units and samples them round
by round, a killed shard resumes with nothing lost or repeated, the merge audits every unit's
stopping point and writes the faults actually run, and every cell carries its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults import campaign, faultlist
from hsiseu.faults.litert.backend import TFLiteBackend
from hsiseu.model import build_unet
from hsiseu.quantization.convert import quantize_int8

from conftest import Interrupted, StopsAfter

RNG = np.random.default_rng(0)
X = RNG.random((1, 16, 32, 3), dtype=np.float32)
LABELS = np.zeros((1, 16, 32), np.uint8)
SAMPLING = {"method": "adaptive", "population": "cell", "error_margin": 0.1, "confidence": 0.95, "p": 0.5,
            "fixed_n": None}
BITS = [7, 6, 3, 0, 31, 30, 12]


@pytest.fixture(scope="module")
def backend():
    model = build_unet(height=16, width=32, bands=3, n_classes=5, af="relu", pools=2, base_filters=4, seed=0)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
    content = quantize_int8(model, RNG.random((4, 16, 32, 3), dtype=np.float32))
    return TFLiteBackend(content, X, kernels="xnnpack", engine="fast")


def _list(backend, tmp_path, sampling=SAMPLING):
    faults = tmp_path / "fault_list.csv"
    campaign.write_fault_list(backend, sampling=sampling, bits=BITS, seed=3, out_faults=faults,
                              out_sets=tmp_path / "parameter_sets.csv")
    return faults


def _shards(backend, faults, tmp_path, sampling=SAMPLING, n=2, bits=BITS):
    paths = [tmp_path / "shards" / f"{k}-of-{n}.csv" for k in range(n)]
    for k, out in enumerate(paths):
        campaign.run_shard(backend, faults_path=faults, labels=LABELS, shard=k, n_shards=n, out=out, chunk_size=40,
                           progress=False, sampling=sampling, bits=bits)
    return paths


def test_adaptive_campaign_runs_prefixes_audited_by_the_merge_with_intervals_within_e(backend, tmp_path):
    faults = _list(backend, tmp_path)
    listed = faultlist.read(faults)
    assert list(listed.columns) == ["fault", "set", "bit", "index", "unit", "rank"]
    paths = _shards(backend, faults, tmp_path)
    outcomes = campaign.merge_shards(paths, faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                                     out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv",
                                     sampling=SAMPLING, bits=BITS, out_faults_run=tmp_path / "faults_run.csv")
    run = faultlist.read(tmp_path / "faults_run.csv")
    assert run["fault"].tolist() == sorted(outcomes["fault"].tolist())
    assert len(run) < len(listed)  # adaptive stopped early somewhere
    for unit, group in run.groupby("unit"):  # each unit ran a prefix of its seeded order
        assert sorted(group["rank"]) == list(range(len(group))), unit
    # the shards split the units, not the faults
    units = [set(pd.read_csv(p).merge(listed, on="fault")["unit"]) for p in paths]
    assert not units[0] & units[1]
    cells = pd.read_csv(tmp_path / "cells.csv")
    assert {"error_rate_low", "error_rate_high", "interval"} <= set(cells.columns)
    assert (cells["error_rate_low"] <= cells["error_rate"] + 1e-9).all()
    assert (cells["error_rate"] <= cells["error_rate_high"] + 1e-9).all()
    half = (cells["error_rate_high"] - cells["error_rate_low"]) / 2
    assert (half <= 100 * SAMPLING["error_margin"] + 1e-9).all()
    # +- e around the mean: what the rule stopped on is what the cell reports ([0, U0] for zeros)
    assert (cells["error_rate_high"] - cells["error_rate"] <= 100 * SAMPLING["error_margin"] + 1e-9).all()
    assert (cells["error_rate"] - cells["error_rate_low"] <= 100 * SAMPLING["error_margin"] + 1e-9).all()
    # a list the rule would not have stopped at is refused: drop the last fault of one unit
    last = run.sort_values(["unit", "rank"]).groupby("unit").tail(1).iloc[0]["fault"]
    cut = pd.read_csv(paths[0])
    if last in set(cut["fault"]):
        cut = cut[cut["fault"] != last]
        cut.to_csv(tmp_path / "cut.csv", index=False)
        with pytest.raises(ValueError, match="had not stopped|do not end a round"):
            campaign.merge_shards([tmp_path / "cut.csv", paths[1]], faults_path=faults,
                                  sets_path=tmp_path / "parameter_sets.csv", out_outcomes=tmp_path / "o.csv",
                                  out_cells=tmp_path / "c.csv", sampling=SAMPLING, bits=BITS)
    # and so is a unit with a gap: its first fault left out
    first = run[run["rank"] == 0].iloc[0]["fault"]
    both = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    both[both["fault"] != first].to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(ValueError, match="not a prefix of its candidates"):
        campaign.merge_shards([tmp_path / "gap.csv"], faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                              out_outcomes=tmp_path / "o.csv", out_cells=tmp_path / "c.csv", sampling=SAMPLING,
                              bits=BITS)


def test_a_killed_adaptive_shard_resumes_with_nothing_lost_or_repeated(backend, tmp_path):
    faults = _list(backend, tmp_path)
    kwargs = dict(faults_path=faults, labels=LABELS, shard=0, n_shards=2, chunk_size=40, progress=False,
                  sampling=SAMPLING, bits=BITS)
    whole = campaign.run_shard(backend, out=tmp_path / "whole.csv", **kwargs)
    out = tmp_path / "shards" / "0-of-2.csv"
    with pytest.raises(Interrupted):
        campaign.run_shard(StopsAfter(backend, len(whole) // 2 + 7), out=out, **kwargs)
    chunks = sorted((out.parent / f".{out.name}.chunks").glob("r*.csv"))
    assert chunks and not out.exists()
    done = sum(len(pd.read_csv(c)) for c in chunks)
    resumed = StopsAfter(backend, None)
    result = campaign.run_shard(resumed, out=out, **kwargs)
    assert resumed.served == len(whole) - done  # finished chunks are not run again
    pd.testing.assert_frame_equal(result, whole)


def test_leveugle_and_set_population_lists_still_run_every_listed_fault(backend, tmp_path):
    sampling = {**SAMPLING, "method": "leveugle", "population": "set", "error_margin": 0.3}
    faults = _list(backend, tmp_path, sampling)
    listed = faultlist.read(faults)
    assert set(listed["unit"]) == {s.name for s in backend.parameter_sets()}
    paths = _shards(backend, faults, tmp_path, sampling)
    outcomes = campaign.merge_shards(paths, faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                                     out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv",
                                     sampling=sampling, bits=BITS, out_faults_run=tmp_path / "faults_run.csv")
    assert sorted(outcomes["fault"]) == listed["fault"].tolist()
    cells = pd.read_csv(tmp_path / "cells.csv")
    assert cells["interval"].str.contains("cell's own faults").all()
    assert (cells["unit"] == cells["set"]).all() and (cells["unit_bits"] >= cells.groupby("set")["bit"].transform("size")).all()
    for _, group in cells.groupby("set"):  # every cell carries its set unit's one estimate
        assert group[["unit_error_rate", "unit_error_rate_low", "unit_error_rate_high"]].nunique().max() == 1


def test_pooled_mantissa_is_one_unit_per_float_set_whose_mean_weighs_its_bits(tmp_path):
    from hsiseu.faults.keras.backend import KerasBackend
    from hsiseu.faults.stats.aggregate import set_estimates
    from hsiseu.faults.stats.candidates import cell_units, units

    model = build_unet(height=16, width=32, bands=3, n_classes=5, af="relu", pools=2, base_filters=4, seed=0)
    float_backend = KerasBackend(model, X, engine="fast")
    bits = [31, 30, 23, 22, 12, 0]
    sampling = {**SAMPLING, "mantissa_population": "set", "mantissa_error_margin": 0.2}
    sets = float_backend.parameter_sets()
    table = units(sets, bits, "cell", sampling)
    pooled = table[table["unit"].str.endswith(":mantissa")]
    assert len(pooled) == len(sets) and (pooled["bits"] == 3).all() and (pooled["error_margin"] == 0.2).all()
    assert (pooled["population"] == [3 * s.size for s in sets]).all()
    assert len(table) == len(sets) * 4  # bits 31, 30, 23 as cells and one mantissa unit per set
    assert cell_units(sets, bits, sampling)[(sets[0].name, 12)] == f"{sets[0].name}:mantissa"
    with pytest.raises(ValueError, match="mantissa_population"):
        units(sets, bits, "set", {**sampling, "population": "set"})

    faults = tmp_path / "fault_list.csv"
    campaign.write_fault_list(float_backend, sampling=sampling, bits=bits, seed=3, out_faults=faults,
                              out_sets=tmp_path / "parameter_sets.csv")
    listed = faultlist.read(faults)
    assert set(listed["unit"]) == set(table["unit"])
    mant = listed[listed["unit"] == f"{sets[0].name}:mantissa"]
    assert set(mant["bit"]) <= {22, 12, 0} and len(set(mant["bit"])) > 1  # the bit is drawn per fault
    paths = _shards(float_backend, faults, tmp_path, sampling, bits=bits)
    campaign.merge_shards(paths, faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                          out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv",
                          sampling=sampling, bits=bits, out_faults_run=tmp_path / "faults_run.csv")
    cells = pd.read_csv(tmp_path / "cells.csv")
    outcomes = pd.read_csv(tmp_path / "outcomes.csv")
    name = sets[0].name
    in_unit = outcomes[(outcomes["set"] == name) & outcomes["bit"].isin([22, 12, 0])]
    row = cells[(cells["set"] == name) & (cells["bit"] < 23)].iloc[0]
    assert row["unit"] == f"{name}:mantissa" and row["unit_bits"] == 3
    assert row["unit_error_rate"] == pytest.approx(in_unit["error_rate"].mean())
    assert row["unit_error_rate_low"] <= row["unit_error_rate"] <= row["unit_error_rate_high"]
    assert (row["unit_error_rate_high"] - row["unit_error_rate_low"]) / 2 <= 20 + 1e-9  # e = 0.2 in points
    # the set's mean: its three cells and its mantissa unit (3 bits), not the mantissa cells present
    own = cells[(cells["set"] == name) & (cells["bit"] >= 23)]
    expected = (own["error_rate"].sum() + 3 * row["unit_error_rate"]) / 6
    assert set_estimates(cells).loc[name, "mean"] == pytest.approx(expected)


def test_set_estimates_of_a_cells_table_without_units_are_the_mean_over_bits():
    from hsiseu.faults.stats.aggregate import model_estimate, set_estimates

    cells = pd.DataFrame({"set": ["a", "a", "b"], "order": [0, 0, 1], "bit": [1, 0, 0],
                          "error_rate": [2.0, 4.0, 10.0], "error_rate_low": [1.0, 3.0, 8.0],
                          "error_rate_high": [3.0, 6.0, 12.0]})
    est = set_estimates(cells)
    # set a: mean 3, half-widths 1 and 2 -> +- sqrt(1 + 4) / 2, clipped by the mean of the ends (2, 4.5)
    h = np.sqrt(1 + 4) / 2
    assert est.index.tolist() == ["a", "b"] and est.loc["a"].tolist() == pytest.approx([3.0, 2.0, 3 + h])
    h = np.sqrt(1 + 4 + 4) / 3
    assert model_estimate(cells) == {"mean": pytest.approx(16 / 3), "low": pytest.approx(16 / 3 - h),
                                     "high": pytest.approx(16 / 3 + h)}


def test_stratified_interval_of_a_mean_over_cells_covers_it_and_shrinks_with_the_cells():
    """Many cells, each estimated from its own sample with its +- e interval: the interval of
    their mean covers the true mean at the level, and is about e / sqrt(cells) wide."""
    from hsiseu.faults.stats.aggregate import model_estimate
    from hsiseu.faults.stats.intervals import normal_interval

    rng = np.random.default_rng(0)
    truth = rng.beta(0.3, 3.0, size=200)  # per-cell mean error fractions, most near 0
    covered, widths = 0, []
    for rep in range(200):
        rows = []
        for c, mu in enumerate(truth):
            x = (rng.random(96) < mu).astype(float)  # Bernoulli outcomes, n = 96 (e = 10 % at p = 1/2)
            iv = normal_interval(x, 0.95, None, 0.5)
            rows.append({"set": f"s{c}", "order": c, "bit": 0, "error_rate": 100 * iv.mean,
                         "error_rate_low": 100 * iv.low, "error_rate_high": 100 * iv.high})
        est = model_estimate(pd.DataFrame(rows))
        covered += est["low"] <= 100 * truth.mean() <= est["high"]
        widths.append((est["high"] - est["low"]) / 2)
    assert covered / 200 >= 0.95
    assert np.mean(widths) == pytest.approx(10 / np.sqrt(200), rel=0.1)


def test_mantissa_units_take_their_own_margin_and_the_rest_the_main_one():
    from hsiseu.faults.paramsets import ParameterSet
    from hsiseu.faults.stats.candidates import margin_of, units

    w = ParameterSet("cnv_1/kernel", "kernel", "cnv_1", (3, 3, 8, 8), "float32")
    q = ParameterSet("cnv_1/kernel", "kernel", "cnv_1", (8, 3, 3, 8), "int8")
    sampling = {**SAMPLING, "mantissa_error_margin": 0.3}
    assert margin_of(sampling, w, [22]) == 0.3 and margin_of(sampling, w, [23]) == 0.1
    assert margin_of(sampling, w, [31, 5]) == 0.1  # a unit mixing fields keeps the tight margin
    assert margin_of(sampling, q, [0]) == 0.1  # int8 bits are no mantissa
    table = units([w], [31, 23, 22, 0], "cell", sampling).set_index("bit")
    assert table.loc[22, "error_margin"] == 0.3 and table.loc[23, "error_margin"] == 0.1
    assert table.loc[22, "candidates"] < table.loc[23, "candidates"]


def test_sampling_plan_counts_faults_per_population_and_projects_onto_a_larger_model(backend, tmp_path, capsys):
    from hsiseu.faults.sampling_plan import main, paper_cells
    from hsiseu.faults.paramsets import ParameterSet

    faults = _list(backend, tmp_path, {**SAMPLING, "method": "leveugle", "error_margin": 0.3})
    paths = _shards(backend, faults, tmp_path, {**SAMPLING, "method": "leveugle", "error_margin": 0.3})
    campaign.merge_shards(paths, faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                          out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv")
    assert main(["--cells", str(tmp_path / "cells.csv"), "--error-margin", "0.05", "--ms", "naive=10", "fast=4"]) == 0
    out = capsys.readouterr().out
    assert "population" in out and "time to the guarantee (cell)" in out
    cells, sets = pd.read_csv(tmp_path / "cells.csv"), pd.read_csv(tmp_path / "parameter_sets.csv")
    big = [ParameterSet(f"big_{i}/{kind}", kind, f"big_{i}", (1000,), "int8") for i in range(6) for kind in ("kernel", "bias")]
    mapped = paper_cells(cells, sets, big)
    assert set(mapped["set"]) == {p.name for p in big} and (mapped["population"] == 1000).all()


def test_sampling_plan_scales_ms_per_fault_to_the_projected_model_by_its_flops_and_images(backend, tmp_path, capsys):
    import yaml

    from hsiseu.faults.sampling_plan import cost_scale, main
    from hsiseu.model import build_unet, complexity

    from conftest import load_config

    faults = _list(backend, tmp_path, {**SAMPLING, "method": "leveugle", "error_margin": 0.3})
    paths = _shards(backend, faults, tmp_path, {**SAMPLING, "method": "leveugle", "error_margin": 0.3})
    campaign.merge_shards(paths, faults_path=faults, sets_path=tmp_path / "parameter_sets.csv",
                          out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv")
    own, big = load_config(), load_config()
    own["model"].update(pools=2, base_filters=4)
    own["data"]["synthetic"].update(height=16, width=32)
    own["faults"]["test_images"] = 1
    big["model"].update(pools=2, base_filters=8)
    big["data"].update(crop=[32, 64])
    big["faults"]["test_images"] = 3
    for name, cfg in (("own.yaml", own), ("big.yaml", big)):
        (tmp_path / name).write_text(yaml.safe_dump(cfg))
    flops = [complexity(build_unet(height=h, width=w, bands=25, n_classes=5, af="relu", pools=2, base_filters=f,
                                   seed=0)).gflops for h, w, f in ((16, 32, 4), (32, 64, 8))]
    scale = cost_scale(flops[0], 1, flops[1], 3)
    assert scale == pytest.approx(3 * flops[1] / flops[0]) and scale > 3 * 4 * 3  # 4x pixels, ~4x MACs per pixel
    assert main(["--cells", str(tmp_path / "cells.csv"), "--config", str(tmp_path / "own.yaml"),
                 "--paper-config", str(tmp_path / "big.yaml"), "--ms", "naive=10", "fast=4"]) == 0
    out = capsys.readouterr().out
    assert f"ms per fault x {scale:.0f}" in out and "x 3 images" in out
    from hsiseu.faults.stats.adaptive import fewest_draws

    cells = pd.read_csv(tmp_path / "cells.csv")
    floor = sum(fewest_draws(int(n), 0.025, 0.95) for n in cells["population"])  # the plan's default e
    cell_row = next(line.split() for line in out.splitlines() if line.startswith("cell "))
    assert int(cell_row[5]) == floor  # population, units, leveugle, adaptive, fewer, floor


def test_projection_pools_only_the_float_sets_mantissa_bits():
    from hsiseu.faults.stats.projection import POOLED_MANTISSA, expected_faults, unit_cells

    rows = [{"set": "w", "bit": b, "population": 5000, "error_rate": 0.0, "error_rate_std": 0.0} for b in range(32)]
    rows += [{"set": "q_b", "bit": b, "population": 5000, "error_rate": 0.0, "error_rate_std": 0.0} for b in range(32)]
    cells = pd.DataFrame(rows)
    units = unit_cells(cells, POOLED_MANTISSA, float_sets=["w"])
    assert len(units) == 9 + 1 + 32  # w's sign / exponent cells, its mantissa unit, every int32 bias bit
    (pooled,) = [u for u in units if len(u) > 1]
    assert sorted(pooled["bit"]) == list(range(23)) and (pooled["set"] == "w").all()
    plan = expected_faults(cells, error_margin=0.1, confidence=0.95, populations=("cell", POOLED_MANTISSA),
                           float_sets=["w"]).set_index("population")
    # every unit is all zero: 64 cells of 5000 against 41 cells and one pooled unit of 23 x 5000
    # (an all-zero unit's exact stop grows a little with N)
    from hsiseu.faults.stats.adaptive import fewest_draws, zero_stop

    assert plan.loc["cell", "adaptive"] == pytest.approx(64 * zero_stop(5000, 0.1, 0.95))
    assert plan.loc["cell", "floor"] == 64 * fewest_draws(5000, 0.1, 0.95) < plan.loc["cell", "adaptive"]
    assert plan.loc[POOLED_MANTISSA, "adaptive"] == pytest.approx(
        41 * zero_stop(5000, 0.1, 0.95) + zero_stop(5000 * 23, 0.1, 0.95))
