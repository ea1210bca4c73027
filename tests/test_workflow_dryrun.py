"""Dry runs through snakemake.api: the DAG of both shipped configs builds, bad configs stop it."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

from conftest import REPO, load_config, tiny_config, write_config, run_snakemake


def dry_run(workdir: Path, configfile: Path, targets=()) -> None:
    with SnakemakeApi(OutputSettings(dryrun=True, quiet=None)) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        dag = wf.dag(DAGSettings(targets=set(targets)) if targets else None)
        dag.execute_workflow(executor="dryrun")


def test_default_config_dry_run_builds_the_dag(workflow_copy):
    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml")


def test_paper_config_dry_run_builds_the_dag(workflow_copy, tmp_path):
    cfg = load_config("paper.yaml")
    root = tmp_path / "hsi_drive"
    root.mkdir()
    cfg["data"]["root"] = str(root)
    dry_run(workflow_copy, write_config(workflow_copy, cfg))


def test_table1_is_a_target_of_its_own(workflow_copy):
    dry_run(workflow_copy, workflow_copy / "config" / "config.yaml", ["reports/tables/table1_iou_float.md"])


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda c: c.update(learning_rte=0.1), "learning_rte"),
        (lambda c: c["training"].update(batch_size=0), "batch_size"),
        (lambda c: c.update(afs=["relu", "tanhh"]), "'tanhh' is not a Keras 3 element-wise activation; did you mean 'tanh'"),
        (lambda c: c.update(afs=["relu", "softmax"]), "'softmax' cannot be used"),
        (lambda c: c.update(afs=["relu", "gelu"]) or c["training"]["epochs"].pop("default"),
         "training.epochs has no entry for 'gelu'"),
        (lambda c: c["model"].update(pools="five"), "five"),
        (lambda c: c.update(afs=["sigmoid"]) or c["faults"].update(heatmap_af="relu"), "faults.heatmap_af"),
    ],
)
def test_bad_config_key_or_value_stops_the_run_naming_it(workflow_copy, edit, needle):
    cfg = tiny_config()
    edit(cfg)
    path = write_config(workflow_copy, cfg)
    proc = run_snakemake(workflow_copy, "-n", "--configfile", str(path), timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_afs_sigmoid_alone_builds_no_relu_job(workflow_copy):
    cfg = tiny_config()
    cfg["afs"] = ["sigmoid"]
    proc = run_snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(write_config(workflow_copy, cfg)),
                         timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "results/sigmoid/rep0/quantized/faults/cells.csv" in out and "fig2_bitflip_heatmap_sigmoid_original.png" in out
    assert "relu" not in out.replace("results/sigmoid", "")


def test_new_afs_with_default_entries_build_their_jobs(workflow_copy):
    cfg = tiny_config()
    cfg["afs"] = ["gelu", "relu6"]
    cfg["training"]["epochs"] = {"default": 3}
    cfg["pruning"]["ratios"] = {"relu6": [0.5, 0.2, 0.2], "default": [0.4]}
    cfg["pruning"]["finetune"]["epochs"] = {"default": 1}
    proc = run_snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(write_config(workflow_copy, cfg)),
                         timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "results/relu6/rep0/pruned/iter3/model.keras" in out and "results/gelu/rep0/pruned/iter1/model.keras" in out
    assert "results/gelu/rep0/pruned/iter2" not in out


def test_a_subset_of_afs_builds_only_their_jobs_and_figs_2_and_7_follow_heatmap_af(workflow_copy):
    cfg = tiny_config()
    cfg["afs"] = ["hard_sigmoid", "sigmoid"]
    proc = run_snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(write_config(workflow_copy, cfg)),
                         timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "results/relu" not in out and "af=relu" not in out and "_relu_" not in out
    assert "results/sigmoid/rep0/original/model.keras" in out
    # the first AF is the heat maps' unless faults.heatmap_af says otherwise
    assert "fig2_bitflip_heatmap_hard_sigmoid_original.png" in out and "fig7_bitflip_heatmap_hard_sigmoid_quantized.png" in out
    cfg["faults"]["heatmap_af"] = "sigmoid"
    proc = run_snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(write_config(workflow_copy, cfg)),
                         timeout=120)
    out = proc.stdout + proc.stderr
    assert "fig2_bitflip_heatmap_sigmoid_original.png" in out and "fig2_bitflip_heatmap_hard_sigmoid" not in out


def test_crop_not_divisible_by_pools_is_reported(workflow_copy):
    cfg = tiny_config()
    cfg["data"]["crop"] = [30, 64]
    proc = run_snakemake(workflow_copy, "-n", "--configfile", str(write_config(workflow_copy, cfg)), timeout=120)
    assert proc.returncode != 0
    assert "divisible" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = run_snakemake(REPO, "--lint", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr
