# Figures of the int8 campaign. The campaign itself (fault list -> shards -> merge under
# results/{af}/quantized/faults/) runs through the rules of faults.smk, with the int8 LiteRT
# backend chosen by the stage.


rule fig7_int8_bitflip_heatmap:
    input:
        cells="results/{af}/quantized/faults/cells.csv",
    output:
        report(
            "reports/figures/fig7_bitflip_heatmap_{af}_quantized.png",
            caption="../report/fig7.rst",
            category="Figures",
        ),
    params:
        kernels=config["quantization"]["kernels"],
        margin=config["faults"]["sampling"]["error_margin"],
    log:
        "logs/report/fig7_{af}.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig7.py"


rule fig8_int8_mean_bitflip_error:
    input:
        cells=per_af("results/{af}/quantized/faults/cells.csv"),
    output:
        report(
            "reports/figures/fig8_mean_bitflip_error_quantized.png",
            caption="../report/fig8.rst",
            category="Figures",
        ),
    params:
        afs=AFS,
        kernels=config["quantization"]["kernels"],
    log:
        "logs/report/fig8.log",
    conda:
        "../../envs/hsiseu.yaml"
    script:
        "../scripts/fig8.py"
