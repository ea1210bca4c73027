"""Fault injection into int8 LiteRT models: the parameter sets come from the graph, every flip
reaches the kernels, and under either kernel set the fast engine gives the naive rebuild loop's
outcomes bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults import campaign, faultlist
from hsiseu.faults.litert.backend import ENGINES, TFLiteBackend
from hsiseu.faults.litert.execution import flip_in_place, full_run, quantized_images
from hsiseu.faults.litert.fast import CACHED_AT_PREPARE
from hsiseu.faults.litert.reference import flipped_model
from hsiseu.faults.litert.sets import int8_parameter_sets, other_constants, tensor_values
from hsiseu.faults.outcomes import outcome_of
from hsiseu.faults.registry import open_backend
from hsiseu.model import build_unet
from hsiseu.quantization.convert import quantize_int8
from hsiseu.quantization.graph import operators
from hsiseu.quantization.interpreter import KERNELS, make_interpreter, packs_weights
from hsiseu.quantization.slices import Slicer

AFS = ("relu", "sigmoid", "hard_sigmoid")
RNG = np.random.default_rng(0)
CALIB = RNG.random((4, 32, 64, 25), dtype=np.float32)
X = RNG.random((2, 32, 64, 25), dtype=np.float32)


def tiny_unet(af: str):
    """The tiny U-Net with non-zero biases and BN statistics (as after training), so that the
    converter keeps every bias, TRANSPOSE_CONV's included."""
    model = build_unet(height=32, width=64, bands=25, n_classes=5, af=af, pools=2, base_filters=4, seed=0)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
        if layer.name.startswith("bn_"):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def models():
    out = {}
    for af in AFS:
        keras_model = tiny_unet(af)
        out[af] = (keras_model, quantize_int8(keras_model, CALIB))
    return out


def test_parameter_sets_are_every_conv_kernel_and_bias_named_after_the_float_layer(models):
    keras_model, content = models["relu"]
    sets = int8_parameter_sets(content)
    convs = [layer for layer in keras_model.layers if layer.__class__.__name__ in ("Conv2D", "Conv2DTranspose")]
    expected = [f"{layer.name}/{role}" for layer in convs for role in ("kernel", "bias")]
    assert sorted(s.pset.name for s in sets) == sorted(expected)  # 2 x 13 = 26 for pools=2
    ops = operators(content)
    for s in sets:
        layer = keras_model.get_layer(s.pset.layer)
        (consumer,) = s.consumers
        assert ops[consumer].name == ("TRANSPOSE_CONV" if layer.__class__.__name__ == "Conv2DTranspose" else "CONV_2D")
        if s.pset.kind == "kernel":
            assert s.pset.dtype == "int8" and s.pset.n_bits == 8
            assert s.pset.size == int(np.prod(layer.kernel.shape))
        else:
            assert s.pset.dtype == "int32" and s.pset.n_bits == 32
            assert s.pset.shape == (layer.filters,)
        assert faultlist.bits_for(s.pset, None) == list(range(s.pset.n_bits - 1, -1, -1))
    # Graph order: the first set is the first convolution's kernel.
    assert sets[0].pset.name == "cnv_1/kernel" and sets[1].pset.name == "cnv_1/bias"


def test_other_constants_are_listed_and_injected_only_on_request(models):
    _, content = models["hard_sigmoid"]
    default = {s.pset.name for s in int8_parameter_sets(content)}
    extra = other_constants(content)
    assert extra and all(s.pset.kind == "constant" for s in extra)
    assert not default & {s.pset.name for s in extra}
    ops = operators(content)
    assert all(ops[j].name == "MUL" for s in extra for j in s.consumers)  # hard sigmoid's 1/6, not shapes
    both = int8_parameter_sets(content, include_other_constants=True)
    assert [s.pset.name for s in both] == [s.pset.name for s in int8_parameter_sets(content)] + [s.pset.name for s in extra]
    assert not other_constants(models["relu"][1])  # relu: TRANSPOSE_CONV output shapes are not parameters


