"""The float Keras backend (stages ``original`` and ``pruned``), on any Keras 3 backend.

``graph`` (the functional graph, channel rules, refusals by name), ``compiled`` (the per-backend
compile adapter and host transfers), ``reference`` (the naive loop: the definition),
``fast`` (compiled delayed start, one channel, batching, dropping, memo), ``backend`` (the
:class:`~hsiseu.faults.backend.Backend`), ``benchmark`` (``hsiseu faults-benchmark``).
"""
