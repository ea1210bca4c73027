from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.faults.tasks import shard

    # Engine settings come from the config, not params: they cannot change an outcome (the
    # engines are proven equal), so editing them must not rerun finished shards.
    config = dict(snakemake.params.config)
    config["faults"] = {**snakemake.config["faults"], **config["faults"]}
    shard(
        config,
        snakemake.wildcards.stage,
        snakemake.input.model,
        faults_path=snakemake.input.faults,
        shard=int(snakemake.wildcards.shard),
        n_shards=int(snakemake.wildcards.n),
        out=snakemake.output[0],
        threads=snakemake.threads,
    )