@pytest.mark.parametrize("af", AFS)
@pytest.mark.parametrize("kernels", KERNELS)
def test_a_high_bit_flip_of_every_parameter_set_changes_the_int8_output(models, af, kernels):
    """The TensorFI2 tflite demo's faults never reached the model; these do, in every set."""
    _, content = models[af]
    interp = make_interpreter(content, kernels=kernels)
    xq = quantized_images(interp, X)
    golden = full_run(interp, xq)
    for s in int8_parameter_sets(content, include_other_constants=True):
        values = tensor_values(content, s.tensor)
        index = int(np.argmax(np.abs(values.astype(np.int64))))  # a weight the layer relies on
        bit = s.pset.n_bits - 2  # the highest magnitude bit
        out = full_run(make_interpreter(flipped_model(content, s.tensor, index, bit), kernels=kernels), xq)
        assert not np.array_equal(out, golden), f"{af}: flipping bit {bit} of {s.pset.name}[{index}] changed nothing"


@pytest.mark.parametrize("kernels", KERNELS)
def test_in_place_flips_reach_only_kernels_that_read_the_weights_at_every_invoke(models, kernels):
    """Why the fast engine rebuilds the faulty operator: XNNPACK packs every weight when the
    interpreter is built, and the builtin TRANSPOSE_CONV transposes its weights at prepare
    (CACHED_AT_PREPARE); the other builtin kernels read the live tensor."""
    _, content = models["relu"]
    ops = operators(content)
    interp = make_interpreter(content, kernels=kernels)
    xq = quantized_images(interp, X[:1])
    golden = full_run(interp, xq)
    for s in int8_parameter_sets(content):
        index = int(np.argmax(np.abs(tensor_values(content, s.tensor).astype(np.int64))))
        flip_in_place(interp, s.tensor, index, s.pset.n_bits - 2)
        out = full_run(interp, xq)
        flip_in_place(interp, s.tensor, index, s.pset.n_bits - 2)
        position = ops[s.consumers[0]].inputs.index(s.tensor)
        stale = packs_weights(kernels) or (ops[s.consumers[0]].name, position) in CACHED_AT_PREPARE
        assert np.array_equal(out, golden) == stale, s.pset.name
    assert np.array_equal(full_run(interp, xq), golden)  # flipped back


@pytest.mark.parametrize("kernels", KERNELS)
def test_slices_reproduce_the_full_model_bit_for_bit_under_either_kernels(models, kernels):
    """The two facts the delayed start rests on: operator by operator, all images as one batch,
    gives the whole model's output, and so does every slice from any operator to the end."""
    _, content = models["hard_sigmoid"]
    interp = make_interpreter(content, kernels=kernels)
    xq = quantized_images(interp, X)
    whole = full_run(interp, xq)
    slicer = Slicer(content)
    n_ops = len(slicer.ops)
    acts = {int(interp.get_input_details()[0]["index"]): xq}
    for j, op in enumerate(slicer.ops):
        sub, io = slicer.submodel(j, j + 1, batch=len(xq), outputs=list(op.outputs))
        assert len(sub) < len(content) or n_ops == 1  # a slice carries only its own buffers
        one = make_interpreter(sub, kernels=kernels)
        for t in io.inputs:
            one.set_tensor(t, acts[t])
        one.invoke()
        acts.update({t: one.get_tensor(t).copy() for t in io.outputs})
    out_t = int(interp.get_output_details()[0]["index"])
    assert np.array_equal(acts[out_t], whole)
    for start in range(n_ops):
        sub, io = slicer.submodel(start, n_ops, batch=len(xq))
        s_interp = make_interpreter(sub, kernels=kernels)
        for t in io.inputs:
            s_interp.set_tensor(t, acts[t])
        s_interp.invoke()
        assert io.outputs == [out_t]
        assert np.array_equal(s_interp.get_tensor(out_t), whole), f"slice from op {start}"


def test_the_two_kernel_sets_are_different_int8_models(models):
    """Why the kernels are one config choice: their fault-free scores differ (rounding by an LSB
    here and there, compounded over the layers), though not their answers, mostly."""
    differ = []
    for af in AFS:
        _, content = models[af]
        outs = {}
        for kernels in KERNELS:
            interp = make_interpreter(content, kernels=kernels)
            outs[kernels] = full_run(interp, quantized_images(interp, X))
        differ.append(not np.array_equal(*outs.values()))
        assert np.abs(outs["xnnpack"].astype(int) - outs["builtin"].astype(int)).mean() < 1
        assert (outs["xnnpack"].argmax(-1) == outs["builtin"].argmax(-1)).mean() > 0.9
    assert any(differ)


