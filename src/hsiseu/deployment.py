"""Deployment characterization (Table IV): measured throughput here, an analytic estimate for the
paper's target, and the paper's KV260 measurements as reference.

Measured: frames per second of the int8 model in LiteRT (the project's one resolver, see
``hsiseu.quantization.interpreter``) with 1 thread and with all the job's threads, and of the
float (pruned) Keras model, on this machine's CPU, averaged over ``repeats`` back-to-back
inferences of one test image after a warm-up run, as the paper averaged 100 iterations.

Estimated: the paper ran a single-core B4096 DPU (4096 ops per cycle, 300 MHz on the KV260).
``fps = ops_per_cycle x clock x efficiency / ops_per_frame`` with ops = 2 x MACs of the pruned
model's convolutions (``hsiseu.model.complexity``) and an efficiency (utilisation) from the
config. The DPU has no sigmoid: a model with LOGISTIC ops (or any operator outside
:data:`DPU_OPS`) runs its activations on the ARM CPU, which the estimate does not include (it
is then an upper bound; the paper measured 0.59 FPS).

Power and energy were measured on the KV260 with its INA260 sensor; there is no meter here, so
ours are reported as not measured and the paper's figures are shown for reference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hsiseu.io import read_json, write_json
from hsiseu.activations import af_label

log = logging.getLogger(__name__)

__all__ = [
    "DPU_OPS",
    "PAPER_KV260",
    "deployment_table",
    "dpu_fps",
    "measure_fps",
    "measure_throughput",
]

#: Paper, Table IV (KV260 SoM, B4096 DPU, Vitis AI 3.5). Sigmoid's activations ran on the CPU.
PAPER_KV260: dict[str, dict[str, float]] = {
    "relu": {"fps": 22.68, "power_w": 6.62, "energy_j": 0.29},
    "sigmoid": {"fps": 0.59, "power_w": 5.74, "energy_j": 9.73},
    "hard_sigmoid": {"fps": 19.83, "power_w": 6.90, "energy_j": 0.35},
}
#: Paper, Table II: OPS (G) of the pruned models, to show the DPU utilisation its FPS imply.
PAPER_PRUNED_GOPS: dict[str, float] = {"relu": 8.41, "sigmoid": 16.46, "hard_sigmoid": 10.35}
#: int8 operators the DPU runs (Vitis AI's DPUCZDX8G: convolutions, pooling, concatenation,
#: element-wise add / multiply and the piecewise-linear activations, hard sigmoid lowered to
#: ADD / RELU6 / MUL included; softmax on its optional softmax core). Any other operator, such as
#: LOGISTIC (sigmoid, "not piecewise linear", paper Section IV), TANH, GELU or EXP, runs on the
#: ARM CPU: an allowlist, so that an AF the paper did not study is not assumed to fit the DPU.
DPU_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
     "ADD", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "HARD_SWISH", "SOFTMAX",
     "QUANTIZE", "DEQUANTIZE", "RESHAPE", "PAD"}
)
NOT_MEASURED = "not measured"


def measure_fps(step: Callable[[], Any], *, repeats: int, warmup: int = 1) -> float:
    """Frames per second of ``step`` (one frame per call), timed over ``repeats`` calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return repeats / (time.perf_counter() - t0)


def litert_fps(content: bytes, image: np.ndarray, *, kernels: str, threads: int, repeats: int) -> float:
    from hsiseu.quantization.interpreter import make_interpreter, quantize_input

    interp = make_interpreter(content, kernels=kernels, num_threads=threads)
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], quantize_input(image[None], detail))
    return measure_fps(interp.invoke, repeats=repeats)


def keras_fps(model, image: np.ndarray, *, repeats: int) -> float:
    x = image[None].astype(np.float32)
    # predict_on_batch runs the compiled (tf.function) forward pass, not eager op-by-op calls.
    return measure_fps(lambda: model.predict_on_batch(x), repeats=repeats)


def dpu_fps(ops_per_frame: int, *, ops_per_cycle: int, clock_hz: float, efficiency: float) -> float:
    """Analytic DPU throughput: peak ops per second x efficiency / ops per frame."""
    if ops_per_frame <= 0:
        raise ValueError(f"ops_per_frame must be positive, got {ops_per_frame}")
    if not 0 < efficiency <= 1:
        raise ValueError(f"deployment.efficiency must be in (0, 1], got {efficiency}")
    return ops_per_cycle * clock_hz * efficiency / ops_per_frame


def _thread_counts(requested, job_threads: int) -> list[int]:
    """Config thread counts; 0 means all the job's threads. Duplicates collapse."""
    out = []
    for t in requested:
        n = job_threads if int(t) == 0 else int(t)
        if n not in out:
            out.append(n)
    return out


