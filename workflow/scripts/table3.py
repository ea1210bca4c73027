from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.replicates import by_af
    from hsiseu.reporting.tables import write_table3

    write_table3(by_af(snakemake.params.models, snakemake.input.metrics), snakemake.output.csv, snakemake.output.md)
