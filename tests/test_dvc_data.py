"""On a fresh clone, offline, the default data comes out of DVC and DVC reports it clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from hsiseu.data import load_split


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_fresh_clone_pulls_the_default_data_from_the_in_repo_remote(tmp_path):
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    # The README's command: only the data has a lock; the pipeline's outputs do not exist yet.
    pulled = _dvc(clone, "pull", "data.dvc")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    # The data is clean; the pipeline's stages (dvc.yaml) are, rightly, not run yet on a clone.
    status = _dvc(clone, "status", "data.dvc")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    x, y = load_split(clone / "data" / "synthetic", "test")
    assert x.shape[-1] == 25 and x.shape[:3] == y.shape
