"""The findings: the paper's claims answered over replicated models, with intervals that cover
both the spread between trained models and each model's fault sampling.

No TensorFlow, no LiteRT: result files in, a table out. One concept a module:

- ``replicates``: the t interval over per-replicate values and the verdict (holds, reversed,
  inconclusive);
- ``claims``: the registry of the paper's claims (text, what the paper states, statistic,
  per-replicate value, direction and threshold);
- ``models``: one model's inputs (cells, parameter sets, metrics) from files or frames;
- ``table``: the findings table, its CSV and Markdown, and the entry the workflow calls.

The statistics themselves (``set_mean``, ``network_rate``, ...) live in
:mod:`hsiseu.faults.stats.aggregate`; docs/statistics.md explains them and the interval.
"""

from hsiseu.findings.claims import Claim, claims
from hsiseu.findings.replicates import ReplicateInterval, replicate_interval, verdict
from hsiseu.findings.table import findings_from_files, findings_settings, findings_table, write_findings

__all__ = ["Claim", "ReplicateInterval", "claims", "findings_from_files", "findings_settings", "findings_table",
           "replicate_interval", "verdict", "write_findings"]
