from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.reporting.pruning_figures import plot_layer_ratios

    plot_layer_ratios(dict(zip(snakemake.params.afs, snakemake.input.layer_ratios)), snakemake.output[0])
