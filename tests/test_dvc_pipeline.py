"""The three ways users run the project, on the tiny config, for real: `dvc repro` (which runs
Snakemake stage by stage), a second `dvc repro` that does nothing, `dvc exp run -S` that re-runs
only what a parameter touches, `dvc metrics show`, `dvc push`, and the HTML report."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow, local_env, tiny_config, write_config
from hsiseu.synthetic import generate_dataset

pytestmark = pytest.mark.slow

ENV = local_env(DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2", GIT_AUTHOR_NAME="t",
                GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def sh(cwd: Path, *cmd: str, timeout: int = 1800) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def dvc(cwd: Path, *args: str, timeout: int = 1800) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args, timeout=timeout)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def dvc_config() -> dict:
    """One AF: the stages of one chain are enough to show what a parameter change re-runs, and
    CI's time is better spent elsewhere than on two more chains. Its campaigns take the paths the
    shared tiny run does not: one `fault_campaign` job each (faults.shards: 1) and the fast
    engines (the float one included), so that both paths run for real."""
    cfg = tiny_config()
    cfg["afs"] = ["relu"]
    cfg["replicates"] = [0]  # a list: dvc.yaml's matrix reads it (the shared tiny run covers replicates)
    cfg["faults"].update(shards=1, engine="fast")
    return cfg


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    """A new git + DVC repository holding the workflow, the tiny config and tiny data, after one
    `dvc repro` (the whole DAG)."""
    repo = copy_workflow(tmp_path_factory.mktemp("dvcrepo") / "repo")
    # what DVC hashes as stage dependencies, and its own files
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, repo / name)
    cfg = dvc_config()
    write_config(repo / "config", cfg, "config.yaml")
    generate_dataset(repo / cfg["data"]["root"], **cfg["data"]["synthetic"])
    sh(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "add", "-q", "data")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny")
    first = dvc(repo, "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "repro")
    return repo, first


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


def _weights(model_keras: Path) -> bytes:
    """A .keras archive's weights (the archive also holds its save date)."""
    with zipfile.ZipFile(model_keras) as archive:
        return archive.read("model.weights.h5")


def test_fast_engines_in_single_job_campaigns_give_the_shared_runs_files_byte_for_byte(repro, tiny_run):
    """Replicate 0 of relu is the same model here and in the shared tiny run (same settings, same
    machine), whose campaigns ran the reference engines in two shards, then a merge job: the
    fast engines' campaigns, each one job, must give the same files, byte for byte."""
    repo, _ = repro
    shared, shared_cfg = tiny_run
    assert (shared_cfg["faults"]["engine"], shared_cfg["faults"]["shards"]) == ("reference", 2)
    chain = Path("results/relu/rep0")
    for model in ("original/model.keras", "pruned/model.keras"):
        assert _weights(repo / chain / model) == _weights(shared / chain / model), f"{model} differs: nothing to compare"
    assert (repo / chain / "quantized/model.tflite").read_bytes() == (shared / chain / "quantized/model.tflite").read_bytes()
    differ = [f"{stage}/{name}" for stage in ("original", "pruned", "quantized")
              for name in ("fault_list.csv", "parameter_sets.csv", "outcomes.csv", "cells.csv", "faults_run.csv")
              if (repo / chain / stage / "faults" / name).read_bytes() != (shared / chain / stage / "faults" / name).read_bytes()]
    assert not differ, f"the fast single-job campaigns differ from the reference sharded ones: {differ}"


def test_exp_run_with_a_changed_parameter_reruns_only_what_depends_on_it(repro):
    repo, _ = repro
    out = dvc(repo, "exp", "run", "-S", "config/config.yaml:quantization.representative_samples=2")
    # quantization and what follows it re-run; the data, the training, the pruning and the float
    # models' campaigns do not (a late stage, so that the test stays short)
    assert ran_stages(out) == {"quantize@relu-0", "faults@relu-0-quantized", "report"}, out[-3000:]
