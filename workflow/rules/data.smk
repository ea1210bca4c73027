rule synthetic_data:
    output:
        summary=f"{config['data']['root']}/summary.json",
        images=directory(f"{config['data']['root']}/images"),
        annotations=directory(f"{config['data']['root']}/annotations"),
    params:
        synthetic=config["data"]["synthetic"],
        root=lambda wildcards, output: os.path.dirname(output.summary),
    log:
        "logs/data/synthetic.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/synthetic_data.py"


rule data_summary:
    input:
        data_ready(),
    output:
        "results/data/summary.json",
    params:
        root=lambda wildcards, input: dataset_root(input[0]),
        data=lambda wildcards: data_kwargs(config),
    log:
        "logs/data/summary.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/data_summary.py"
