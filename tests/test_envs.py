"""The conda env of the cluster runs takes its dependencies from pyproject.toml alone."""

from __future__ import annotations

import tomllib

import yaml

from conftest import REPO


def test_the_conda_env_installs_the_package_and_repeats_none_of_its_dependencies():
    env = yaml.safe_load((REPO / "envs" / "hsiseu.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = project["requires-python"].removeprefix(">=")
    assert conda == [f"python={python}", "pip"]
    assert len(pip) == 1 and pip[0].startswith("-e ../")
    extras = pip[0].removeprefix("-e ../").strip("[]").split(",")
    assert set(extras) <= set(project["optional-dependencies"])
