from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.data import describe_dataset
    from hsiseu.io import write_json

    write_json(snakemake.output[0], describe_dataset(snakemake.params.root, **snakemake.params.data))
