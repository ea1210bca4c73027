rule quantize:
    input:
        data=data_ready(),
        model="results/{af}/rep{rep}/pruned/model.keras",
    output:
        model="results/{af}/rep{rep}/quantized/model.tflite",
        metrics="results/{af}/rep{rep}/quantized/metrics.json",
    params:
        config=reads("quantize"),
    log:
        "logs/quantize/{af}/rep{rep}.log",
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
        keras="results/{af}/rep{rep}/pruned/model.keras",
        tflite="results/{af}/rep{rep}/quantized/model.tflite",
    output:
        "results/{af}/rep{rep}/quantized/throughput.json",
    params:
        config=reads("throughput"),
    log:
        "logs/throughput/{af}/rep{rep}.log",
    # Timing wants the machine to itself: the job takes every core Snakemake was given.
    threads: workflow.cores
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/throughput.py"
