"""The paper's model through the whole DAG: `config/paper_shape.yaml` at a CI size.

The full config (192x384, three AFs) is what README's "Paper-shaped run" times; CI runs the same
file with the stand-in generated at 32x64 (a 1x2 bottom level), ReLU alone and two bit positions,
so that the 5-level, 32-filter U-Net (31.13 M parameters whatever the crop) goes through
training, the real sensitivity analysis and pruning, int8 conversion, both fault campaigns and
every table and figure in a few minutes.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import copy_workflow, load_config, run_snakemake, write_config
from hsiseu.io import read_json

pytestmark = pytest.mark.slow

HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def paper_shape_run(tmp_path_factory):
    dest = copy_workflow(tmp_path_factory.mktemp("paper_shape") / "wf")
    cfg = load_config("paper_shape.yaml")
    cfg["afs"] = ["relu"]
    cfg["data"]["synthetic"].update(height=HEIGHT, width=WIDTH)
    # at this size compiling the fast engine's sub-graphs costs more than it saves (300 faults of
    # the original model: 5 min against well under one); the engines' outcomes are proven equal
    # fault by fault in their own tests
    cfg["faults"]["engine"] = "reference"
    # the exponent MSB (Figs. 4 and 6 read it) and a mantissa bit, which the int8 biases have too
    # and the int8 kernels alone: every figure and both set counts, with a third fewer faults
    cfg["faults"]["bits"] = [30, 7]
    proc = run_snakemake(dest, "--cores", "2", "--configfile", str(write_config(dest, cfg)), timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return dest, cfg


def test_table2_has_the_papers_parameters_and_its_ops_at_this_crop(paper_shape_run):
    wf, _ = paper_shape_run
    table = pd.read_csv(wf / "reports/tables/table2_complexity.csv", index_col=0)
    assert table.loc["Params (M)", "Original"] == pytest.approx(31.13, abs=0.005)
    # OPS scale with the pixels: 34.53 G at 192x384 (tests/test_model.py builds that one)
    assert table.loc["OPS (G)", "Original"] == pytest.approx(34.53 * HEIGHT * WIDTH / (192 * 384), rel=0.01)
    assert table.loc["Params (M)", "ReLU pruned"] < 31.13


def test_the_int8_campaign_finds_the_56_sets_of_28_convolutions(paper_shape_run):
    wf, cfg = paper_shape_run
    sets = pd.read_csv(wf / "results/relu/rep0/quantized/faults/parameter_sets.csv")
    assert len(sets) == 56
    assert sorted(sets["kind"].unique()) == ["bias", "kernel"]
    float_sets = pd.read_csv(wf / "results/relu/rep0/original/faults/parameter_sets.csv")
    assert len(float_sets) == 100  # 28 kernels + 28 biases + 22 BN gammas + 22 BN betas
    cells = pd.read_csv(wf / "results/relu/rep0/original/faults/cells.csv")
    assert len(cells) == 100 * len(cfg["faults"]["bits"])


def test_every_figure_and_table_of_the_paper_comes_out(paper_shape_run):
    wf, _ = paper_shape_run
    for table in ("table1_iou_float", "table2_complexity", "table3_iou_int8", "table4_deployment"):
        assert (wf / f"reports/tables/{table}.md").stat().st_size > 0
    figures = sorted(p.name for p in (wf / "reports/figures").glob("fig*.png"))
    assert [f.split("_")[0] for f in figures] == [f"fig{i}" for i in range(1, 9)], figures



def test_pruning_reaches_the_papers_relu_reduction_on_the_paper_model(paper_shape_run):
    wf, _ = paper_shape_run
    pruning = read_json(wf / "results/relu/rep0/pruned/metrics.json")["pruning"]
    assert pruning["original_params"] == 31_125_029
    assert pruning["reached_overall"] == pytest.approx(0.75, abs=0.03)  # 1 - (1 - 0.5)^2
    assert max(it["mask_vs_slim_max_abs_diff"] for it in pruning["iterations"]) < 1e-3
