rule prune_sensitivity:
    input:
        model=prune_input_model,
    output:
        sensitivity="results/{af}/pruned/iter{k}/sensitivity.csv",
    params:
        config=reads("prune_sensitivity"),
    wildcard_constraints:
        k=r"\d+",
    log:
        "logs/prune/{af}/iter{k}_sensitivity.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/prune_sensitivity.py"


rule prune_iteration:
    input:
        model=prune_input_model,
        sensitivity="results/{af}/pruned/iter{k}/sensitivity.csv",
        reference="results/{af}/original/metrics.json",
    output:
        model="results/{af}/pruned/iter{k}/model.keras",
        ratios="results/{af}/pruned/iter{k}/ratios.csv",
        history="results/{af}/pruned/iter{k}/history.csv",
        summary="results/{af}/pruned/iter{k}/summary.json",
    params:
        config=reads("prune_iteration"),
    wildcard_constraints:
        k=r"\d+",
    log:
        "logs/prune/{af}/iter{k}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/prune_iteration.py"


rule prune:
    input:
        original="results/{af}/original/model.keras",
        reference="results/{af}/original/metrics.json",
        models=prune_iteration_files("model.keras"),
        summaries=prune_iteration_files("summary.json"),
    output:
        model="results/{af}/pruned/model.keras",
        metrics="results/{af}/pruned/metrics.json",
        layer_ratios="results/{af}/pruned/layer_ratios.csv",
    params:
        config=reads("prune"),
    log:
        "logs/prune/{af}/assemble.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/prune_assemble.py"
