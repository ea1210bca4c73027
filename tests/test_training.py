"""Training is seeded and deterministic, learns the stand-in, and keeps the best epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from hsiseu.io import read_json
from hsiseu.synthetic import generate_dataset
from hsiseu.runtime import configure_tensorflow
from hsiseu.training import train_original


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    configure_tensorflow(threads=2)
    root = tmp_path_factory.mktemp("data") / "synthetic"
    cfg = tiny_config()
    cfg["data"]["root"] = str(root)
    generate_dataset(root, **cfg["data"]["synthetic"])
    return cfg


def _train(cfg, out, af="relu"):
    return train_original(
        cfg, af, out_model=out / "model.keras", out_history=out / "history.csv", out_metrics=out / "metrics.json"
    )


def test_same_seed_gives_identical_weights_and_history(tiny, tmp_path):
    import keras

    _train(tiny, tmp_path / "a")
    _train(tiny, tmp_path / "b")
    wa = keras.saving.load_model(tmp_path / "a" / "model.keras").get_weights()
    wb = keras.saving.load_model(tmp_path / "b" / "model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    ha, hb = (pd.read_csv(tmp_path / d / "history.csv") for d in "ab")
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))


def test_metrics_file_reports_test_ious_of_the_best_epoch(tiny, tmp_path):
    cfg = dict(tiny, training=dict(tiny["training"], epochs={**tiny["training"]["epochs"], "hard_sigmoid": 3}))
    metrics = _train(cfg, tmp_path, af="hard_sigmoid")
    on_disk = read_json(tmp_path / "metrics.json")
    assert on_disk["best_epoch"] == metrics["best_epoch"]
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == 3
    best_row = history.loc[history["val_global_iou"].idxmax()]
    assert int(best_row["epoch"]) == on_disk["best_epoch"]
    # The saved model is the best epoch's: its validation Global IoU is the history's maximum.
    assert on_disk["validation"]["global_iou"] == pytest.approx(best_row["val_global_iou"], abs=1e-6)
    assert set(on_disk["test"]["per_class_iou"]) == {"Road", "Marks", "Vegetation", "Sky", "Others"}
    assert 0 <= on_disk["test"]["global_iou"] <= 100


def test_training_reduces_the_loss(tiny, tmp_path):
    cfg = dict(tiny, training=dict(tiny["training"], epochs={**tiny["training"]["epochs"], "relu": 4}))
    _train(cfg, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


def test_median_frequency_weights_favour_the_rare_class_and_skip_absent_ones():
    from hsiseu.training import class_weights

    w = class_weights(np.array([800, 10, 100, 90, 0]), "median_frequency")
    # frequencies 0.8, 0.01, 0.1, 0.09 -> median 0.095
    np.testing.assert_allclose(w, [0.095 / 0.8, 9.5, 0.95, 0.095 / 0.09, 0.0])
    assert np.array_equal(class_weights(np.array([5, 5]), "none"), [1.0, 1.0])
    inv = class_weights(np.array([30, 10, 0]), "inverse_frequency")
    assert inv[2] == 0 and inv[1] == pytest.approx(3 * inv[0]) and inv[:2].mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="balanced"):
        class_weights(np.array([1, 2]), "balanced")
