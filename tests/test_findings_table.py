"""The findings table on synthetic replicated models whose truth is set: a claim that holds, one
that is reversed and one that is inconclusive; verdicts, R = 1, skipped AFs, the files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hsiseu.findings import claims, findings_table, replicate_interval, verdict
from hsiseu.findings.claims import central_sets
from hsiseu.findings.table import findings_from_files, findings_settings, write_findings
from hsiseu.io import write_json

LAYERS = [f"{kind}_{i}" for i in range(1, 5) for kind in ("cnv", "bn")]
BITS = (31, 30, 29, 23)


def _sets(shares: np.ndarray) -> pd.DataFrame:
    rows = []
    for layer in LAYERS:
        for kind in (("kernel", "bias") if layer.startswith("cnv") else ("gamma", "beta")):
            rows.append({"name": f"{layer}/{kind}", "kind": kind, "layer": layer,
                         "size": 100 if kind == "kernel" else 8, "dtype": "float32", "n_bits": 32})
    sets = pd.DataFrame(rows)
    return sets.assign(order=np.arange(len(sets)), share_1_2=shares[: len(sets)])


def _cells(sets: pd.DataFrame, scale: float) -> pd.DataFrame:
    """A float model's cells: bit 30 errs in proportion to the set's share of 1 < |x| < 2 (x100 %),
    the other sign / exponent bits ``scale`` x (2, 1, 0.5) %, the pooled mantissa (bits 22..0) 0.1 %."""
    rows = []
    for s in sets.itertuples(index=False):
        rates = {31: 2.0 * scale, 30: 100.0 * s.share_1_2, 29: 1.0 * scale, 23: 0.5 * scale}
        for bit, rate in rates.items():
            rows.append({"set": s.name, "order": s.order, "kind": s.kind, "layer": s.layer, "bit": bit,
                         "population": s.size, "n": 50, "error_rate": rate, "unit": f"{s.name}:{bit}",
                         "unit_bits": 1, "unit_error_rate": rate})
        rows.append({"set": s.name, "order": s.order, "kind": s.kind, "layer": s.layer, "bit": 22,
                     "population": s.size, "n": 50, "error_rate": 0.1, "unit": f"{s.name}:mantissa",
                     "unit_bits": 23, "unit_error_rate": 0.1})
    cells = pd.DataFrame(rows)
    for prefix in ("error_rate", "unit_error_rate"):
        cells[f"{prefix}_low"] = (cells[prefix] - 1).clip(lower=0)
        cells[f"{prefix}_high"] = cells[prefix] + 1
    return cells


def _metrics(global_iou: float, weighted_iou: float) -> dict:
    return {"test": {"global_iou": global_iou, "weighted_iou": weighted_iou},
            "validation": {"global_iou": global_iou, "weighted_iou": weighted_iou}}


#: per replicate: ReLU's and Sigmoid's error scale (original); pruning halves ReLU's rates.
RELU_SCALE = (1.0, 1.0, 1.0)
SIGMOID_SCALE = (0.5, 1.5, 1.0)  # set_mean(ReLU) - set_mean(Sigmoid): +, -, 0 -> inconclusive
RELU_GIOU = (90.0, 91.0, 89.5)
SIGMOID_GIOU = (85.0, 86.0, 84.0)  # ReLU the better float IoU in every replicate -> holds


def _models(reps=(0, 1, 2)) -> dict:
    models = {}
    for rep in reps:
        shares = np.random.default_rng(rep).uniform(0.0, 0.4, size=32)
        sets = _sets(shares)
        for af, scale, giou in (("relu", RELU_SCALE[rep], RELU_GIOU[rep]),
                                ("sigmoid", SIGMOID_SCALE[rep], SIGMOID_GIOU[rep])):
            # pruning: ReLU's rates halve (the claim "pruning raises the error" is reversed), IoU drops 0.5
            pruned_scale = scale / 2 if af == "relu" else scale + 2
            pruned_sets = sets.assign(share_1_2=sets["share_1_2"] / 2 if af == "relu" else sets["share_1_2"])
            models[(af, rep, "original")] = {"cells": _cells(sets, scale), "sets": sets,
                                             "metrics": _metrics(giou, giou - 10)}
            models[(af, rep, "pruned")] = {"cells": _cells(pruned_sets, pruned_scale), "sets": pruned_sets,
                                           "metrics": _metrics(giou - 0.5, giou - 10.4)}
    return models


def test_findings_table_tells_a_holding_a_reversed_and_an_inconclusive_claim_apart():
    table = findings_table(_models(), confidence=0.95)
    assert table.loc["relu_best_float_iou[sigmoid]", "verdict"] == "holds"
    best = table.loc["relu_best_float_iou[sigmoid]", "estimate"]
    assert best == pytest.approx(np.mean(RELU_GIOU) - np.mean(SIGMOID_GIOU))
    assert table.loc["pruning_raises_error[relu]", "verdict"] == "reversed"
    assert table.loc["pruning_raises_error[relu]", "high"] < 0
    row = table.loc["bounded_below_relu_float[sigmoid]"]
    assert row["verdict"] == "inconclusive" and row["low"] < 0 < row["high"]
    assert row["statistic"] == "set_mean" and row["replicates"] == 3
    assert len(row["per_replicate"].split(";")) == 3 and row["replicate_ids"] == "0;1;2"
    # the figures' other claims on these models
    assert table.loc["exponent_msb_most_sensitive[relu]", "verdict"] == "holds"
    assert table.loc["mantissa_negligible[relu]", "verdict"] == "holds"
    assert table.loc["mantissa_negligible[relu]", "estimate"] == pytest.approx(0.1)
    assert table.loc["msb_follows_share_1_2[relu/original]", "estimate"] == pytest.approx(1.0)
    assert table.loc["pruning_global_iou_drop_within[relu]", "verdict"] == "holds"
    assert table.loc["pruning_weighted_iou_drop_within[sigmoid]", "estimate"] == pytest.approx(0.4)
    assert table.loc["pruning_raises_error[sigmoid]", "verdict"] == "holds"
    # no Hard Sigmoid in this run: its claims are left out; no int8 model: those rows have no replicate
    assert not any("hard_sigmoid" in i for i in table.index)
    assert table.loc["quantization_lowers_network_rate[relu]", "replicates"] == 0
    assert table.loc["quantization_lowers_network_rate[relu]", "verdict"] == "inconclusive"


def test_one_replicate_gives_no_interval_and_only_inconclusive_verdicts():
    table = findings_table(_models(reps=(0,)))
    assert (table["verdict"] == "inconclusive").all()
    assert table["low"].isna().all() and table["high"].isna().all()
    assert table.loc["relu_best_float_iou[sigmoid]", "estimate"] == pytest.approx(RELU_GIOU[0] - SIGMOID_GIOU[0])


def test_the_replicate_interval_is_a_t_interval_and_undefined_below_two():
    iv = replicate_interval([1.0, 2.0, 3.0, 4.0], 0.95)
    assert iv.estimate == 2.5 and iv.high - iv.estimate == pytest.approx(3.182446305 * np.std([1, 2, 3, 4], ddof=1) / 2)
    one = replicate_interval([1.0], 0.95)
    assert one.estimate == 1.0 and math.isnan(one.low) and verdict(one, ">", 0) == "inconclusive"
    assert math.isnan(replicate_interval([1.0, float("nan"), 2.0], 0.95).low)


@pytest.mark.parametrize(("values", "direction", "threshold", "expected"), [
    ([1.0, 1.2, 0.9], ">", 0, "holds"), ([-1.0, -1.2, -0.9], ">", 0, "reversed"),
    ([1.0, -1.0, 0.2], ">", 0, "inconclusive"), ([0.5, 0.6, 0.4], "<", 1.5, "holds"),
    ([3.0, 3.2, 2.9], "<", 1.5, "reversed"), ([1.0, 2.0, 1.4], "<", 1.5, "inconclusive"),
])
def test_verdict_reads_the_whole_interval_against_the_threshold(values, direction, threshold, expected):
    assert verdict(replicate_interval(values, 0.95), direction, threshold) == expected


def test_claims_naming_an_absent_af_are_skipped_and_ids_are_unique():
    every = claims(["relu", "sigmoid", "hard_sigmoid"])
    ids = [c.id for c in every]
    assert len(ids) == len(set(ids))
    assert {"bounded_below_relu_float[hard_sigmoid]", "hard_sigmoid_lowest_float[sigmoid]",
            "bounded_below_relu_int8[sigmoid]", "int8_biases_carry_errors[relu]", "gamma_most_sensitive[relu]",
            "quantization_lowers_network_rate[hard_sigmoid]", "sigmoid_most_robust_pruned[hard_sigmoid]"} <= set(ids)
    only = claims(["tanh", "relu6"])
    assert {c.id for c in only} >= {"pruning_raises_error[tanh]", "exponent_msb_most_sensitive[tanh]"}
    assert all(set(c.afs) <= {"tanh", "relu6"} for c in only)
    with pytest.raises(ValueError, match="heatmap_af"):
        claims(["relu"], heatmap_af="sigmoid")


def test_central_sets_are_the_middle_half_of_the_layers_in_graph_order():
    sets = _sets(np.zeros(32))
    # 8 layers cnv_1, bn_1, ..., bn_4: ranks 2..5 (L/4 <= rank < 3L/4) are central
    assert central_sets(sets) == ["cnv_2/kernel", "cnv_2/bias", "bn_2/gamma", "bn_2/beta",
                                  "cnv_3/kernel", "cnv_3/bias", "bn_3/gamma", "bn_3/beta"]


def test_findings_from_files_writes_the_csv_and_an_escaped_markdown_table(tmp_path):
    keys, cells, sets, metrics = [], [], [], []
    for (af, rep, stage), spec in _models().items():
        base = tmp_path / af / f"rep{rep}" / stage
        base.mkdir(parents=True)
        spec["cells"].to_csv(base / "cells.csv", index=False)
        spec["sets"].to_csv(base / "parameter_sets.csv", index=False)
        write_json(base / "metrics.json", spec["metrics"])
        keys.append((af, rep, stage))
        cells.append(base / "cells.csv")
        sets.append(base / "parameter_sets.csv")
        metrics.append(base / "metrics.json")
    config = {"afs": ["relu", "sigmoid"], "faults": {"heatmap_af": None},
              "findings": {"confidence": 0.9, "negligible_rate": 0.05}, "pruning": {"acceptance": {"max_drop": 1.5}}}
    settings = findings_settings(config)
    assert settings == {"afs": ["relu", "sigmoid"], "heatmap_af": None, "confidence": 0.9, "negligible_rate": 0.05,
                        "max_drop": 1.5}
    table = findings_from_files(keys, cells, sets, metrics, csv=tmp_path / "findings.csv", md=tmp_path / "findings.md",
                                **settings)
    assert table.loc["mantissa_negligible[relu]", "verdict"] == "reversed"  # 0.1 % is not below 0.05 %
    back = pd.read_csv(tmp_path / "findings.csv", index_col="id")
    assert list(back.index) == list(table.index)
    assert {"claim", "paper", "statistic", "estimate", "low", "high", "replicates", "verdict"} <= set(back.columns)
    md = (tmp_path / "findings.md").read_text()
    assert "90 % t interval" in md and "set_mean = mean over parameter sets" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| msb_follows_share_1_2[relu/original]"))
    assert "1 < \\|x\\| < 2" in line  # a | inside a cell would split the row


def test_write_findings_round_trips_an_empty_table(tmp_path):
    empty = findings_table({}, afs=["relu"])
    write_findings(empty, tmp_path / "f.csv", tmp_path / "f.md")
    assert (empty["replicates"] == 0).all()