@pytest.mark.parametrize("af", AFS)
@pytest.mark.parametrize("kernels", KERNELS)
def test_fast_and_reference_engines_give_identical_outcomes_on_every_fault(models, af, kernels):
    _, content = models[af]
    backends = {e: TFLiteBackend(content, X, engine=e, kernels=kernels, include_other_constants=True)
                for e in ENGINES}
    sets = backends["reference"].parameter_sets()
    faults = faultlist.faults_of(faultlist.generate(sets, sampling={"fixed_n": 1}, bits=None, seed=3))
    golden = backends["reference"].golden()
    maps = {}
    for name, backend in backends.items():
        assert np.array_equal(backend.golden(), golden)
        maps[name] = [golden if p.classes is None else p.classes for p in backend.run(faults)]
        assert len(maps[name]) == len(faults)
    for fault, ref, got in zip(faults, maps["reference"], maps["fast"], strict=True):
        assert np.array_equal(ref, got), f"{af} {kernels}: fault {fault} differs from the reference"
    assert sum(bool((m != golden).any()) for m in maps["reference"]) > 0
    stats = backends["fast"].engine.stats
    assert stats["rebuilt"] > 0  # every XNNPACK fault, and the builtin TRANSPOSE_CONV kernel faults
    assert (stats["rebuilt"] == len(faults)) == packs_weights(kernels)
    assert stats["tail_runs"] > 0 and stats["reference_faults"] == 0


def test_a_downstream_that_does_not_reproduce_the_cache_sends_its_faults_to_the_naive_loop(models):
    _, content = models["relu"]
    fast = TFLiteBackend(content, X, engine="fast", kernels="xnnpack")
    ref = TFLiteBackend(content, X, engine="reference", kernels="xnnpack")
    engine = fast.engine
    engine._untrusted.update(range(len(engine.ops)))  # as if no downstream had reproduced the cache
    faults = faultlist.faults_of(faultlist.generate(fast.parameter_sets(), sampling={"fixed_n": 1},
                                                    bits=[7, 6, 31, 30], seed=5))
    labelled = np.ones(fast.golden().shape, bool)
    got = [outcome_of(fast.golden(), p, labelled) for p in fast.run(faults)]
    assert got == [outcome_of(ref.golden(), p, labelled) for p in ref.run(faults)]
    assert engine.stats["reference_faults"] > 0 and engine.stats["tail_runs"] == 0


def test_int8_campaign_runs_through_the_shared_list_shard_and_merge_code(models, tmp_path):
    _, content = models["relu"]
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    backend = open_backend("quantized", path, X, {"engine": "fast", "kernels": "builtin"})
    assert isinstance(backend, TFLiteBackend) and backend.kernels == "builtin"
    sampling = {"error_margin": 0.5, "confidence": 0.95, "p": 0.5, "fixed_n": 1}
    campaign.write_fault_list(backend, sampling=sampling, bits=None, seed=1,
                              out_faults=tmp_path / "faults.csv", out_sets=tmp_path / "sets.csv")
    labels = np.zeros((len(X), 32, 64), dtype=np.uint8)
    shards = [tmp_path / f"{k}-of-2.csv" for k in range(2)]
    for k, out in enumerate(shards):
        campaign.run_shard(backend, faults_path=tmp_path / "faults.csv", labels=labels, shard=k, n_shards=2,
                           out=out, chunk_size=50, progress=False)
    outcomes = campaign.merge_shards(shards, faults_path=tmp_path / "faults.csv", sets_path=tmp_path / "sets.csv",
                                     out_outcomes=tmp_path / "outcomes.csv", out_cells=tmp_path / "cells.csv")
    cells = pd.read_csv(tmp_path / "cells.csv")
    bits = cells.groupby("kind")["bit"].agg(["min", "max", "nunique"])
    assert bits.loc["kernel"].tolist() == [0, 7, 8] and bits.loc["bias"].tolist() == [0, 31, 32]
    # original/faulty are the stored integers, two's complement.
    for row in outcomes.itertuples():
        width = 8 if row.kind == "kernel" else 32
        flipped = (int(row.original) % 2**width) ^ (1 << int(row.bit))
        assert int(row.faulty) == (flipped - 2**width if flipped >= 2 ** (width - 1) else flipped)
    assert not outcomes["nonfinite"].any()

    from hsiseu.reporting.fault_figures import bias_weight_split, fig7_from_files, fig_means_from_files

    fig7_from_files([str(tmp_path / "cells.csv")], str(tmp_path / "fig7.png"), af="relu", kernels="builtin")
    table = fig_means_from_files({"relu": {0: str(tmp_path / "cells.csv")}}, str(tmp_path / "fig8.png"),
                                 stage="quantized", kernels="builtin")
    assert (tmp_path / "fig7.png").stat().st_size > 1000 and (tmp_path / "fig8.png").stat().st_size > 1000
    assert list(table["set"][:2]) == ["cnv_1/kernel", "cnv_1/bias"]
    split = bias_weight_split(cells)
    assert 0 <= split["bias_share_of_set_error"] <= 1


