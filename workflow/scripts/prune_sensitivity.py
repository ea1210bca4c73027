from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.pruning.sensitivity import run_sensitivity

    run_sensitivity(
        snakemake.params.config,
        snakemake.wildcards.af,
        model_path=snakemake.input.model,
        out_csv=snakemake.output.sensitivity,
        threads=snakemake.threads,
    )
