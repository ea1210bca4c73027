# Helpers for the workflow: input functions and target lists (no rules here).
from snakemake.exceptions import WorkflowError

from hsiseu.settings import check_config, data_kwargs, heatmap_af, per_af as af_value

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
    cfg = {key: config[key] for key in ("seed", "threads", "data", "model")}
    cfg["training"] = dict(config["training"], epochs={wildcards.af: af_value(config, "training.epochs", wildcards.af)})
    return cfg


def dataset_root(path):
    """The dataset directory behind the file `data_ready()` returned."""
    return path if os.path.isdir(path) else os.path.dirname(path)


def per_af(pattern):
    return expand(pattern, af=AFS)


def prune_iterations(af):
    """Number of pruning iterations of one AF: one per entry of pruning.ratios.<af>."""
    return len(af_value(config, "pruning.ratios", af))


def prune_input_model(wildcards):
    """Iteration 1 prunes the trained model, iteration k the slim model of iteration k - 1."""
    k = int(wildcards.k)
    if not 1 <= k <= prune_iterations(wildcards.af):
        raise WorkflowError(f"no pruning iteration {k} for {wildcards.af}: see pruning.ratios")
    if k == 1:
        return f"results/{wildcards.af}/original/model.keras"
    return f"results/{wildcards.af}/pruned/iter{k - 1}/model.keras"


def prune_iteration_files(name):
    """Input function: the file `name` of every pruning iteration of this AF."""
    return lambda wildcards: [
        f"results/{wildcards.af}/pruned/iter{k}/{name}" for k in range(1, prune_iterations(wildcards.af) + 1)
    ]


def _eval_config():
    # What scoring a model on a split reads (the dataset and its batching).
    return {
        "seed": config["seed"],
        "threads": config["threads"],
        "data": config["data"],
        "model": config["model"],
        "training": {"batch_size": config["training"]["batch_size"]},
    }


def sensitivity_config(wildcards):
    """Keys the sensitivity analysis reads: editing the fine-tuning or the ratios keeps the cache."""
    cfg = _eval_config()
    cfg["pruning"] = {key: config["pruning"][key] for key in ("sparsities", "metric")}
    return cfg


def prune_iteration_config(wildcards):
    """Keys iteration k reads: only this AF's settings and only the ratios up to iteration k."""
    af, k = wildcards.af, int(wildcards.k)
    pruning = config["pruning"]
    cfg = _eval_config()
    cfg["training"] = {key: value for key, value in config["training"].items() if key != "epochs"}
    cfg["pruning"] = {
        "ratios": {af: af_value(config, "pruning.ratios", af)[:k]},
        "flops_tolerance": pruning["flops_tolerance"],
        "finetune": dict(pruning["finetune"], epochs={af: af_value(config, "pruning.finetune.epochs", af)}),
        "acceptance": pruning["acceptance"],
    }
    return cfg


def assemble_config(wildcards):
    """Keys the assembled pruned model's metrics read."""
    cfg = _eval_config()
    cfg["pruning"] = {
        "metric": config["pruning"]["metric"],
        "ratios": {wildcards.af: af_value(config, "pruning.ratios", wildcards.af)},
        "acceptance": config["pruning"]["acceptance"],
    }
    return cfg


def quantization_config(wildcards):
    """Keys quantization reads: the throughput settings are left out, so that changing them
    re-times the models without re-quantizing them."""
    cfg = _eval_config()
    cfg["quantization"] = {
        key: config["quantization"][key] for key in ("representative_samples", "kernels", "recovery")
    }
    return cfg


def throughput_config(wildcards):
    """Keys the throughput measurement reads."""
    cfg = _eval_config()
    cfg["quantization"] = {key: config["quantization"][key] for key in ("kernels", "fps_threads", "fps_repeats")}
    return cfg


def fault_model(wildcards):
    """The model file a stage's fault campaign injects into."""
    name = "model.tflite" if wildcards.stage == "quantized" else "model.keras"
    return f"results/{wildcards.af}/{wildcards.stage}/{name}"


def fault_list_config(wildcards):
    """Keys the fault list depends on (not the engine, shard or checkpoint settings)."""
    keys = ("seed", "sampling", "bits", "include_bn_moving_stats", "include_int8_constants")
    return {"seed": config["seed"], "data": config["data"],
            "faults": {key: config["faults"][key] for key in keys}}


def fault_run_config(wildcards):
    """Keys a shard's outcomes depend on (the test images, and how many go into one model call:
    the reference's batch); engine and memory budget are read from the config in the script
    instead, since they cannot change an outcome."""
    cfg = fault_list_config(wildcards)
    for key in ("test_images", "image_chunk"):
        cfg["faults"][key] = config["faults"][key]
    if wildcards.stage == "quantized":  # the kernels define the int8 model's outcomes
        cfg["quantization"] = {"kernels": config["quantization"]["kernels"]}
    return cfg


def fault_shards(wildcards):
    n = config["faults"]["shards"]
    return [f"results/{wildcards.af}/{wildcards.stage}/faults/shards/{i}-of-{n}.csv" for i in range(n)]


def per_af_stage(pattern):
    """Input function: `pattern` for every AF at the stage of the requested output."""
    return lambda wildcards: expand(pattern, af=AFS, stage=wildcards.stage)


STAGES = ["original", "pruned", "quantized"]


def per_af_stage_keys():
    """(af, stage) of every model, in the order `per_af_stage_all` expands."""
    return [[af, stage] for af in AFS for stage in STAGES]


def per_af_stage_all(pattern):
    return [pattern.format(af=af, stage=stage) for af, stage in per_af_stage_keys()]


def all_targets():
    return [
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
