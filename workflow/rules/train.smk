rule train:
    input:
        data="results/data/summary.json",
    output:
        model="results/{af}/original/model.keras",
        history="results/{af}/original/history.csv",
        metrics="results/{af}/original/metrics.json",
    params:
        config=reads("train"),
    log:
        "logs/train/{af}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/train.py"
