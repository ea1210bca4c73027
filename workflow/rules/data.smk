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
