from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import merge

    merge(
        snakemake.params.config,
        list(snakemake.input.shards),
        faults_path=snakemake.input.faults,
        sets_path=snakemake.input.sets,
        out_outcomes=snakemake.output.outcomes,
        out_cells=snakemake.output.cells,
        out_faults_run=snakemake.output.faults_run,
    )
