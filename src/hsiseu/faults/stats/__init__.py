"""The statistics of a sampled campaign: how many faults a unit needs and what its mean means.

No TensorFlow, no LiteRT: numbers in, numbers out. One concept a module:

- ``bounds``: an anytime-valid confidence sequence for the mean of [0, 1] outcomes, with or
  without replacement (hedged betting, Waudby-Smith & Ramdas);
- ``intervals``: the reported interval, Leveugle's normal interval with a variance bound
  (p = 1/2 for ``leveugle``, the bound earned from the confidence sequence for ``adaptive``);
- ``adaptive``: the stopping rule of one unit as a small resumable state (:class:`UnitState`);
- ``candidates``: population units (``cell``, ``set``, ``network``) and their candidate faults
  in a seeded order that every run is a prefix of;
- ``projection``: expected faults, ``leveugle`` vs ``adaptive``, from a cells table.
"""

from hsiseu.faults.stats.adaptive import METHODS, UnitState
from hsiseu.faults.stats.bounds import confidence_sequence
from hsiseu.faults.stats.candidates import POPULATIONS, candidate_faults, pending_faults, unit_state, units
from hsiseu.faults.stats.intervals import Interval, normal_interval
from hsiseu.faults.stats.projection import expected_faults

__all__ = ["METHODS", "POPULATIONS", "UnitState", "confidence_sequence", "candidate_faults", "units",
           "unit_state", "pending_faults", "Interval", "normal_interval", "expected_faults"]
