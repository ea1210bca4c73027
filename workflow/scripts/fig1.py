from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.pruning_figures import plot_layer_ratios
    from hsiseu.reporting.replicates import by_af

    keys = snakemake.params.models
    plot_layer_ratios(by_af(keys, snakemake.input.layer_ratios), by_af(keys, snakemake.input.metrics), snakemake.output[0])
