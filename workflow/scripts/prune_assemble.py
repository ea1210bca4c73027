from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.pruning.iterative import assemble_pruned

    assemble_pruned(
        snakemake.params.config,
        snakemake.wildcards.af,
        original_model_path=snakemake.input.original,
        reference_metrics_path=snakemake.input.reference,
        iteration_models=list(snakemake.input.models),
        iteration_summaries=list(snakemake.input.summaries),
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        out_layer_ratios=snakemake.output.layer_ratios,
        threads=snakemake.threads,
    )
