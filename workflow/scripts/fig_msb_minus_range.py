from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.fault_figures import fig_msb_from_files
    from hsiseu.reporting.replicates import by_af

    keys = snakemake.params.models
    fig_msb_from_files(
        by_af(keys, snakemake.input.cells),
        by_af(keys, snakemake.input.sets),
        snakemake.output[0],
        stage=snakemake.wildcards.stage,
    )
