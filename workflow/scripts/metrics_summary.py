from hsiseu.runlog import log_to

with log_to(snakemake.log[0]):
    from hsiseu.io import write_json
    from hsiseu.reporting.summary import fault_summary, iou_summary

    keys = [tuple(k) for k in snakemake.params.models]
    write_json(snakemake.output.iou, iou_summary(dict(zip(keys, snakemake.input.metrics))))
    write_json(snakemake.output.faults, fault_summary(dict(zip(keys, snakemake.input.cells))))
