"""The table of which config keys each job reads: cutting a job's config from it."""

from __future__ import annotations

import copy

import pytest

from conftest import config_leaves, load_config
from hsiseu.settings import PER_AF_KEYS, lookup
from hsiseu.stage_keys import READS, STAGES, dvc_keys, job_config


def test_a_job_gets_its_own_afs_entries_and_the_first_k_ratios():
    config = load_config()
    cfg = job_config(config, "prune_iteration", af="sigmoid", k=1)
    assert cfg["pruning"]["ratios"] == {"sigmoid": config["pruning"]["ratios"]["sigmoid"][:1]}
    assert cfg["pruning"]["finetune"]["epochs"] == {"sigmoid": config["pruning"]["finetune"]["epochs"]["sigmoid"]}
    assert "epochs" not in cfg["training"]
    assert job_config(config, "train", af="relu")["training"]["epochs"] == {"relu": config["training"]["epochs"]["relu"]}


def test_an_af_without_an_entry_reads_the_default_and_a_missing_default_names_the_key():
    config = copy.deepcopy(load_config())
    config["training"]["epochs"] = {"relu": 3, "default": 5}
    assert job_config(config, "train", af="tanh")["training"]["epochs"] == {"tanh": 5}
    config["training"]["epochs"] = {"relu": 3}
    with pytest.raises(ValueError, match=r"training.epochs has no entry for 'tanh'"):
        job_config(config, "train", af="tanh")


def test_the_int8_kernels_reach_only_the_quantized_campaign():
    config = load_config()
    assert "quantization" in job_config(config, "fault_shard", af="relu", stage="quantized")
    assert "quantization" not in job_config(config, "fault_shard", af="relu", stage="original")
    assert "quantization" not in job_config(config, "fault_list", af="relu", stage="quantized")


@pytest.mark.parametrize("rule", sorted(READS))
def test_dvc_keys_cover_every_key_a_job_reads(rule):
    config = load_config()
    keys = dvc_keys(rule)
    for stage in ("original", "pruned", "quantized"):
        for leaf in config_leaves(job_config(config, rule, af="hard_sigmoid", stage=stage, k=2)):
            assert any(leaf == k or leaf.startswith(k + ".") for k in keys), (rule, leaf)


def test_check_config_names_an_af_that_a_per_af_key_cannot_serve():
    from hsiseu.settings import check_config

    config = copy.deepcopy(load_config())
    config["afs"] = ["relu", "gelu"]
    for dotted in PER_AF_KEYS:  # the default config serves any AF: take its defaults away
        lookup(config, dotted).pop("default", None)
    with pytest.raises(ValueError, match=r"training.epochs has no entry for 'gelu' and no 'default' entry"):
        check_config(config)
    for dotted in ("training.epochs", "pruning.finetune.epochs"):
        section = config
        for part in dotted.split(".")[:-1]:
            section = section[part]
        section["epochs"]["default"] = 3
    with pytest.raises(ValueError, match=r"pruning.ratios has no entry for 'gelu'"):
        check_config(config)
    config["pruning"]["ratios"]["default"] = [0.5]
    check_config(config)


def test_progress_output_is_no_key_of_a_job():
    config = copy.deepcopy(load_config())
    before = {rule: job_config(config, rule, af="relu", stage="original", k=1) for rule in READS}
    config["training"]["verbose"] = 0 if config["training"]["verbose"] else 2
    assert {rule: job_config(config, rule, af="relu", stage="original", k=1) for rule in READS} == before


def test_a_replicate_job_reads_its_own_seeds_and_replicate_0_is_the_config():
    config = load_config()
    for rule in ("train", "prune_iteration", "quantize"):
        assert job_config(config, rule, af="relu", k=1, rep=0)["seed"] == config["seed"]
        assert job_config(config, rule, af="relu", k=1, rep=2)["seed"] == config["seed"] + 2
    listed = job_config(config, "fault_list", af="relu", stage="pruned", rep=1)
    assert (listed["seed"], listed["faults"]["seed"]) == (config["seed"] + 1, config["faults"]["seed"] + 1)
    assert job_config(config, "fault_list", af="relu", stage="pruned") == job_config(
        config, "fault_list", af="relu", stage="pruned", rep=0)


@pytest.mark.parametrize("value, reps", [(3, [0, 1, 2]), ([0, 4], [0, 4]), (1, [0])])
def test_replicates_take_a_count_or_a_list(value, reps):
    from hsiseu.settings import replicates

    assert replicates({"replicates": value}) == reps


@pytest.mark.parametrize("value", [0, [], [1, 1], [-1]])
def test_bad_replicates_name_the_key(value):
    from hsiseu.settings import replicates

    with pytest.raises(ValueError, match="replicates"):
        replicates({"replicates": value})


def test_a_campaign_job_gets_its_stages_error_margin_and_a_single_number_serves_every_stage():
    config = load_config()
    config["faults"]["sampling"]["error_margin"] = {"original": 0.3, "pruned": 0.4, "quantized": 0.5}
    for rule in ("fault_list", "fault_shard", "fault_merge", "fault_campaign"):
        got = {stage: job_config(config, rule, af="relu", stage=stage, rep=1)["faults"]["sampling"]["error_margin"]
               for stage in STAGES}
        assert got == {"original": 0.3, "pruned": 0.4, "quantized": 0.5}, rule
    # the caller's config is left as it was
    assert config["faults"]["sampling"]["error_margin"]["pruned"] == 0.4
    config["faults"]["sampling"]["error_margin"] = 0.2
    assert {job_config(config, "fault_list", af="relu", stage=s)["faults"]["sampling"]["error_margin"]
            for s in STAGES} == {0.2}


def test_a_per_stage_margin_without_the_jobs_stage_is_an_error_naming_the_key():
    config = load_config()
    config["faults"]["sampling"]["error_margin"] = {"original": 0.3}
    with pytest.raises(ValueError, match=r"faults\.sampling\.error_margin.*'pruned'"):
        job_config(config, "fault_list", af="relu", stage="pruned")
