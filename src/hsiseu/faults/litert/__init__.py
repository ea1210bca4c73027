"""The int8 LiteRT backend (stage ``quantized``): faults in the stored integers of a ``.tflite``
model, kept apart from the format-agnostic core so that only this package imports LiteRT.

- ``sets``: the weights and biases (and, on request, other constants) found in the flatbuffer.
- ``submodel``: a slice of the graph as a model of its own (the delayed start).
- ``execution``: quantized test images, full runs, the activation cache, in-place flips.
- ``reference``: flipped bytes, new interpreter per fault; the definition of an outcome.
- ``fast``: in-place flips, delayed start, fault dropping, memo; the reference's outcomes.
- ``backend``: :class:`~hsiseu.faults.litert.backend.TFLiteBackend`, the
  :class:`~hsiseu.faults.backend.Backend` over those engines.
- ``benchmark``: times the engines on one fault sample (``hsiseu faults-int8-benchmark``).
"""
