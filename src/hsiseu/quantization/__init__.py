"""Full-integer (int8) post-training quantization of the pruned models and its evaluation.

- :mod:`~hsiseu.quantization.convert`: the TFLite converter recipe and the representative data;
- :mod:`~hsiseu.quantization.graph`: what is inside a ``.tflite`` (ops, tensor types, biases) and
  the integer-only check;
- :mod:`~hsiseu.quantization.interpreter`: the one way an int8 model is run (also used by the
  int8 fault-injection backend);
- :mod:`~hsiseu.quantization.recovery`: empirical bias correction for models that lose accuracy;
- :mod:`~hsiseu.quantization.pipeline`: the workflow step (quantize, check, recover, evaluate).
"""
