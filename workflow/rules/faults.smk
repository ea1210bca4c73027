rule fault_list:
    input:
        model=fault_model,
        data=data_ready(),
    output:
        faults="results/{af}/rep{rep}/{stage}/faults/fault_list.csv",
        sets="results/{af}/rep{rep}/{stage}/faults/parameter_sets.csv",
    params:
        config=reads("fault_list"),
    log:
        "logs/faults/{af}/rep{rep}/{stage}_list.log",
    threads: 1
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fault_list.py"


rule fault_shard:
    input:
        model=fault_model,
        faults="results/{af}/rep{rep}/{stage}/faults/fault_list.csv",
        data=data_ready(),
    output:
        "results/{af}/rep{rep}/{stage}/faults/shards/{shard}-of-{n}.csv",
    params:
        config=reads("fault_shard"),
    log:
        "logs/faults/{af}/rep{rep}/{stage}_shard{shard}-of-{n}.log",
    wildcard_constraints:
        shard=r"\d+",
        n=r"\d+",
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fault_shard.py"


rule fault_merge:
    input:
        shards=fault_shards,
        faults="results/{af}/rep{rep}/{stage}/faults/fault_list.csv",
        sets="results/{af}/rep{rep}/{stage}/faults/parameter_sets.csv",
    output:
        outcomes="results/{af}/rep{rep}/{stage}/faults/outcomes.csv",
        cells="results/{af}/rep{rep}/{stage}/faults/cells.csv",
        faults_run="results/{af}/rep{rep}/{stage}/faults/faults_run.csv",
    params:
        config=reads("fault_merge"),
    log:
        "logs/faults/{af}/rep{rep}/{stage}_merge.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fault_merge.py"


# faults.shards: 1 (the default) runs each campaign as this one job instead of the three above:
# their separate start-ups (Python, TensorFlow, the model) cost more than a small model's list
# and merge. Same outputs, same bytes; ruleorder picks it only then.
rule fault_campaign:
    input:
        model=fault_model,
        data=data_ready(),
    output:
        faults="results/{af}/rep{rep}/{stage}/faults/fault_list.csv",
        sets="results/{af}/rep{rep}/{stage}/faults/parameter_sets.csv",
        shard="results/{af}/rep{rep}/{stage}/faults/shards/0-of-1.csv",
        outcomes="results/{af}/rep{rep}/{stage}/faults/outcomes.csv",
        cells="results/{af}/rep{rep}/{stage}/faults/cells.csv",
        faults_run="results/{af}/rep{rep}/{stage}/faults/faults_run.csv",
    params:
        config=reads("fault_campaign"),
    log:
        "logs/faults/{af}/rep{rep}/{stage}_campaign.log",
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fault_campaign.py"


if config["faults"]["shards"] == 1:

    ruleorder: fault_campaign > fault_list
    ruleorder: fault_campaign > fault_shard
    ruleorder: fault_campaign > fault_merge

else:

    ruleorder: fault_list > fault_campaign
    ruleorder: fault_shard > fault_campaign
    ruleorder: fault_merge > fault_campaign
