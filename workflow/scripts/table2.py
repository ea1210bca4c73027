from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.tables import write_table2

    afs = snakemake.params.afs
    write_table2(
        dict(zip(afs, zip(snakemake.input.original_metrics, snakemake.input.original_models))),
        dict(zip(afs, zip(snakemake.input.pruned_metrics, snakemake.input.pruned_models))),
        snakemake.output.csv,
        snakemake.output.md,
    )
