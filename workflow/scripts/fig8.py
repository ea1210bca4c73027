from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.int8_fault_figures import fig8_from_files

    fig8_from_files(dict(zip(snakemake.params.afs, snakemake.input.cells)), snakemake.output[0],
                    kernels=snakemake.params.kernels)
