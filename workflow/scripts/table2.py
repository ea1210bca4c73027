from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.replicates import by_af
    from hsiseu.reporting.tables import write_table2

    keys = snakemake.params.models
    write_table2(
        by_af(keys, list(zip(snakemake.input.original_metrics, snakemake.input.original_models))),
        by_af(keys, list(zip(snakemake.input.pruned_metrics, snakemake.input.pruned_models))),
        snakemake.output.csv,
        snakemake.output.md,
    )
