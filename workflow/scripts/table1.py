from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.tables import iou_table_from_files, write_table

    table = iou_table_from_files(dict(zip(snakemake.params.afs, snakemake.input.metrics)))
    write_table(
        table,
        snakemake.output.csv,
        snakemake.output.md,
        title="Table I: IoU (%) of the 32-bit floating-point models on the test split",
    )
