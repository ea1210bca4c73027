rule prune_sensitivity:
    input:
        model=prune_input_model,
    output:
        sensitivity="results/{af}/rep{rep}/pruned/iter{k}/sensitivity.csv",
    params:
        config=reads("prune_sensitivity"),
    wildcard_constraints:
        k=r"\d+",
    log:
        "logs/prune/{af}/rep{rep}/iter{k}_sensitivity.log",
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
        sensitivity="results/{af}/rep{rep}/pruned/iter{k}/sensitivity.csv",
        reference="results/{af}/rep{rep}/original/metrics.json",
    output:
        model="results/{af}/rep{rep}/pruned/iter{k}/model.keras",
        ratios="results/{af}/rep{rep}/pruned/iter{k}/ratios.csv",
        history="results/{af}/rep{rep}/pruned/iter{k}/history.csv",
        summary="results/{af}/rep{rep}/pruned/iter{k}/summary.json",
    params:
        config=reads("prune_iteration"),
    wildcard_constraints:
        k=r"\d+",
    log:
        "logs/prune/{af}/rep{rep}/iter{k}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/prune_iteration.py"


rule prune:
    input:
        original="results/{af}/rep{rep}/original/model.keras",
        reference="results/{af}/rep{rep}/original/metrics.json",
        models=prune_iteration_files("model.keras"),
        summaries=prune_iteration_files("summary.json"),
    output:
        model="results/{af}/rep{rep}/pruned/model.keras",
        metrics="results/{af}/rep{rep}/pruned/metrics.json",
        layer_ratios="results/{af}/rep{rep}/pruned/layer_ratios.csv",
    params:
        config=reads("prune"),
    log:
        "logs/prune/{af}/rep{rep}/assemble.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/prune_assemble.py"
