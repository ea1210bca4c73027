from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.tables import write_table3

    write_table3(dict(zip(snakemake.params.afs, snakemake.input.metrics)), snakemake.output.csv, snakemake.output.md)
