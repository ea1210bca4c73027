from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.fault_figures import fig_means_from_files
    from hsiseu.reporting.replicates import by_af

    fig_means_from_files(
        by_af(snakemake.params.models, snakemake.input.cells),
        snakemake.output[0],
        stage=snakemake.wildcards.stage,
        kernels=snakemake.params.kernels,
        confidence=snakemake.params.confidence,
    )
