"""The int8 LiteRT backend (stage ``quantized``): faults in the stored integers of a ``.tflite``
model, kept apart from the format-agnostic core so that only this package imports LiteRT.

- ``sets``: the weights and biases (and, on request, other constants) found in the flatbuffer.
- ``execution``: quantized test images, full runs, slices as live interpreters, in-place flips.
- ``reference``: flipped bytes, new interpreter per fault (the naive loop); the definition of an
  outcome, for the kernels the config names (``quantization.kernels``).
- ``fast``: delayed start, only the faulty operator rebuilt, fault dropping, memo; the
  reference's outcomes.
- ``backend``: :class:`~hsiseu.faults.litert.backend.TFLiteBackend`, the
  :class:`~hsiseu.faults.backend.Backend` over those engines.
- ``benchmark``: the int8 loops of ``hsiseu faults-benchmark``.
"""
