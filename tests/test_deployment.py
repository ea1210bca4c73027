"""Throughput measurement, the DPU estimate and Table IV's reference columns."""

from __future__ import annotations

import pytest

from hsiseu.deployment import (
    NOT_MEASURED,
    PAPER_KV260,
    _thread_counts,
    deployment_table,
    dpu_fps,
    measure_fps,
    paper_dpu_efficiency,
)

DEPLOY = {"dpu_ops_per_cycle": 4096, "dpu_clock_mhz": 300, "dpu_efficiency": 0.16}


def test_measure_fps_times_exactly_the_requested_calls_after_warmup():
    calls = []
    fps = measure_fps(lambda: calls.append(1), repeats=7, warmup=2)
    assert len(calls) == 9 and fps > 0
    with pytest.raises(ValueError, match="repeats"):
        measure_fps(lambda: None, repeats=0)


def test_dpu_estimate_is_peak_times_efficiency_over_ops():
    assert dpu_fps(8.41e9, ops_per_cycle=4096, clock_hz=300e6, efficiency=1.0) == pytest.approx(146.11, abs=0.01)
    assert dpu_fps(1e9, ops_per_cycle=4096, clock_hz=300e6, efficiency=0.5) == pytest.approx(614.4)
    with pytest.raises(ValueError, match="efficiency"):
        dpu_fps(1e9, ops_per_cycle=4096, clock_hz=300e6, efficiency=1.5)


def test_paper_figures_imply_a_dpu_utilisation_near_one_sixth():
    # Table IV FPS x Table II OPS over 4096 x 300 MHz: the config's default efficiency.
    assert paper_dpu_efficiency("relu", ops_per_cycle=4096, clock_hz=300e6) == pytest.approx(0.155, abs=0.001)
    assert paper_dpu_efficiency("hard_sigmoid", ops_per_cycle=4096, clock_hz=300e6) == pytest.approx(0.167, abs=0.001)


def test_zero_threads_means_all_the_jobs_threads():
    assert _thread_counts([1, 0], 4) == [1, 4]
    assert _thread_counts([1, 0], 1) == [1]


def _throughput(af, unsupported=()):
    return {
        "af": af, "litert_int8_fps": {"1": 10.0, "2": 15.0}, "keras_float_fps": {"2": 5.0},
        "ops_per_frame": 2_000_000_000, "dpu_unsupported_ops": list(unsupported),
    }


def test_table4_flags_sigmoid_on_the_cpu_and_shows_paper_power_as_reference():
    table = deployment_table(
        {"relu": _throughput("relu"), "sigmoid": _throughput("sigmoid", ["LOGISTIC"])}, DEPLOY
    )
    assert list(table.columns) == ["ReLU", "Sigmoid"]
    assert table.loc["Activation on the CPU (not on the DPU)", "Sigmoid"] == "LOGISTIC"
    assert table.loc["Activation on the CPU (not on the DPU)", "ReLU"] == "no"
    assert table.loc["Power (W), ours", "ReLU"] == NOT_MEASURED
    assert table.loc["Paper KV260 power (W)", "Sigmoid"] == PAPER_KV260["sigmoid"]["power_w"]
    assert table.loc["Paper KV260 throughput (FPS)", "ReLU"] == 22.68
    assert table.loc["LiteRT int8 FPS, 2 threads (this CPU)", "ReLU"] == 15.0
    assert table.loc["B4096 DPU estimate (FPS)", "ReLU"] == pytest.approx(4096 * 300e6 * 0.16 / 2e9, abs=0.01)


@pytest.mark.parametrize("kernels", ["xnnpack", "builtin"])
def test_litert_throughput_runs_the_int8_model(kernels):
    import numpy as np

    from hsiseu.deployment import litert_fps
    from hsiseu.model import build_unet
    from hsiseu.quantization.convert import quantize_int8

    model = build_unet(height=32, width=64, bands=25, n_classes=5, af="relu", pools=2, base_filters=4, seed=0)
    x = np.random.default_rng(0).random((2, 32, 64, 25), dtype=np.float32)
    assert litert_fps(quantize_int8(model, x), x[0], kernels=kernels, threads=1, repeats=3) > 0
