from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.deployment import measure_throughput

    measure_throughput(
        snakemake.params.config,
        snakemake.wildcards.af,
        keras_path=snakemake.input.keras,
        tflite_path=snakemake.input.tflite,
        out=snakemake.output[0],
        threads=snakemake.threads,
    )
