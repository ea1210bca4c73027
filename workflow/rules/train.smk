rule train:
    input:
        data="results/data/summary.json",
    output:
        model="results/{af}/rep{rep}/original/model.keras",
        history="results/{af}/rep{rep}/original/history.csv",
        metrics="results/{af}/rep{rep}/original/metrics.json",
    params:
        config=reads("train"),
    log:
        "logs/train/{af}/rep{rep}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/train.py"
