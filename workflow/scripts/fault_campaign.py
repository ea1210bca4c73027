from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import whole_campaign, with_engine_settings

    whole_campaign(
        with_engine_settings(snakemake.params.config, snakemake.config),
        snakemake.wildcards.stage,
        snakemake.input.model,
        out_faults=snakemake.output.faults,
        out_sets=snakemake.output.sets,
        out_shard=snakemake.output.shard,
        out_outcomes=snakemake.output.outcomes,
        out_cells=snakemake.output.cells,
        out_faults_run=snakemake.output.faults_run,
        threads=snakemake.threads,
    )
