"""Any AF from the command line: the default config's per-AF keys have `default` entries, so
`snakemake -n --config 'afs=[relu6,tanh]'` (the first thing a user tries) builds the DAG, while
the paper's three AFs keep their own values."""

from __future__ import annotations

import pytest

from conftest import load_config, run_snakemake
from hsiseu.settings import PER_AF_KEYS, lookup, per_af

PAPER_AFS = ("relu", "sigmoid", "hard_sigmoid")


@pytest.mark.parametrize("dotted", PER_AF_KEYS)
def test_every_per_af_key_of_the_default_config_has_a_default_and_the_papers_afs_their_own(dotted):
    entries = lookup(load_config(), dotted)
    assert "default" in entries, f"{dotted} has no default entry"
    assert set(PAPER_AFS) <= set(entries), f"{dotted} lost an entry of the paper's AFs"
    assert per_af(load_config(), dotted, "relu6") == entries["default"]


def test_default_config_dry_run_builds_any_af_from_the_command_line(workflow_copy):
    proc = run_snakemake(workflow_copy, "-n", "--cores", "2", "--config", "afs=[relu6,tanh]", timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for af in ("relu6", "tanh"):
        for path in ("original/model.keras", "pruned/model.keras", "quantized/model.tflite",
                     "quantized/faults/cells.csv"):
            assert f"results/{af}/rep0/{path}" in out, f"no job for results/{af}/rep0/{path}"
    assert "reports/tables/findings.csv" in out
    assert not any(f"results/{af}/" in out for af in PAPER_AFS)
