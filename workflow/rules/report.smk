# Every table and figure of the paper, the findings and the run's summaries: one file, so that
# editing a figure rule touches no stage that computes (no other dvc.yaml stage depends on it).


rule findings:
    input:
        cells=per_model_stage_all("results/{af}/rep{rep}/{stage}/faults/cells.csv"),
        sets=per_model_stage_all("results/{af}/rep{rep}/{stage}/faults/parameter_sets.csv"),
        metrics=per_model_stage_all("results/{af}/rep{rep}/{stage}/metrics.json"),
    output:
        csv=report(
            "reports/tables/findings.csv",
            caption="../report/findings.rst",
            category="1. Findings",
        ),
        md="reports/tables/findings.md",
    params:
        models=model_stage_keys(),
        settings={**findings_settings(config), "heatmap_af": heatmap_af(config)},
    log:
        "logs/report/findings.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/findings.py"

rule table1:
    input:
        metrics=per_model("results/{af}/rep{rep}/original/metrics.json"),
    output:
        csv=report(
            "reports/tables/table1_iou_float.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md="reports/tables/table1_iou_float.md",
    params:
        models=model_keys(),
    log:
        "logs/report/table1.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        original_metrics=per_model("results/{af}/rep{rep}/original/metrics.json"),
        original_models=per_model("results/{af}/rep{rep}/original/model.keras"),
        pruned_metrics=per_model("results/{af}/rep{rep}/pruned/metrics.json"),
        pruned_models=per_model("results/{af}/rep{rep}/pruned/model.keras"),
    output:
        csv=report(
            "reports/tables/table2_complexity.csv",
            caption="../report/table2.rst",
            category="Tables",
        ),
        md="reports/tables/table2_complexity.md",
    params:
        models=model_keys(),
    log:
        "logs/report/table2.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table2.py"


rule table3:
    input:
        metrics=per_model("results/{af}/rep{rep}/quantized/metrics.json"),
    output:
        csv=report(
            "reports/tables/table3_iou_int8.csv",
            caption="../report/table3.rst",
            category="Tables",
        ),
        md="reports/tables/table3_iou_int8.md",
    params:
        models=model_keys(),
    log:
        "logs/report/table3.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table3.py"


rule table4:
    input:
        throughput=per_model("results/{af}/rep{rep}/quantized/throughput.json"),
    output:
        csv=report(
            "reports/tables/table4_deployment.csv",
            caption="../report/table4.rst",
            category="Tables",
        ),
        md="reports/tables/table4_deployment.md",
    params:
        models=model_keys(),
        deployment=config["deployment"],
    log:
        "logs/report/table4.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table4.py"


rule fig1:
    input:
        layer_ratios=per_model("results/{af}/rep{rep}/pruned/layer_ratios.csv"),
        metrics=per_model("results/{af}/rep{rep}/pruned/metrics.json"),
    output:
        report(
            "reports/figures/fig1_pruning_ratio_per_layer.png",
            caption="../report/fig1.rst",
            category="Figures",
        ),
    params:
        models=model_keys(),
    log:
        "logs/report/fig1.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig1.py"


rule fig2_bitflip_heatmap:
    input:
        cells=per_rep("results/{af}/rep{rep}/{stage}/faults/cells.csv"),
    output:
        report(
            "reports/figures/fig2_bitflip_heatmap_{af}_{stage}.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
    params:
        bits=config["faults"]["heatmap_bits"],
        margin=lambda wildcards: stage_margin(wildcards.stage),
    log:
        "logs/report/fig2_{af}_{stage}.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig2.py"


rule fig_mean_bitflip_error:
    input:
        cells=per_model_stage("results/{af}/rep{rep}/{stage}/faults/cells.csv"),
    output:
        report(
            "reports/figures/fig{num}_mean_bitflip_error_{stage}.png",
            caption="../report/fig3_fig5_fig8.rst",
            category="Figures",
        ),
    params:
        models=model_keys(),
        # the int8 models' kernels name them in Fig. 8's title; None for the float stages
        kernels=lambda wildcards: config["quantization"]["kernels"] if wildcards.stage == "quantized" else None,
        confidence=findings_settings(config)["confidence"],
        margin=lambda wildcards: stage_margin(wildcards.stage),  # quoted by the caption
    log:
        "logs/report/fig{num}_{stage}.log",
    wildcard_constraints:
        num="3|5|8",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig_mean_bitflip_error.py"


rule fig_msb_minus_range:
    input:
        cells=per_model_stage("results/{af}/rep{rep}/{stage}/faults/cells.csv"),
        sets=per_model_stage("results/{af}/rep{rep}/{stage}/faults/parameter_sets.csv"),
    output:
        report(
            "reports/figures/fig{num}_msb_minus_range_{stage}.png",
            caption="../report/fig4_fig6.rst",
            category="Figures",
        ),
    params:
        models=model_keys(),
    log:
        "logs/report/fig{num}_{stage}.log",
    wildcard_constraints:
        num="4|6",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig_msb_minus_range.py"


rule fig7_int8_bitflip_heatmap:
    input:
        cells=per_rep("results/{af}/rep{rep}/quantized/faults/cells.csv"),
    output:
        report(
            "reports/figures/fig7_bitflip_heatmap_{af}_quantized.png",
            caption="../report/fig7.rst",
            category="Figures",
        ),
    params:
        kernels=config["quantization"]["kernels"],
        margin=stage_margin("quantized"),
    log:
        "logs/report/fig7_{af}.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig7.py"


rule metrics_summary:
    input:
        metrics=per_model_stage_all("results/{af}/rep{rep}/{stage}/metrics.json"),
        cells=per_model_stage_all("results/{af}/rep{rep}/{stage}/faults/cells.csv"),
    output:
        iou="reports/metrics/iou.json",
        faults="reports/metrics/fault_error_rates.json",
    params:
        models=model_stage_keys(),
    log:
        "logs/report/metrics_summary.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/metrics_summary.py"


rule config_used:
    output:
        report("reports/config_used.yaml", caption="../report/config.rst", category="Configuration"),
    params:
        config=config,
    log:
        "logs/report/config_used.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/config_used.py"
