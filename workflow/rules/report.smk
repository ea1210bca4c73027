rule table1:
    input:
        metrics=per_af("results/{af}/original/metrics.json"),
    output:
        csv=report(
            "reports/tables/table1_iou_float.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md="reports/tables/table1_iou_float.md",
    params:
        afs=AFS,
    log:
        "logs/report/table1.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table1.py"


rule metrics_summary:
    input:
        metrics=per_af_stage_all("results/{af}/{stage}/metrics.json"),
        cells=per_af_stage_all("results/{af}/{stage}/faults/cells.csv"),
    output:
        iou="reports/metrics/iou.json",
        faults="reports/metrics/fault_error_rates.json",
    params:
        models=per_af_stage_keys(),
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
