from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.fault_figures import fig7_from_files

    fig7_from_files(snakemake.input.cells, snakemake.output[0], af=snakemake.wildcards.af,
                    kernels=snakemake.params.kernels, margin=snakemake.params.margin)
