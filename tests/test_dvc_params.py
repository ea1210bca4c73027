"""`dvc.yaml`'s params and the Snakemake rules' params come from one table,
`hsiseu.stage_keys.READS`: every rule that hands its job a config (`params: config=`) reads its own
row, and every DVC stage lists exactly the keys of the rules it forces, so DVC reruns a stage
when, and only when, one of them changes."""

from __future__ import annotations

import re

import yaml

from conftest import REPO, config_leaves, load_config
from hsiseu.stage_keys import READS, dvc_keys

RULES = REPO / "workflow" / "rules"


def _params_rows() -> dict[str, str]:
    """rule name -> the READS row its `params: config=reads("...")` names."""
    out = {}
    for smk in RULES.glob("*.smk"):
        for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            found = re.search(r"params:\n(?:\s+\w+=.*\n)*?\s+config=reads\(\"(\w+)\"\),", body)
            if found:
                out[rule] = found.group(1)
    return out


def _leaf_set(keys, config) -> set[str]:
    """The config's leaves that dotted keys stand for (a section stands for all of its leaves)."""
    leaves = set(config_leaves(config))
    out = set()
    for key in keys:
        found = {leaf for leaf in leaves if leaf == key or leaf.startswith(key + ".")}
        assert found, f"{key!r} names no key of config/config.yaml"
        out |= found
    return out


def test_every_rule_with_a_config_reads_its_own_row():
    rows = _params_rows()
    assert {"train", "prune_sensitivity", "prune_iteration", "prune", "quantize", "throughput",
            "fault_list", "fault_shard", "fault_merge", "fault_campaign"} == set(rows)
    assert all(rule == row for rule, row in rows.items()), rows
    assert set(READS) == set(rows)


def test_every_stage_lists_exactly_the_config_keys_its_rules_read():
    config = load_config()
    rows = _params_rows()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    checked = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        rules = re.search(r"--forcerun ([\w ]+?)(?: --|$)", " ".join(body["cmd"].split())).group(1).split()
        readers = [r for r in rules if r in rows]
        if not readers:
            continue  # the report's rules pass values, not config sections
        listed = [k for entry in body["params"] for k in entry["config/config.yaml"]]
        assert not any("${" in k for k in listed), f"{name}: per-AF keys are listed whole (see dvc_keys)"
        read = [k for r in readers for k in dvc_keys(r)]
        assert _leaf_set(listed, config) == _leaf_set(read, config), (
            f"dvc.yaml stage {name!r}: lists {sorted(_leaf_set(listed, config) - _leaf_set(read, config))} "
            f"that {readers} do not read, misses {sorted(_leaf_set(read, config) - _leaf_set(listed, config))}"
        )
        checked.append(name)
    assert checked == ["train", "prune", "quantize", "faults"]
