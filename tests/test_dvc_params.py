"""`dvc.yaml`'s params agree with what the Snakemake rules read: for every DVC stage, the config
keys the params functions of its rules (`params: config=<function>`, the rules named in the
stage's `--forcerun`) hand to their jobs are exactly the keys the stage lists, so DVC reruns a
stage when, and only when, one of them changes."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import yaml
from snakemake.io import expand

from conftest import REPO, load_config

RULES = REPO / "workflow" / "rules"


def _params_functions() -> dict[str, str]:
    """rule name -> the name of the function its `params: config=` calls."""
    out = {}
    for smk in RULES.glob("*.smk"):
        for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            found = re.search(r"params:\n(?:\s+\w+=.*\n)*?\s+config=(\w+),", body)
            if found:
                out[rule] = found.group(1)
    return out


def _common(config: dict) -> dict:
    namespace = {"config": config, "expand": expand, "os": os}
    exec(compile((RULES / "common.smk").read_text(), str(RULES / "common.smk"), "exec"), namespace)
    return namespace


def _leaves(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1]


def _covered(key: str, listed: set[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in listed)


def test_every_stage_lists_exactly_the_config_keys_its_rules_read():
    config = load_config()
    common = _common(config)
    functions = _params_functions()
    assert {"train", "prune_sensitivity", "prune_iteration", "quantize", "fault_list", "fault_shard"} <= set(functions)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    checked = 0
    for name, stage in stages.items():
        body = stage.get("do", stage)
        rules = re.search(r"--forcerun ([\w ]+?)(?: --|$)", " ".join(body["cmd"].split())).group(1).split()
        readers = [functions[r] for r in rules if r in functions and callable(common[functions[r]])]
        if not readers:
            continue  # the report's rules pass values, not config sections
        listed_raw = [k for entry in body["params"] for k in entry["config/config.yaml"]]
        for af in config["afs"]:
            listed = {k.replace("${item}", af).replace("${item.af}", af) for k in listed_raw}
            read_any: set[str] = set()  # a matrix stage lists what any of its (af, stage) jobs reads
            for st in ("original", "pruned", "quantized"):
                wildcards = SimpleNamespace(af=af, stage=st, k="1")
                read = {key for fn in readers for key in _leaves(common[fn](wildcards))}
                missing = {k for k in read if not _covered(k, listed)}
                assert not missing, f"dvc.yaml stage {name!r} does not list {sorted(missing)} (read by {readers})"
                read_any |= read
                checked += 1
            unread = {k for k in listed if not any(r == k or r.startswith(k + ".") for r in read_any)}
            assert not unread, f"dvc.yaml stage {name!r} lists {sorted(unread)}, which none of {readers} reads"
    assert checked >= 4 * len(config["afs"]) * 3
