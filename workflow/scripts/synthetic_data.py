from hsiseu.runlog import log_to
from hsiseu.synthetic import generate_dataset

with log_to(snakemake.log[0]):
    generate_dataset(snakemake.params.root, **snakemake.params.synthetic)
