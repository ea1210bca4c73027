"""hsiseu: soft-error robustness of a hyperspectral segmentation U-Net.

The package holds every piece of logic; the Snakemake rules in ``workflow/`` only call it.
"""

__version__ = "0.1.0"
