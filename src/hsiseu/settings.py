"""Translate the validated workflow config into the keyword arguments of the package.

The config layout is known here and in the schema only, so that a renamed key is one edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hsiseu.activations import check_afs

#: Dotted config keys holding one entry per AF, or a ``default`` entry for AFs not listed.
PER_AF_KEYS: tuple[str, ...] = ("training.epochs", "pruning.ratios", "pruning.finetune.epochs")

#: Dotted config keys holding one value for every model stage, or one entry per stage
#: (``original``, ``pruned``, ``quantized``).
PER_STAGE_KEYS: tuple[str, ...] = ("faults.sampling.error_margin",)


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key path, e.g. ``training.epochs``."""
    value: Any = config
    for part in dotted.split("."):
        value = value[part]
    return value


def per_af(config: Mapping[str, Any], dotted: str, af: str) -> Any:
    """``af``'s value of the per-AF key ``dotted`` (one of :data:`PER_AF_KEYS`): its own entry,
    or the ``default`` entry, so that naming a new AF in ``afs`` needs no other edit."""
    entries = lookup(config, dotted)
    if af in entries:
        return entries[af]
    if "default" in entries:
        return entries["default"]
    raise ValueError(f"{dotted} has no entry for {af!r} and no 'default' entry")


def per_stage(config: Mapping[str, Any], dotted: str, stage: str) -> Any:
    """``stage``'s value of the per-stage key ``dotted`` (one of :data:`PER_STAGE_KEYS`).

    Why per stage: how many faults a model needs depends on how much the models of a stage
    differ between replicates against how much one model's fault sample moves its rate
    (docs/statistics.md, "How many faults a model needs"), and that ratio differs by stage."""
    value = lookup(config, dotted)
    if not isinstance(value, Mapping):
        return value
    if stage not in value:
        raise ValueError(f"{dotted} has no entry for stage {stage!r}")
    return value[stage]


def stage_config(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """``config`` with every per-stage key present in it resolved to ``stage``'s value (copies
    the dicts on the way, never the caller's)."""
    out = dict(config)
    for dotted in PER_STAGE_KEYS:
        *parents, leaf = dotted.split(".")
        node: Any = out
        try:
            for part in parents:
                node[part] = dict(node[part])
                node = node[part]
        except (KeyError, TypeError):
            continue
        if leaf in node:
            node[leaf] = per_stage(config, dotted, stage)
    return out


def replicates(config: Mapping[str, Any]) -> list[int]:
    """The replicate numbers of the run: ``replicates`` as a count n (0 .. n-1) or as a list.

    Why replicates. One trained model per AF cannot answer a question about AFs: retraining with
    another seed moves a model's error rates far beyond the fault-sampling interval of one model
    (see docs/statistics.md). Replicate r is the whole chain (training, pruning, quantization,
    campaigns) under :func:`replicate_config`."""
    value = config.get("replicates", 1)
    reps = list(range(int(value))) if isinstance(value, int) else [int(r) for r in value]
    if not reps or len(set(reps)) != len(reps) or min(reps) < 0:
        raise ValueError(f"replicates is {value!r}: give a count >= 1 or a list of distinct numbers >= 0")
    return reps


def replicate_config(config: Mapping[str, Any], rep: int) -> dict[str, Any]:
    """The config replicate ``rep`` runs under: ``seed`` (weight initialization, data order,
    fine-tuning) and ``faults.seed`` (its fault list) offset by ``rep``, the rest shared (the
    dataset, the architecture and every setting). Replicate 0 is the config itself, so a run with
    one replicate builds the models a run without replicates would."""
    out = dict(config)
    out["seed"] = int(config["seed"]) + int(rep)
    if "faults" in config and "seed" in config["faults"]:
        out["faults"] = {**config["faults"], "seed": int(config["faults"]["seed"]) + int(rep)}
    return out


def data_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments of ``hsiseu.data.load_split`` / ``make_dataset``."""
    data = config["data"]
    crop = data.get("crop")
    return {
        "bands": list(data["bands"]) if data.get("bands") is not None else None,
        "crop": tuple(crop) if crop is not None else None,
        "expected_bands": int(data["expected_bands"]),
    }


def input_shape(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """(height, width, bands) the model sees, derived without reading the data when possible."""
    data = config["data"]
    bands = len(data["bands"]) if data.get("bands") is not None else int(data["expected_bands"])
    if data.get("crop") is not None:
        h, w = data["crop"]
    elif data["source"] == "synthetic":
        h, w = data["synthetic"]["height"], data["synthetic"]["width"]
    else:
        raise ValueError(
            "config data.crop is null and data.source is 'hsi_drive': set data.crop to the "
            "[height, width] the model should see (paper: [192, 384])"
        )
    return int(h), int(w), int(bands)


def model_kwargs(config: Mapping[str, Any], af: str) -> dict[str, Any]:
    """Arguments of ``hsiseu.model.build_unet`` for one activation function."""
    h, w, b = input_shape(config)
    m = config["model"]
    return {
        "height": h,
        "width": w,
        "bands": b,
        "n_classes": int(m["n_classes"]),
        "af": af,
        "pools": int(m["pools"]),
        "base_filters": int(m["base_filters"]),
        "seed": int(config["seed"]),
    }


def heatmap_af(config: Mapping[str, Any]) -> str:
    """The AF of Figs. 2 and 7: ``faults.heatmap_af``, or the first of ``afs`` when null."""
    return str(config["faults"].get("heatmap_af") or config["afs"][0])


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks that a JSON schema cannot express; raise ValueError naming the keys."""
    # stages check the part of the config they are handed, which may hold no faults or afs
    if "replicates" in config:
        replicates(config)
    if "afs" in config:
        check_afs(config["afs"])
        for dotted in PER_AF_KEYS:
            if dotted.split(".")[0] in config:
                for af in config["afs"]:
                    per_af(config, dotted, af)
    chosen = config["faults"].get("heatmap_af") if "faults" in config and "afs" in config else None
    if chosen is not None and chosen not in config["afs"]:
        raise ValueError(f"faults.heatmap_af is {chosen!r}, which is not one of afs {list(config['afs'])}")
    h, w, b = input_shape(config)
    pools = int(config["model"]["pools"])
    step = 2**pools
    if h % step or w % step:
        raise ValueError(
            f"input size {h}x{w} (data.crop or data.synthetic.height/width) must be divisible by "
            f"2**model.pools = {step}"
        )
    bands = config["data"].get("bands")
    if bands is not None and max(bands) >= int(config["data"]["expected_bands"]):
        raise ValueError(
            f"data.bands has index {max(bands)} but data.expected_bands is "
            f"{config['data']['expected_bands']}"
        )


def dump_config(config: Mapping[str, Any]) -> str:
    """The config as YAML in its own key order, for the report: readers compare runs by it."""
    import yaml

    header = "# Configuration used by this run (validated; overrides applied)\n"
    return header + yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    # Snakemake hands the config over as its own mapping/list types; YAML wants plain ones.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
