"""The SLURM profile: GPU discovery, and a real run of the tiny workflow through SLURM.

The end-to-end test needs SLURM (`apt-get install -y slurm-wlm munge`); it starts the one-node
cluster of cluster/start_local_slurm.sh when it can, and stops it again if it did.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake, tiny_config, write_config
from hsiseu import cluster

START = REPO / "cluster" / "start_local_slurm.sh"
STOP = REPO / "cluster" / "stop_local_slurm.sh"
TARGET = "reports/tables/table1_iou_float.md"


def _rule_names() -> set[str]:
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return {name for path in files for name in re.findall(r"^rule (\w+):", path.read_text(), re.M)}


def test_profile_sizes_every_rule_and_names_no_missing_one():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    rules = _rule_names() - {"all"}
    for key in ("set-resources", "set-threads"):
        named = set(profile[key])
        unknown, missing = sorted(named - rules), sorted(rules - named)
        assert not unknown, f"profiles/slurm/config.yaml {key} names rules that do not exist: {unknown}"
        assert not missing, f"add these rules to {key} in profiles/slurm/config.yaml: {missing}"
    assert profile["slurm-status-command"] == "squeue", "squeue works with and without slurmdbd"


def test_gpu_partitions_finds_gpu_gres_and_puts_the_default_first():
    sinfo = "cpu* (null)\ngpu gpu:a100:4(S:0-1)\nbig gpu:2,tmpdisk:100\nbig gpu:1\nmisc gpus_fake:2\n"
    assert cluster.gpu_partitions(sinfo) == ["gpu", "big"]
    assert cluster.gpu_partitions("cpu (null)\ngpu* gpu:4\n") == ["gpu"]
    assert cluster.gpu_partitions("debug* (null)\n") == []


def test_requested_gpus_reads_the_environment_and_rejects_nonsense(monkeypatch):
    monkeypatch.setenv(cluster.GPUS_ENV, "2")
    assert cluster.requested_gpus() == 2
    monkeypatch.setenv(cluster.GPUS_ENV, "0")
    assert cluster.requested_gpus() == 0
    for bad in ("two", "-1"):
        monkeypatch.setenv(cluster.GPUS_ENV, bad)
        with pytest.raises(ValueError, match=cluster.GPUS_ENV):
            cluster.requested_gpus()


def test_gpu_request_only_where_a_gpu_partition_exists_and_gpus_are_wanted():
    assert cluster.gpu_request(["gpu", "big"], 2) == ("gpu", "gpu:2")
    assert cluster.gpu_request([], 1) == ("", "")
    assert cluster.gpu_request(["gpu"], 0) == ("", "")


def _node_ready() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (subprocess.SubprocessError, OSError):
        return False
    return out.returncode == 0 and any(s in ("idle", "mixed", "allocated") for s in out.stdout.split())


@pytest.fixture(scope="module")
def slurm():
    """A SLURM that takes jobs: the running one, or the local test cluster started for this module."""
    if shutil.which("sbatch") is None:
        pytest.skip("SLURM not installed: apt-get install -y slurm-wlm munge, then cluster/start_local_slurm.sh")
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="SLURM executor plugin missing: pip install -e '.[cluster]'"
    )
    started = False
    if not _node_ready():
        if os.geteuid() != 0:
            pytest.skip("SLURM installed but not running; starting it (cluster/start_local_slurm.sh) needs root")
        proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"cluster/start_local_slurm.sh failed:\n{proc.stdout}\n{proc.stderr}"
        started = True
    yield
    if started:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=60)


def _jobs_in(workdir: Path) -> list[dict[str, str]]:
    # squeue lists finished jobs for MinJobAge seconds (600 on the local test cluster).
    fields = ("id", "comment", "state", "cpus", "memory", "time_limit", "partition", "gres", "workdir")
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%k|%T|%C|%m|%l|%P|%b|%Z"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    jobs = [dict(zip(fields, line.split("|"))) for line in out.splitlines()]
    return [job for job in jobs if Path(job["workdir"]).resolve() == workdir.resolve()]


@pytest.mark.slow
def test_tiny_workflow_runs_as_slurm_jobs_with_the_profiles_resources(slurm, workflow_copy):
    cfg = tiny_config()
    cfg["afs"] = ["relu"]  # one training job shows the resources; three cost CI a minute
    cfg["replicates"] = 1
    cfg["training"]["epochs"]["relu"] = 1  # the job's resources are the point, not the model
    write_config(workflow_copy, cfg)
    try:
        proc = run_snakemake(
            workflow_copy,
            "--profile",
            "profiles/slurm",
            "--configfile",
            "test_config.yaml",
            # Poll sooner than the plugin's 40 s: the tiny jobs take seconds.
            "--slurm-init-seconds-before-status-checks",
            "3",
            TARGET,
            timeout=900,
            slurm=True,
        )
    finally:
        # Whatever happened, leave no job of this run queued or running.
        leftover = [job["id"] for job in _jobs_in(workflow_copy) if job["state"] in ("PENDING", "RUNNING")]
        if leftover:
            subprocess.run(["scancel", *leftover], timeout=30)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (workflow_copy / TARGET).is_file()

    jobs = _jobs_in(workflow_copy)
    print("\n".join("|".join(job.values()) for job in jobs))
    # the plugin's comment: rule_<rule>[_wildcards_<values joined by _>]; train's are af, rep
    by_rule = {job["comment"]: job for job in jobs}
    assert sorted(by_rule) == [
        "rule_data_summary",
        "rule_synthetic_data",
        "rule_table1",
        "rule_train_wildcards_relu_0",
    ], "every job of the DAG ran as its own SLURM job"
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    # The profile's per-rule resources reached sbatch. profiles/default (cores: 2) still applies,
    # so the profile's 8 training threads are capped to 2, which fits the 2-CPU test node.
    train = by_rule["rule_train_wildcards_relu_0"]
    assert (train["cpus"], train["memory"], train["time_limit"]) == ("2", "16000M", "2-00:00:00")
    table = by_rule["rule_table1"]
    assert (table["cpus"], table["memory"], table["time_limit"]) == ("1", "2000M", "15:00")
    # Training asks for a GPU only where a partition offers one (none on the local test cluster).
    expected_gres = cluster.training_gres()
    assert train["gres"] == (f"gres:{expected_gres}" if expected_gres else "N/A")
    data = by_rule["rule_synthetic_data"]
    assert (data["memory"], data["time_limit"]) == ("4000M", "1:00:00")
