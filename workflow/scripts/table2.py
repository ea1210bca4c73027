from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.complexity import complexity_table_from_files
    from hsiseu.reporting.tables import write_table

    afs = snakemake.params.afs
    write_table(
        complexity_table_from_files(
            dict(zip(afs, zip(snakemake.input.original_metrics, snakemake.input.original_models))),
            dict(zip(afs, zip(snakemake.input.pruned_metrics, snakemake.input.pruned_models))),
        ),
        snakemake.output.csv,
        snakemake.output.md,
        title="Table II: model complexity and size before and after channel pruning",
        floatfmt=".4g",
        notes=[
            "OPS = 2 x multiply-accumulates of the convolutions. Memory = params x 8 bytes, as the "
            "paper computes it; File size = the saved float32 .keras file.",
        ],
    )
