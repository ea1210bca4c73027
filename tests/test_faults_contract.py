"""The backend contract, for every engine of both number formats: each gives its backend's
reference outcome for every fault, leaves the model fault-free, and answers in fault order."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from hsiseu.runtime import configure_tensorflow

configure_tensorflow(1, 0)

from hsiseu.faults import faultlist  # noqa: E402
from hsiseu.faults.keras.backend import ENGINES as KERAS_ENGINES  # noqa: E402
from hsiseu.faults.keras.backend import KerasBackend  # noqa: E402
from hsiseu.faults.litert.backend import ENGINES as LITERT_ENGINES  # noqa: E402
from hsiseu.faults.litert.backend import TFLiteBackend  # noqa: E402
from hsiseu.faults.outcomes import outcome_of  # noqa: E402
from hsiseu.quantization.interpreter import KERNELS  # noqa: E402

from test_faults_engines import tiny_model  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.random((2, 16, 32, 3), dtype=np.float32)


def _unet():
    return tiny_model("sigmoid", seed=2)


def _keras(engine: str):
    return KerasBackend(_unet(), X, engine=engine, memory_mb=0.5)


@functools.cache
def _int8_model() -> bytes:
    from hsiseu.quantization.convert import quantize_int8

    return quantize_int8(_unet(), np.random.default_rng(4).random((4, 16, 32, 3), dtype=np.float32))


def _litert(kernels: str):
    return lambda engine: TFLiteBackend(_int8_model(), X, engine=engine, kernels=kernels)


BACKENDS = {"keras": (_keras, KERAS_ENGINES),
            **{f"litert-{k}": (_litert(k), LITERT_ENGINES) for k in KERNELS}}
CASES = [(kind, engine) for kind, (_, engines) in BACKENDS.items() for engine in engines if engine != "reference"]


@pytest.mark.parametrize(("kind", "engine"), CASES)
def test_every_engine_gives_its_backends_reference_outcome_for_every_fault(kind, engine):
    make, _ = BACKENDS[kind]
    ref, fast = make("reference"), make(engine)
    assert [s.name for s in ref.parameter_sets()] == [s.name for s in fast.parameter_sets()]
    assert np.array_equal(ref.golden(), fast.golden())
    frame = faultlist.generate(ref.parameter_sets(), sampling={"fixed_n": 2}, bits=[31, 30, 23, 22, 7, 6, 0], seed=1)
    faults = faultlist.faults_of(frame)
    labelled = np.ones(ref.golden().shape, bool)
    golden = ref.golden()
    want = [outcome_of(golden, p, labelled) for p in ref.run(faults)]
    got = [outcome_of(golden, p, labelled) for p in fast.run(faults)]
    assert len(got) == len(faults)
    bad = [(f, a, b) for f, a, b in zip(faults, want, got) if a != b]
    assert not bad, bad[:3]
    assert any(o["changed"] for o in want) and any(not o["changed"] for o in want)
    # fault-free again: a second engine on the same model sees the same golden map
    assert np.array_equal(make("reference").golden(), golden)
    for name in (s.name for s in ref.parameter_sets()[:3]):
        assert np.array_equal(ref.values(name), fast.values(name))
