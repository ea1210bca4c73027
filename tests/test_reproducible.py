"""Same machine, same TensorFlow build: the workflow's outputs are byte-identical run to run.

Across machines they are not (oneDNN and Eigen pick kernels per instruction set, so training
takes another path): there the findings' verdicts are what must reproduce (README). This test
rebuilds one AF's chain (training, two pruning iterations, int8 quantization, the three fault
campaigns) of the first replicate in a second copy of the workflow and compares every file that
holds no wall-clock time with the shared tiny run's.
"""

from __future__ import annotations

import hashlib

import pytest

from conftest import copy_workflow, run_snakemake, write_config
from hsiseu.settings import per_af

#: Outputs that carry no wall time (metrics.json files of the pruning and throughput do, and the
#: training history's ``seconds`` column: compared without it below).
CHAIN_FILES = (
    "pruned/layer_ratios.csv",
    "quantized/model.tflite",
    *(f"{stage}/faults/{name}" for stage in ("original", "pruned", "quantized")
      for name in ("fault_list.csv", "parameter_sets.csv", "outcomes.csv", "cells.csv")),
)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_rebuilt_chain_is_byte_identical_on_the_same_machine(tiny_run, tmp_path):
    first, cfg = tiny_run
    af = "relu"  # the chain with two pruning iterations (the second prunes the first's slim model)
    assert len(per_af(cfg, "pruning.ratios", af)) == 2
    second = copy_workflow(tmp_path / "wf")
    config = write_config(second, cfg)
    targets = [f"results/{af}/rep0/{stage}/faults/cells.csv" for stage in ("original", "pruned", "quantized")]
    proc = run_snakemake(second, "--cores", "2", *targets, "--configfile", str(config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    differ = [name for name in CHAIN_FILES
              if _digest(first / f"results/{af}/rep0/{name}") != _digest(second / f"results/{af}/rep0/{name}")]
    assert not differ, f"not byte-identical between two runs on this machine: {differ}"
    import pandas as pd

    def history(root):
        return pd.read_csv(root / f"results/{af}/rep0/original/history.csv").drop(columns="seconds")

    pd.testing.assert_frame_equal(history(first), history(second), check_exact=True)
    # the trained weights too: the .keras archive holds a save date, its weights file does not
    import zipfile

    def weights(root):
        with zipfile.ZipFile(root / f"results/{af}/rep0/pruned/model.keras") as z:
            return hashlib.sha256(z.read("model.weights.h5")).hexdigest()

    assert weights(first) == weights(second)
