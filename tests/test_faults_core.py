"""The format-agnostic fault model: bit flips, sample sizes, the fault list, outcomes, figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hsiseu.faults import faultlist
from hsiseu.faults.bitflip import bit_field, flip_at, flip_bit, flip_bits
from hsiseu.faults.outcomes import Prediction, classes_from_scores, outcome_of
from hsiseu.faults.paramsets import ParameterSet, sets_frame, sets_from_frame, share_in_one_two
from hsiseu.faults.sampling import cell_sample_size, leveugle_n
from hsiseu.faults.shared import MemoWorth


def test_exponent_msb_flip_turns_one_to_two_into_nan_and_one_into_inf():
    assert np.isposinf(flip_bit(1.0, 30))
    assert np.isneginf(flip_bit(-1.0, 30))
    for v in (1.5, -1.25, 1.9999999):
        assert np.isnan(flip_bit(v, 30))
    # |x| < 1: exponent MSB 0 -> 1 multiplies by 2**128: huge but finite
    assert flip_bit(0.5, 30) == np.float32(0.5) * np.float32(2.0) ** 64 * np.float32(2.0) ** 64
    assert flip_bit(2.0, 30) == np.float32(2.0) * np.float32(2.0) ** -128 or flip_bit(2.0, 30) == 0.0


def test_float_bit_positions_follow_ieee754_binary32():
    assert flip_bit(1.0, 31) == -1.0
    assert flip_bit(1.0, 23) == 0.5  # exponent LSB
    assert flip_bit(1.0, 22) == 1.5  # mantissa MSB
    assert flip_bit(1.0, 0) == np.nextafter(np.float32(1.0), np.float32(2.0))
    assert flip_bit(0.0, 31).tobytes() == np.float32(-0.0).tobytes()
    assert [bit_field(np.float32, b) for b in (31, 30, 23, 22, 0)] == ["sign", "exponent", "exponent", "mantissa", "mantissa"]


def test_integer_flips_are_twos_complement_in_the_same_width():
    assert flip_bit(0, 7, np.int8) == -128
    assert flip_bit(-1, 7, np.int8) == 127
    assert flip_bit(5, 0, np.int8) == 4
    assert flip_bit(0, 31, np.int32) == np.iinfo(np.int32).min
    assert flip_bits(np.array([1, 2, 3], np.int32), np.array([0, 1, 2])).tolist() == [0, 0, 7]
    assert bit_field(np.int8, 7) == "sign" and bit_field(np.int32, 30) == "magnitude"
    with pytest.raises(ValueError, match="0..7"):
        flip_bits(np.zeros(2, np.int8), 8)


def test_flipping_twice_restores_every_bit_pattern():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    bits = rng.integers(0, 32, 1000)
    assert flip_bits(flip_bits(raw, bits), bits).tobytes() == raw.tobytes()


def test_a_flip_in_place_is_the_flip_of_that_one_value():
    """What the engines write into their copies of a tensor is :func:`flip_bits` of the value at
    the flat index, every other byte untouched, in every width; a strided view is refused."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.int8, np.int32, np.uint8, np.float16, np.float64):
        values = rng.integers(0, 256, (3, 4, 8), dtype=np.uint8).view(dtype)
        for index, bit in ((0, 0), (values.size // 2, 8 * values.itemsize - 1), (values.size - 1, 5)):
            copy = values.copy()
            flip_at(copy, index, bit)
            want = values.copy().reshape(-1)
            want[index] = flip_bits(want[index:index + 1], bit)[0]
            assert copy.tobytes() == want.tobytes()
    with pytest.raises(ValueError, match="contiguous"):
        flip_at(np.zeros((4, 4), np.float32)[:, ::2], 0, 3)
    with pytest.raises(ValueError, match="0..7"):
        flip_at(np.zeros(4, np.int8), 1, 8)


def test_memo_keys_stop_only_where_their_hashing_costs_more_than_hits_save():
    cheap, costly = MemoWorth(trial=4), MemoWorth(trial=4)
    for worth, hits in ((cheap, 1), (costly, 3)):
        assert worth.pays()  # within the trial
        worth.hashed, worth.hits, worth.hash_seconds = 4, hits, 0.2
        worth.ran(0.5, 5)  # 0.1 s a state downstream
    assert not cheap.pays()  # 1 hit x 0.1 s saved < 0.2 s hashing
    assert costly.pays()  # 3 x 0.1 s >= 0.2 s
    cheap.hits = 100
    assert not cheap.pays()  # decided once


def test_leveugle_sample_sizes():
    assert leveugle_n(math.inf, 0.025, 0.95, 0.5) == 1537
    assert leveugle_n(10**9, 0.025, 0.95, 0.5) == 1537
    assert leveugle_n(32, 0.025, 0.95, 0.5) == 32  # small sets: n reaches N -> the whole cell
    n = leveugle_n(10000, 0.025, 0.95, 0.5)
    assert 1300 < n < 1537
    assert leveugle_n(math.inf, 0.1, 0.95, 0.5) == 97
    sampling = {"error_margin": 0.025, "confidence": 0.95, "p": 0.5, "fixed_n": None}
    assert cell_sample_size(100, sampling) == 94  # 100 / (1 + 0.025**2 * 99 / (1.96**2 / 4))
    assert cell_sample_size(10**6, {**sampling, "fixed_n": 1550}) == 1550
    assert cell_sample_size(8, {**sampling, "fixed_n": 1550}) == 8


def _sets():
    return [
        ParameterSet("cnv_1/kernel", "kernel", "cnv_1", (3, 3, 4, 8), "float32"),
        ParameterSet("cnv_1/bias", "bias", "cnv_1", (8,), "float32"),
        ParameterSet("q/weights", "kernel", "q", (300,), "int8"),
    ]


def test_fault_list_is_byte_identical_for_the_same_config(tmp_path):
    sampling = {"error_margin": 0.2, "confidence": 0.95, "p": 0.5, "fixed_n": None}
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    faultlist.write(faultlist.generate(_sets(), sampling=sampling, bits=None, seed=3), a)
    faultlist.write(faultlist.generate(_sets(), sampling=sampling, bits=None, seed=3), b)
    assert a.read_bytes() == b.read_bytes()
    faultlist.write(faultlist.generate(_sets(), sampling=sampling, bits=None, seed=4), b)
    assert a.read_bytes() != b.read_bytes()


def test_fault_list_cells_sizes_and_bits_per_dtype():
    sampling = {"error_margin": 0.2, "confidence": 0.95, "p": 0.5, "fixed_n": None}
    frame = faultlist.generate(_sets(), sampling=sampling, bits=None, seed=0)
    cells = frame.groupby(["set", "bit"]).size()
    assert set(frame.loc[frame.set == "q/weights", "bit"]) == set(range(8))  # int8: bits 0..7
    assert set(frame.loc[frame.set == "cnv_1/kernel", "bit"]) == set(range(32))
    assert (cells.loc["cnv_1/bias"] == 7).all()  # Leveugle: 8 / (1 + 0.04 * 7 / 0.96) -> 7
    whole = faultlist.generate(_sets(), sampling={"fixed_n": 100}, bits=[0], seed=0)
    assert whole.loc[whole.set == "cnv_1/bias", "index"].tolist() == list(range(8))  # n >= N: the whole cell
    assert (cells.loc["cnv_1/kernel"] == cell_sample_size(288, sampling)).all()
    assert not frame.duplicated(["set", "bit", "index"]).any()
    assert frame["fault"].tolist() == list(range(len(frame)))
    only = faultlist.generate(_sets(), sampling=sampling, bits=[30, 31, 5], seed=0)
    assert set(only.loc[only.set == "q/weights", "bit"]) == {5}
    # a cell's draw does not depend on which other bits are injected
    pick = lambda f: f[(f.set == "cnv_1/kernel") & (f.bit == 30)]["index"].tolist()  # noqa: E731
    assert pick(only) == pick(frame)


def test_shards_partition_the_fault_list_without_overlap(tmp_path):
    frame = faultlist.generate(_sets(), sampling={"fixed_n": 3}, bits=None, seed=0)
    parts = [faultlist.shard_of(frame, i, 3) for i in range(3)]
    ids = np.sort(np.concatenate([p["fault"].to_numpy() for p in parts]))
    assert ids.tolist() == frame["fault"].tolist()


def test_nan_pixels_get_their_own_class_and_inf_wins_the_argmax():
    scores = np.array([[[0.1, 0.7, 0.2], [np.nan, 0.9, 0.0], [0.2, np.inf, 0.1], [0.5, 0.5, 0.0]]], np.float32)
    assert classes_from_scores(scores).tolist() == [[1, 3, 1, 0]]


def test_outcome_counts_changed_pixels_overall_and_labelled():
    golden = np.zeros((1, 2, 2), np.uint8)
    classes = np.array([[[0, 1], [3, 0]]], np.uint8)
    labelled = np.array([[[True, True], [False, False]]])
    out = outcome_of(golden, Prediction(classes, True), labelled)
    assert out == {"error_rate": 50.0, "error_rate_labelled": 50.0, "changed": True, "nonfinite": True}
    assert outcome_of(golden, Prediction(None, False), labelled)["changed"] is False


def test_parameter_set_table_round_trips_and_counts_values_in_one_to_two():
    sets = _sets()[:2]
    frame = sets_frame(sets, [np.array([0.5, 1.5, -1.2, 2.0] * 72, np.float32), np.ones(8, np.float32)])
    assert sets_from_frame(frame) == sets
    assert frame.loc[0, "share_1_2"] == pytest.approx(0.5)
    assert frame.loc[1, "share_1_2"] == 0.0  # exactly 1 is not inside (1, 2)
    assert np.isnan(share_in_one_two(np.array([1, 2], np.int8)))


def test_fault_figures_are_drawn_from_cells(tmp_path):
    from hsiseu.reporting import fault_figures as ff

    rows = []
    for order, s in enumerate(["cnv_1/kernel", "bn_1/gamma"]):
        for bit in range(32):
            rows.append({"order": order, "set": s, "kind": s.split("/")[1], "layer": s.split("/")[0], "bit": bit,
                         "population": 10, "n": 10, "error_rate": float(bit == 30) * (10 + 80 * order),
                         "error_rate_std": 0.0, "error_rate_labelled": 0.0, "changed": 0.0, "nonfinite": 0.0})
    cells = pd.DataFrame(rows)
    sets = pd.DataFrame({"name": ["cnv_1/kernel", "bn_1/gamma"], "share_1_2": [0.05, 0.8]})
    ff.heatmap(cells, tmp_path / "f2.png")
    shifted = cells.assign(error_rate=cells["error_rate"] * 1.5)
    table = ff.mean_error_by_set({"relu": {0: cells, 1: shifted}, "sigmoid": {0: cells}}, tmp_path / "f3.png")
    bars = table.set_index(["af", "set"])
    # a bar is the mean over replicates, its whisker the t interval over them (2 replicates: t = 12.71)
    gamma = bars.loc[("relu", "bn_1/gamma")]
    assert gamma["mean"] == pytest.approx(1.25 * 90 / 32)
    half = 12.706 * np.std([90 / 32, 1.5 * 90 / 32], ddof=1) / np.sqrt(2)
    assert gamma["high"] - gamma["mean"] == pytest.approx(half, rel=1e-3)
    # one replicate: the model's own interval; the right-most bar is the mean over parameter sets
    assert bars.loc[("sigmoid", ff.MEAN_OVER_SETS), "mean"] == pytest.approx((10 / 32 + 90 / 32) / 2)
    msb = ff.msb_minus_range({"relu": cells}, {"relu": sets}, tmp_path / "f4.png")
    assert msb.loc[("relu", "bn_1/gamma"), "difference"] == pytest.approx(90 - 80)
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("f2.png", "f3.png", "f4.png"))
