from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.fault_figures import fig2_from_files

    fig2_from_files(
        snakemake.input.cells,
        snakemake.output[0],
        bits=snakemake.params.bits,
        af=snakemake.wildcards.af,
        stage=snakemake.wildcards.stage,
        margin=snakemake.params.margin,
    )
