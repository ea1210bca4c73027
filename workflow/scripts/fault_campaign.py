from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import whole_campaign

    # as fault_shard.py: the engine settings come from the config, not params
    config = dict(snakemake.params.config)
    config["faults"] = {**snakemake.config["faults"], **config["faults"]}
    whole_campaign(
        config,
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
