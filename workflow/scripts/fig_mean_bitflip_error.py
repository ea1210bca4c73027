from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.fault_figures import fig_means_from_files

    fig_means_from_files(
        dict(zip(snakemake.params.afs, snakemake.input.cells)),
        snakemake.output[0],
        stage=snakemake.wildcards.stage,
        kernels=snakemake.params.kernels,
    )
