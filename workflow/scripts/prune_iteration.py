from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.pruning.iterative import prune_iteration

    prune_iteration(
        snakemake.params.config,
        snakemake.wildcards.af,
        int(snakemake.wildcards.k),
        model_path=snakemake.input.model,
        sensitivity_path=snakemake.input.sensitivity,
        reference_metrics_path=snakemake.input.reference,
        out_model=snakemake.output.model,
        out_ratios=snakemake.output.ratios,
        out_history=snakemake.output.history,
        out_summary=snakemake.output.summary,
        threads=snakemake.threads,
        verbose=snakemake.config["training"]["verbose"],
    )
