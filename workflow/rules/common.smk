# Helpers for the workflow: input functions and target lists (no rules here).
from snakemake.exceptions import WorkflowError

from hsiseu.findings.table import findings_settings
from hsiseu.settings import check_config, data_kwargs, heatmap_af, per_af as af_value, per_stage, replicates
from hsiseu.stage_keys import job_config

try:
    check_config(config)
except ValueError as err:
    raise WorkflowError(f"invalid config: {err}")


AFS = list(config["afs"])
REPS = replicates(config)


def data_ready():
    """The file that stands for the dataset: made by `synthetic_data`, or the user's own."""
    root = config["data"]["root"]
    if config["data"]["source"] == "synthetic":
        return f"{root}/summary.json"
    return root


def reads(rule):
    """Params function: the config keys `rule`'s job reads (hsiseu.stage_keys.READS), so that a
    job re-runs when, and only when, one of them changes."""
    return lambda wildcards: job_config(
        config, rule, af=wildcards.get("af"), stage=wildcards.get("stage"),
        k=int(wildcards.k) if "k" in wildcards.keys() else None,
        rep=int(wildcards.rep) if "rep" in wildcards.keys() else None,
    )


def stage_margin(stage):
    """The fault-sampling margin e of ``stage``'s campaigns (a per-stage key), for captions."""
    return per_stage(config, "faults.sampling.error_margin", stage)


def dataset_root(path):
    """The dataset directory behind the file `data_ready()` returned."""
    return path if os.path.isdir(path) else os.path.dirname(path)


def model_keys():
    """(af, rep) of every trained chain, AF-major: the order every per-model input list follows."""
    return [[af, rep] for af in AFS for rep in REPS]


def per_model(pattern):
    """`pattern` for every (af, rep), in the order of `model_keys()`."""
    return [pattern.format(af=af, rep=rep) for af, rep in model_keys()]


def per_rep(pattern):
    """Input function: `pattern` for every replicate, the output's other wildcards filled in."""
    return lambda wildcards: [pattern.format(**{**{k: wildcards[k] for k in wildcards.keys()}, "rep": rep})
                              for rep in REPS]


def prune_iterations(af):
    """Number of pruning iterations of one AF: one per entry of pruning.ratios.<af>."""
    return len(af_value(config, "pruning.ratios", af))


def prune_input_model(wildcards):
    """Iteration 1 prunes the trained model, iteration k the slim model of iteration k - 1."""
    k = int(wildcards.k)
    if not 1 <= k <= prune_iterations(wildcards.af):
        raise WorkflowError(f"no pruning iteration {k} for {wildcards.af}: see pruning.ratios")
    if k == 1:
        return f"results/{wildcards.af}/rep{wildcards.rep}/original/model.keras"
    return f"results/{wildcards.af}/rep{wildcards.rep}/pruned/iter{k - 1}/model.keras"


def prune_iteration_files(name):
    """Input function: the file `name` of every pruning iteration of this AF."""
    return lambda wildcards: [
        f"results/{wildcards.af}/rep{wildcards.rep}/pruned/iter{k}/{name}" for k in range(1, prune_iterations(wildcards.af) + 1)
    ]


def fault_model(wildcards):
    """The model file a stage's fault campaign injects into."""
    name = "model.tflite" if wildcards.stage == "quantized" else "model.keras"
    return f"results/{wildcards.af}/rep{wildcards.rep}/{wildcards.stage}/{name}"


def fault_shards(wildcards):
    n = config["faults"]["shards"]
    return [f"results/{wildcards.af}/rep{wildcards.rep}/{wildcards.stage}/faults/shards/{i}-of-{n}.csv" for i in range(n)]


def per_model_stage(pattern):
    """Input function: `pattern` for every (af, rep) at the stage of the requested output."""
    return lambda wildcards: [pattern.format(af=af, rep=rep, stage=wildcards.stage) for af, rep in model_keys()]


def model_stage_keys():
    """(af, rep, stage) of every model, in the order `per_model_stage_all` expands."""
    return [[af, rep, stage] for af, rep in model_keys() for stage in STAGES]


def per_model_stage_all(pattern):
    return [pattern.format(af=af, rep=rep, stage=stage) for af, rep, stage in model_stage_keys()]


def all_targets():
    return [
        "reports/tables/findings.csv",
        "reports/tables/findings.md",
        f"reports/figures/fig2_bitflip_heatmap_{heatmap_af(config)}_original.png",
        "reports/figures/fig3_mean_bitflip_error_original.png",
        "reports/figures/fig4_msb_minus_range_original.png",
        "reports/figures/fig5_mean_bitflip_error_pruned.png",
        "reports/figures/fig6_msb_minus_range_pruned.png",
        "reports/tables/table1_iou_float.csv",
        "reports/tables/table1_iou_float.md",
        "reports/figures/fig1_pruning_ratio_per_layer.png",
        "reports/tables/table2_complexity.csv",
        "reports/tables/table2_complexity.md",
        "reports/tables/table3_iou_int8.csv",
        "reports/tables/table3_iou_int8.md",
        "reports/tables/table4_deployment.csv",
        "reports/tables/table4_deployment.md",
        f"reports/figures/fig7_bitflip_heatmap_{heatmap_af(config)}_quantized.png",
        "reports/figures/fig8_mean_bitflip_error_quantized.png",
        "reports/metrics/iou.json",
        "reports/metrics/fault_error_rates.json",
        "reports/config_used.yaml",
    ]
