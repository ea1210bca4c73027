from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.training import train_original

    train_original(
        snakemake.params.config,
        snakemake.wildcards.af,
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        out_metrics=snakemake.output.metrics,
        threads=snakemake.threads,
        verbose=snakemake.config["training"]["verbose"],
    )
