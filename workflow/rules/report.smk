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
