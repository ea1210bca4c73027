"""Any Keras activation, end to end, in the shared tiny run: its first AF, `tanh`, is none of the
paper's and has no entry of its own in any per-AF key, so it runs on the `default` entries. The
tables name the configured AFs in their order, Figs. 2 and 7 follow the first AF, and no job of
an AF the config does not name runs."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import RUN_LOG
from hsiseu.activations import af_label
from hsiseu.io import read_json
from hsiseu.settings import lookup, per_af

pytestmark = pytest.mark.slow

NEW_AF = "tanh"


def test_the_first_af_is_one_that_runs_on_default_entries_alone(tiny_run):
    _, cfg = tiny_run
    assert cfg["afs"][0] == NEW_AF
    for dotted in ("training.epochs", "pruning.ratios", "pruning.finetune.epochs"):
        entries = lookup(cfg, dotted)
        assert NEW_AF not in entries and "default" in entries, dotted


def test_every_table_names_the_configured_afs_in_their_order(tiny_run):
    wf, cfg = tiny_run
    labels = [af_label(af) for af in cfg["afs"]]
    assert labels[0] == "Tanh"
    reps = range(cfg["replicates"])
    # per AF: the mean over replicates, its sd, then one column per replicate
    columns = [c for label in labels for c in (label, f"{label} sd", *(f"{label} rep{r}" for r in reps))]
    for name in ("table1_iou_float", "table3_iou_int8", "table4_deployment"):
        table = pd.read_csv(wf / f"reports/tables/{name}.csv", index_col=0)
        assert list(table.columns) == columns, name
        md = (wf / f"reports/tables/{name}.md").read_text()
        header = next(line for line in md.splitlines() if line.startswith("| "))
        assert [c.strip() for c in header.strip("|").split("|")][1:] == labels, name
    for name in ("table1_iou_float", "table3_iou_int8"):
        table = pd.read_csv(wf / f"reports/tables/{name}.csv", index_col=0)
        assert table.loc["Global", labels].between(0, 100).all()
    table2 = pd.read_csv(wf / "reports/tables/table2_complexity.csv", index_col=0)
    assert [c for c in table2.columns if c.endswith("pruned")] == [f"{label} pruned" for label in labels]
    assert set(read_json(wf / "reports/metrics/fault_error_rates.json")) == set(cfg["afs"])


def test_the_defaults_are_what_the_new_af_was_trained_and_pruned_with(tiny_run):
    wf, cfg = tiny_run
    epochs = per_af(cfg, "training.epochs", NEW_AF)
    ratios = per_af(cfg, "pruning.ratios", NEW_AF)
    # the defaults differ from every AF's own entry, so the files below tell which were used
    own = [af for af in cfg["training"]["epochs"] if af != "default"]
    assert all(per_af(cfg, "training.epochs", af) != epochs for af in own)
    assert all(per_af(cfg, "pruning.ratios", af) != ratios for af in own)
    faults = read_json(wf / "reports/metrics/fault_error_rates.json")[NEW_AF]
    assert set(faults) == {f"rep{r}" for r in range(cfg["replicates"])}
    for r in range(cfg["replicates"]):
        chain = wf / f"results/{NEW_AF}/rep{r}"
        assert read_json(chain / "original/metrics.json")["epochs"] == epochs
        assert (wf / f"logs/train/{NEW_AF}/rep{r}.log").read_text().count("val GIoU") == epochs
        pruning = read_json(chain / "pruned/metrics.json")["pruning"]
        assert pruning["requested_targets"] == pytest.approx(ratios)
        assert [p.name for p in sorted((chain / "pruned").glob("iter*"))] == [f"iter{k}" for k in range(1, len(ratios) + 1)]
        assert set(faults[f"rep{r}"]) == {"original", "pruned", "quantized"}


def test_figures_follow_the_first_af_and_no_job_of_another_af_runs(tiny_run):
    wf, cfg = tiny_run
    first = cfg["afs"][0]
    for name in (f"fig2_bitflip_heatmap_{first}_original", f"fig7_bitflip_heatmap_{first}_quantized",
                 "fig3_mean_bitflip_error_original", "fig8_mean_bitflip_error_quantized",
                 "fig1_pruning_ratio_per_layer"):
        assert (wf / f"reports/figures/{name}.png").stat().st_size > 0, name
    heatmaps = sorted(p.name for p in (wf / "reports/figures").glob("fig[27]_*.png"))
    assert heatmaps == [f"fig2_bitflip_heatmap_{first}_original.png", f"fig7_bitflip_heatmap_{first}_quantized.png"]
    assert sorted(p.name for p in (wf / "results").iterdir()) == sorted(["data", *cfg["afs"]])
    log = (wf / RUN_LOG).read_text()
    ran = set(re.findall(r"\baf=(\w+)", log))
    assert ran == set(cfg["afs"]), ran
