from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.io import write_text
    from hsiseu.settings import dump_config

    write_text(snakemake.output[0], dump_config(snakemake.params.config))
