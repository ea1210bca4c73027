"""Shared fixtures: a temporary copy of the workflow and a tiny config that runs in seconds."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles", "envs")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_config(name: str = "config.yaml") -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def tiny_config() -> dict:
    """The default config shrunk to the smallest model and data that still exercise every rule."""
    cfg = load_config()
    cfg["data"]["synthetic"].update(n_train=6, n_val=2, n_test=2, height=32, width=64)
    cfg["model"].update(pools=2, base_filters=4)
    cfg["training"].update(epochs={"relu": 2, "sigmoid": 2, "hard_sigmoid": 2}, batch_size=2, verbose=0)
    return cfg


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """A fresh directory holding the workflow files, so that a real run leaves the repo alone."""
    dest = tmp_path / "wf"
    dest.mkdir()
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def write_config(directory: Path, cfg: dict, name: str = "test_config.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(copy.deepcopy(cfg), sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run the real Snakemake command line (the way users run it) in ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
