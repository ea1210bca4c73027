from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import fault_list

    fault_list(
        snakemake.params.config,
        snakemake.wildcards.stage,
        snakemake.input.model,
        out_faults=snakemake.output.faults,
        out_sets=snakemake.output.sets,
        threads=snakemake.threads,
    )
