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