@pytest.mark.parametrize("kernels", KERNELS)
def test_benchmark_times_both_naive_loops_and_the_engine_on_the_same_faults(models, kernels):
    from hsiseu.faults.litert.benchmark import NaiveRebuild, run_benchmark

    _, content = models["sigmoid"]
    sets = int8_parameter_sets(content)
    faults = faultlist.faults_of(faultlist.generate([s.pset for s in sets], sampling={"fixed_n": 1},
                                                    bits=[7, 6, 0, 31, 20], seed=2))
    result = run_benchmark(content, X[:1], faults, kernels=kernels, chunk=16)
    rows = result["rows"]
    assert [k for _, k, _ in rows] == [*KERNELS, kernels, kernels]
    labelled = np.ones(result["goldens"][kernels].shape, bool)
    outcomes = {name: [outcome_of(result["goldens"][k], p, labelled) for p in preds]
                for name, k, (preds, _, _) in rows}
    record = next(outcomes[name] for name, k, _ in rows if k == kernels)
    assert outcomes["fast, warm"] == record and outcomes["fast, cold (set-up included)"] == record
    assert any(o["changed"] for o in record)
    assert all(wall > 0 and cpu > 0 for _, _, (_, wall, cpu) in rows)
    # the naive loop with the interpreter's own defaults is the xnnpack kernels' loop
    xq = result["backend"].engine.xq
    tensor_of = {s.pset.name: s.tensor for s in sets}
    assert np.array_equal(NaiveRebuild(content, xq, tensor_of, None).golden,
                          NaiveRebuild(content, xq, tensor_of, "xnnpack").golden)


def test_the_paper_structure_has_56_int8_sets_and_both_engines_agree_on_it():
    """The paper's U-Net (5 pooling levels): 28 convolutions, so 56 sets, q_w bits 0..7 and q_b
    bits 0..31 (the paper's Section III-C). The structure, not the width, fixes the count, so a
    2-filter base keeps the test fast."""
    model = build_unet(height=32, width=64, bands=25, n_classes=5, af="relu", pools=5, base_filters=2, seed=0)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
    content = quantize_int8(model, CALIB)
    sets = int8_parameter_sets(content)
    assert len(sets) == 56
    assert {s.pset.n_bits for s in sets if s.pset.kind == "kernel"} == {8}
    assert {s.pset.n_bits for s in sets if s.pset.kind == "bias"} == {32}
    fast = TFLiteBackend(content, X[:1], engine="fast", kernels="xnnpack")
    ref = TFLiteBackend(content, X[:1], engine="reference", kernels="xnnpack")
    faults = faultlist.faults_of(faultlist.generate(fast.parameter_sets(), sampling={"fixed_n": 1}, bits=[6, 30],
                                                    seed=4))
    labelled = np.ones(ref.golden().shape, bool)
    assert [outcome_of(fast.golden(), p, labelled) for p in fast.run(faults)] == \
        [outcome_of(ref.golden(), p, labelled) for p in ref.run(faults)]
