rule quantize:
    input:
        data=data_ready(),
        model="results/{af}/pruned/model.keras",
    output:
        model="results/{af}/quantized/model.tflite",
        metrics="results/{af}/quantized/metrics.json",
    params:
        config=reads("quantize"),
    log:
        "logs/quantize/{af}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/quantize.py"


rule throughput:
    input:
        data=data_ready(),
        keras="results/{af}/pruned/model.keras",
        tflite="results/{af}/quantized/model.tflite",
    output:
        "results/{af}/quantized/throughput.json",
    params:
        config=reads("throughput"),
    log:
        "logs/throughput/{af}.log",
    # Timing wants the machine to itself: the job takes every core Snakemake was given.
    threads: workflow.cores
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/throughput.py"


rule table3:
    input:
        metrics=per_af("results/{af}/quantized/metrics.json"),
    output:
        csv=report(
            "reports/tables/table3_iou_int8.csv",
            caption="../report/table3.rst",
            category="Tables",
        ),
        md="reports/tables/table3_iou_int8.md",
    params:
        afs=AFS,
    log:
        "logs/report/table3.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table3.py"


rule table4:
    input:
        throughput=per_af("results/{af}/quantized/throughput.json"),
    output:
        csv=report(
            "reports/tables/table4_deployment.csv",
            caption="../report/table4.rst",
            category="Tables",
        ),
        md="reports/tables/table4_deployment.md",
    params:
        afs=AFS,
        deployment=config["deployment"],
    log:
        "logs/report/table4.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/table4.py"