def measure_throughput(
    config: Mapping[str, Any],
    af: str,
    *,
    keras_path: str | Path,
    tflite_path: str | Path,
    out: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time the int8 and float models of one AF on one test image and write the figures."""
    import keras

    from hsiseu.model import complexity
    from hsiseu.quantization.graph import op_counts
    from hsiseu.quantization.interpreter import all_cores, check_kernels
    from hsiseu.runtime import configure_tensorflow
    from hsiseu.training import split_dataset

    job_threads = int(threads) if threads else all_cores()
    configure_tensorflow(job_threads, int(config["seed"]))
    qcfg = config["quantization"]
    repeats = int(qcfg["fps_repeats"])
    kernels = check_kernels(qcfg["kernels"])
    model = keras.saving.load_model(keras_path)
    content = Path(tflite_path).read_bytes()
    x, _ = next(iter(split_dataset(config, "test")))
    image = np.asarray(x)[0]
    litert = {}
    for n in _thread_counts(qcfg["fps_threads"], job_threads):
        litert[str(n)] = litert_fps(content, image, kernels=kernels, threads=n, repeats=repeats)
        log.info("%s int8 LiteRT (%s kernels), %d thread(s): %.2f FPS", af, kernels, n, litert[str(n)])
    float_fps = keras_fps(model, image, repeats=repeats)
    log.info("%s float Keras, %d thread(s): %.2f FPS", af, job_threads, float_fps)
    ops = op_counts(content)
    result = {
        "af": af,
        "repeats": repeats,
        "kernels": kernels,
        "image_shape": list(image.shape),
        "litert_int8_fps": litert,
        "keras_float_fps": {str(job_threads): float_fps},
        "ops_per_frame": complexity(model).flops,
        "params": int(model.count_params()),
        "dpu_unsupported_ops": sorted(set(ops) - DPU_OPS),
    }
    write_json(out, result)
    return result


def deployment_table(
    throughput_by_af: Mapping[str, Mapping[str, Any]], deployment: Mapping[str, Any]
) -> pd.DataFrame:
    """Table IV: metrics as rows, activation functions as columns (measured, estimated, paper)."""
    columns = {}
    for af, t in throughput_by_af.items():
        col: dict[str, Any] = {"GOPS per frame (pruned)": t["ops_per_frame"] / 1e9}
        for n, fps in sorted(t["litert_int8_fps"].items(), key=lambda kv: int(kv[0])):
            col[f"LiteRT int8 FPS, {n} thread{'s' if int(n) > 1 else ''} (this CPU)"] = fps
        for n, fps in t["keras_float_fps"].items():
            col[f"Keras float32 FPS, {n} thread{'s' if int(n) > 1 else ''} (this CPU)"] = fps
        cpu = bool(t["dpu_unsupported_ops"])
        col["B4096 DPU estimate (FPS)" ] = dpu_fps(
            t["ops_per_frame"],
            ops_per_cycle=int(deployment["dpu_ops_per_cycle"]),
            clock_hz=float(deployment["dpu_clock_mhz"]) * 1e6,
            efficiency=float(deployment["dpu_efficiency"]),
        )
        col["Activation on the CPU (not on the DPU)"] = ", ".join(t["dpu_unsupported_ops"]) if cpu else "no"
        col["Power (W), ours"] = NOT_MEASURED
        col["Energy (J), ours"] = NOT_MEASURED
        paper = PAPER_KV260.get(af)
        col["Paper KV260 throughput (FPS)"] = paper["fps"] if paper else float("nan")
        col["Paper KV260 power (W)"] = paper["power_w"] if paper else float("nan")
        col["Paper KV260 energy (J)"] = paper["energy_j"] if paper else float("nan")
        columns[af_label(af)] = col
    table = pd.DataFrame(columns)
    table.index.name = "Metric"
    return table.map(lambda v: round(v, 2) if isinstance(v, float) else v)


def paper_dpu_efficiency(af: str, *, ops_per_cycle: int, clock_hz: float) -> float:
    """The DPU utilisation implied by the paper's own FPS and OPS (Tables II and IV)."""
    return PAPER_KV260[af]["fps"] * PAPER_PRUNED_GOPS[af] * 1e9 / (ops_per_cycle * clock_hz)


def deployment_table_from_files(paths_by_af: Mapping[str, str | Path], deployment: Mapping[str, Any]) -> pd.DataFrame:
    return deployment_table({af: read_json(p) for af, p in paths_by_af.items()}, deployment)
