from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.findings.table import findings_from_files

    findings_from_files(
        snakemake.params.models,
        snakemake.input.cells,
        snakemake.input.sets,
        snakemake.input.metrics,
        csv=snakemake.output.csv,
        md=snakemake.output.md,
        **snakemake.params.settings,
    )
