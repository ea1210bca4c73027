"""Statistical single-bit-flip fault injection into model parameters (paper Section III).

One fault model, several number formats. Format-agnostic modules (no TensorFlow import):
``bitflip`` (flips through unsigned views), ``paramsets`` (sets as data), ``sampling``
(Leveugle sample sizes), ``faultlist`` (the seeded fault list and its shards), ``outcomes``
(the arg-max/NaN rule and error measures), ``backend`` (the protocol a number format
implements), ``campaign`` (shards with checkpoints, merge, per-cell summary).

Float Keras backend: ``keras_executor`` (the one layer-by-layer execution path),
``engine_reference`` (flip, full run, restore), ``engine_fast`` (cached activations, one
channel, masking, batching, memo; identical outcomes), ``keras_backend``. ``tasks`` ties them to
the config; ``benchmark`` times the engines (``hsiseu faults-benchmark``).

int8 LiteRT backend (stage ``quantized``): ``tflite_sets`` (weights and biases found in the
flatbuffer), ``tflite_submodel`` (a slice of the graph as a model), ``tflite_exec``,
``tflite_reference`` (flipped bytes, new interpreter), ``tflite_fast`` (in-place flips, delayed
start, dropping, memo; identical outcomes), ``tflite_backend``; ``tflite_benchmark`` times them
(``hsiseu faults-int8-benchmark``).
"""
