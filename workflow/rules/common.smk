# Helpers for the workflow: input functions and target lists (no rules here).
from snakemake.exceptions import WorkflowError

from hsiseu.settings import check_config

try:
    check_config(config)
except ValueError as err:
    raise WorkflowError(f"invalid config: {err}")


AFS = list(config["afs"])


def data_ready():
    """The file that stands for the dataset: made by `synthetic_data`, or the user's own."""
    root = config["data"]["root"]
    if config["data"]["source"] == "synthetic":
        return f"{root}/summary.json"
    return root


def training_config(wildcards):
    """The config keys training reads, with only this AF's epochs, so that editing another AF's
    epochs (or any later stage's settings) does not retrain this model."""
    cfg = {key: config[key] for key in ("seed", "data", "model")}
    cfg["training"] = dict(config["training"], epochs={wildcards.af: config["training"]["epochs"][wildcards.af]})
    return cfg


def per_af(pattern):
    return expand(pattern, af=AFS)


def all_targets():
    return [
        "reports/tables/table1_iou_float.csv",
        "reports/tables/table1_iou_float.md",
    ]
