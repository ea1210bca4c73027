from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.tables import write_table1

    write_table1(dict(zip(snakemake.params.afs, snakemake.input.metrics)), snakemake.output.csv, snakemake.output.md)
