from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import shard, with_engine_settings

    shard(
        with_engine_settings(snakemake.params.config, snakemake.config),
        snakemake.wildcards.stage,
        snakemake.input.model,
        faults_path=snakemake.input.faults,
        shard=int(snakemake.wildcards.shard),
        n_shards=int(snakemake.wildcards.n),
        out=snakemake.output[0],
        threads=snakemake.threads,
    )
