"""The three ways users run the project, on the tiny config, for real: `dvc repro` (which runs
Snakemake stage by stage), a second `dvc repro` that does nothing, `dvc exp run -S` that re-runs
only what a parameter touches, `dvc metrics show`, `dvc push`, and the HTML report.

The repository and its `dvc repro` are conftest's session fixture `dvc_repro` (its config:
conftest.dvc_config): the chain it builds is also the shared tiny run's relu replicate 0, which
test_reproducible compares byte for byte, and whose campaigns (fast engines, one job each) are
compared here with the shared run's (reference engines, sharded)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import dvc, dvc_config, sh

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture
def repro(dvc_repro):
    return dvc_repro


def test_first_repro_runs_every_stage_and_makes_every_figure_and_table(repro):
    repo, first = repro
    stages = ran_stages(first)
    afs, reps = dvc_config()["afs"], dvc_config()["replicates"]
    expected = {"data", "report"} | {f"{s}@{af}-{r}" for s in ("train", "prune", "quantize") for af in afs for r in reps}
    expected |= {f"faults@{af}-{r}-{st}" for af in afs for r in reps for st in ("original", "pruned", "quantized")}
    assert expected <= stages, sorted(expected - stages)
    figures = sorted(p.name for p in (repo / "reports" / "figures").glob("*.png"))
    assert [f[:4] for f in figures] == ["fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8"]
    tables = sorted(p.name for p in (repo / "reports" / "tables").glob("*.md"))
    assert [t[:6] for t in tables] == ["findin", "table1", "table2", "table3", "table4"]


def test_second_repro_does_nothing(repro):
    repo, _ = repro
    second = dvc(repo, "repro")
    assert ran_stages(second) == set(), second


def test_metrics_show_prints_the_ious(repro):
    repo, _ = repro
    shown = dvc(repo, "metrics", "show")
    assert "global_iou" in shown and "set_mean" in shown and "network_rate" in shown


def test_html_report_holds_every_figure_and_table(repro):
    repo, _ = repro
    sh(repo, sys.executable, "-m", "snakemake", "--report", "reports/report.html", timeout=600)
    html = (repo / "reports" / "report.html").read_text(errors="replace")
    for n in range(1, 9):
        assert f"fig{n}_" in html
    for n in range(1, 5):
        assert f"table{n}_" in html
    assert "config_used.yaml" in html and "findings.csv" in html
    # the landing page and captions render: no reStructuredText error box
    assert "System Message" not in html


def test_push_stores_models_and_results_in_a_local_remote(repro, tmp_path):
    repo, _ = repro
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-f", "-d", "testremote", str(remote))
    dvc(repo, "push", "-q")
    stored = [p for p in remote.rglob("*") if p.is_file()]
    assert len(stored) > 30


#: relu's replicate 0, which both runs build
CHAIN = Path("results/relu/rep0")
#: every campaign file; none holds a wall-clock time
CAMPAIGN_FILES = tuple(f"{stage}/faults/{name}" for stage in ("original", "pruned", "quantized")
                       for name in ("fault_list.csv", "parameter_sets.csv", "outcomes.csv", "cells.csv",
                                    "faults_run.csv"))


def test_fast_engines_in_single_job_campaigns_give_the_shared_runs_files_byte_for_byte(repro, tiny_run):
    """The shared tiny run's campaigns ran the reference engines in two shards, then a merge job;
    here each campaign is one job of the fast engines, on the same models (test_reproducible):
    the same files, byte for byte."""
    repo, _ = repro
    shared, shared_cfg = tiny_run
    cfg = dvc_config()
    assert (cfg["faults"]["engine"], cfg["faults"]["shards"]) == ("fast", 1)
    assert (shared_cfg["faults"]["engine"], shared_cfg["faults"]["shards"]) == ("reference", 2)
    assert (repo / CHAIN / "quantized/model.tflite").read_bytes() == (shared / CHAIN / "quantized/model.tflite").read_bytes()
    differ = [name for name in CAMPAIGN_FILES if (repo / CHAIN / name).read_bytes() != (shared / CHAIN / name).read_bytes()]
    assert not differ, f"the fast single-job campaigns differ from the reference sharded ones: {differ}"


def test_exp_run_with_a_changed_parameter_reruns_only_what_depends_on_it(repro, tmp_path):
    # in a copy: the session's repository stays as `dvc repro` left it (test_reproducible reads it)
    repo = tmp_path / "repo"
    shutil.copytree(repro[0], repo, symlinks=True)
    out = dvc(repo, "exp", "run", "-S", "config/config.yaml:quantization.representative_samples=2")
    # quantization and what follows it re-run; the data, the training, the pruning and the float
    # models' campaigns do not (a late stage, so that the test stays short)
    assert ran_stages(out) == {"quantize@relu-0", "faults@relu-0-quantized", "report"}, out[-3000:]
