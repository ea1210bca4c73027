"""Statistical single-bit-flip fault injection into model parameters (paper Section III).

One fault model, several number formats. The core is format-agnostic (no TensorFlow or LiteRT
import): ``bitflip`` (flips through unsigned views), ``paramsets`` (sets as data), ``sampling``
(Leveugle sample sizes), ``faultlist`` (the seeded fault list and its shards), ``outcomes`` (the
arg-max/NaN rule and error measures), ``backend`` (the protocol a number format implements),
``shared`` (what every backend's engines share), ``registry`` (which backend serves a stage,
imported lazily), ``campaign`` (shards with checkpoints, merge, per-cell summary) and ``tasks``
(ties them to the config).

One subpackage per number format, each a :class:`~hsiseu.faults.backend.Backend`:

- ``keras/``: the float Keras backend (graph walker, the naive reference loop, the fast compiled
  engine, backend, benchmark);
- ``litert/``: the int8 LiteRT backend (stage ``quantized``; see :mod:`hsiseu.faults.litert`).
"""
