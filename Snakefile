# hsiseu: activation functions, pruning, int8 quantization and soft-error robustness of a
# hyperspectral segmentation U-Net. Run `snakemake --cores N`; see README.md.
import re

from snakemake.utils import min_version, validate

from hsiseu.settings import replicates
from hsiseu.stage_keys import STAGES

min_version("9.0")


# A --configfile is a whole config (config/paper.yaml, config/paper_shape.yaml, a copy of
# config/config.yaml): it replaces the default rather than merging into it, so that a per-AF
# `default` entry applies to every AF the file does not list. --config key=value still
# overrides single keys of whichever file is in use.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    af="|".join(re.escape(af) for af in config["afs"]),
    rep="|".join(str(rep) for rep in replicates(config)),
    stage="|".join(STAGES),


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/faults.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
