"""Same machine, same TensorFlow build: the workflow's outputs are byte-identical run to run.

Across machines they are not (oneDNN and Eigen pick kernels per instruction set, so training
takes another path): there the findings' verdicts are what must reproduce (README). The DVC
run (conftest's `dvc_repro`) rebuilds one chain of the shared tiny run, relu's replicate 0
(training, two pruning iterations, int8 quantization), from the same settings in another
repository through another entry point (`dvc repro`, stage by stage); every file of the chain
that holds no wall-clock time is compared with the shared run's. (Its fault campaigns ran
other engines: test_dvc_pipeline compares those files.)
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import dvc_config
from hsiseu.settings import per_af
from hsiseu.stage_keys import job_config

pytestmark = pytest.mark.slow

AF, REP = "relu", 0
CHAIN = Path(f"results/{AF}/rep{REP}")
#: outputs that carry no wall time (metrics.json files of the pruning and throughput do, and the
#: histories' `seconds` column: compared without it below)
FILES = ("pruned/layer_ratios.csv", "pruned/iter1/ratios.csv", "pruned/iter2/ratios.csv", "quantized/model.tflite")
HISTORIES = ("original/history.csv", "pruned/iter1/history.csv", "pruned/iter2/history.csv")
#: .keras archives also hold a save date; their weights file does not
MODELS = ("original/model.keras", "pruned/iter1/model.keras", "pruned/model.keras")


def _weights(model_keras: Path) -> bytes:
    with zipfile.ZipFile(model_keras) as archive:
        return archive.read("model.weights.h5")


def test_the_dvc_run_rebuilds_a_chain_of_the_shared_run_from_the_same_settings(tiny_run):
    _, shared_cfg = tiny_run
    cfg = dvc_config()
    assert AF in cfg["afs"] and AF in shared_cfg["afs"] and REP in cfg["replicates"]
    assert len(per_af(cfg, "pruning.ratios", AF)) == 2
    # what each job of the chain reads (hsiseu.stage_keys) is the same in both configs
    for rule, kwargs in (("train", {}), ("prune_sensitivity", {"k": 1}), ("prune_iteration", {"k": 1}),
                         ("prune_iteration", {"k": 2}), ("prune", {}), ("quantize", {})):
        assert job_config(cfg, rule, af=AF, rep=REP, **kwargs) == job_config(shared_cfg, rule, af=AF, rep=REP, **kwargs), rule


def test_a_rebuilt_chain_is_byte_identical_on_the_same_machine(dvc_repro, tiny_run):
    rebuilt, _ = dvc_repro
    first, _ = tiny_run
    differ = [name for name in MODELS if _weights(rebuilt / CHAIN / name) != _weights(first / CHAIN / name)]
    differ += [name for name in FILES if (rebuilt / CHAIN / name).read_bytes() != (first / CHAIN / name).read_bytes()]
    assert not differ, f"not byte-identical between two runs on this machine: {differ}"
    for name in HISTORIES:
        pd.testing.assert_frame_equal(pd.read_csv(rebuilt / CHAIN / name).drop(columns="seconds"),
                                      pd.read_csv(first / CHAIN / name).drop(columns="seconds"), check_exact=True)
