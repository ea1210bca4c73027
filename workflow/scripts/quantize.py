from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.quantization.pipeline import quantize_pruned

    quantize_pruned(
        snakemake.params.config,
        snakemake.wildcards.af,
        model_path=snakemake.input.model,
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        threads=snakemake.threads,
    )
