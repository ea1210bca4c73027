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

From Python, on one's own model: :func:`hsiseu.faults.run` (:mod:`hsiseu.faults.api`; imported
on first use, so that ``import hsiseu.faults`` stays free of TensorFlow and pandas).
"""

__all__ = ["run", "CampaignResult"]


def __getattr__(name: str):
    if name in __all__:
        from hsiseu.faults import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
