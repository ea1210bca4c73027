"""Segmentation metrics against confusion matrices and IoUs worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hsiseu.metrics import (
    IGNORE,
    confusion_matrix,
    global_iou,
    iou_per_class,
    segmentation_report,
    weighted_iou,
)

# A 2x3 label map with one ignored pixel (its prediction, 2, must not count).
Y_TRUE = np.array([[0, 0, 1], [1, 2, IGNORE]], dtype=np.uint8)
Y_PRED = np.array([[0, 1, 1], [1, 0, 2]], dtype=np.uint8)
# Labelled (true, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,0)
CM = np.array(
    [
        [1, 1, 0],
        [0, 2, 0],
        [1, 0, 0],
    ]
)
# class 0: TP 1, FP 1 (the 2->0), FN 1 (the 0->1) -> 1/3
# class 1: TP 2, FP 1 (the 0->1), FN 0            -> 2/3
# class 2: TP 0, FP 0,            FN 1            -> 0
IOU = np.array([1 / 3, 2 / 3, 0.0])
GLOBAL = 3 / 7  # sum TP = 3, sum (TP+FP+FN) = 3 + 3 + 1 = 7
# frequencies (row sums) 2, 2, 1 -> weights 1/2, 1/2, 1 normalised -> 0.25, 0.25, 0.5
WEIGHTED = 0.25 * (1 / 3) + 0.25 * (2 / 3) + 0.5 * 0.0  # = 0.25


def test_confusion_matrix_matches_hand_count_and_drops_ignored_pixels():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)
    assert cm.sum() == 5  # six pixels, one ignored


def test_confusion_matrix_honours_custom_ignore_label():
    y_true = np.array([0, 1, 9, 9])
    y_pred = np.array([0, 0, 1, 7])  # 7 is out of range but sits on ignored pixels
    cm = confusion_matrix(y_true, y_pred, 2, ignore=9)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 0]])


def test_confusion_matrix_uint8_labels_do_not_overflow():
    # 19 * 20 + 19 = 399 would wrap in uint8 arithmetic.
    y = np.array([19, 19, 0], dtype=np.uint8)
    p = np.array([19, 18, 0], dtype=np.uint8)
    cm = confusion_matrix(y, p, 20)
    assert cm[19, 19] == 1 and cm[19, 18] == 1 and cm[0, 0] == 1 and cm.sum() == 3


def test_confusion_matrix_equals_pixel_loop_on_random_maps():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=(3, 17, 23)).astype(np.uint8)
    y[rng.random(y.shape) < 0.2] = IGNORE
    p = rng.integers(0, 4, size=y.shape).astype(np.uint8)
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, q in zip(y.ravel(), p.ravel()):
        if t != IGNORE:
            expected[t, q] += 1
    np.testing.assert_array_equal(confusion_matrix(y, p, 4), expected)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (np.array([0, 1]), np.array([0, 1, 1]), "shape mismatch"),
        (np.array([0, 3]), np.array([0, 1]), "y_true"),
        (np.array([0, 1]), np.array([0, 255]), "y_pred"),
        (np.array([0, -1]), np.array([0, 1]), "y_true"),
    ],
)
def test_confusion_matrix_rejects_bad_shapes_and_out_of_range_labels(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, 3)


def test_iou_per_class_matches_hand_values():
    iou = iou_per_class(CM)
    assert iou.dtype == np.float64
    np.testing.assert_allclose(iou, IOU)


def test_global_iou_is_micro_average_not_class_mean():
    assert global_iou(CM) == pytest.approx(GLOBAL)
    assert global_iou(CM) != pytest.approx(np.mean(IOU))


def test_weighted_iou_matches_hand_value():
    assert weighted_iou(CM) == pytest.approx(WEIGHTED)


@pytest.mark.parametrize("seed", range(5))
def test_global_iou_equals_a_over_2_minus_a_for_single_label_maps(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=1000)
    p = np.where(rng.random(1000) < 0.7, y, rng.integers(0, 5, size=1000))
    cm = confusion_matrix(y, p, 5)
    a = np.trace(cm) / cm.sum()
    assert global_iou(cm) == pytest.approx(a / (2 - a))


def test_class_absent_from_ground_truth_and_predictions_is_nan_and_excluded():
    cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), 3)
    iou = iou_per_class(cm)
    assert iou[:2].tolist() == [1.0, 1.0] and math.isnan(iou[2])
    assert weighted_iou(cm) == pytest.approx(1.0)
    report = segmentation_report(cm, ["a", "b", "c"])
    assert report["per_class_iou"] == {"a": 100.0, "b": 100.0, "c": None}
    assert report["mean_iou"] == pytest.approx(100.0)


def test_class_absent_from_ground_truth_but_predicted_has_zero_iou_and_no_weight():
    # (0,0) (0,2) (1,1): cm [[1,0,1],[0,1,0],[0,0,0]]
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 2, 1]), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(iou_per_class(cm), [0.5, 1.0, 0.0])
    # frequencies 2, 1, 0 -> class 2 unweighted; weights 1/3, 2/3
    assert weighted_iou(cm) == pytest.approx(0.5 / 3 + 2 / 3)
    assert global_iou(cm) == pytest.approx(2 / 4)
    assert segmentation_report(cm, ["a", "b", "c"])["mean_iou"] == pytest.approx(50.0)


def test_perfect_prediction_scores_100_everywhere():
    y = np.array([[0, 1, 2, 3], [3, 3, 3, IGNORE]])
    report = segmentation_report(confusion_matrix(y, np.where(y == IGNORE, 0, y), 4), "abcd")
    assert report["global_iou"] == 100.0
    assert report["weighted_iou"] == 100.0
    assert report["mean_iou"] == 100.0
    assert report["pixel_accuracy"] == 100.0
    assert set(report["per_class_iou"].values()) == {100.0}
    assert report["pixels"] == 7


def test_weighted_iou_is_dominated_by_rare_class():
    # 100 pixels of class 0 all right; the 2 pixels of class 1 both predicted as 0.
    cm = np.array([[100, 0], [2, 0]])
    # IoU0 = 100/102, IoU1 = 0; weights 1/100 : 1/2 -> 1/51 : 50/51
    assert weighted_iou(cm) == pytest.approx((1 / 51) * (100 / 102))  # ~0.019
    # sum TP = 100; sum (TP+FP+FN) = (100+2+0) + (0+0+2) = 104
    assert global_iou(cm) == pytest.approx(100 / 104)  # ~0.96


def test_weighted_iou_uses_given_dataset_frequencies():
    cm = np.array([[100, 0], [2, 0]])
    assert weighted_iou(cm, frequencies=[1, 1]) == pytest.approx(0.5 * 100 / 102)
    assert weighted_iou(cm, frequencies=[0.5, 0.5]) == pytest.approx(0.5 * 100 / 102)
    with pytest.raises(ValueError, match="frequencies"):
        weighted_iou(cm, frequencies=[1, 1, 1])
    with pytest.raises(ValueError, match="frequencies"):
        weighted_iou(cm, frequencies=[1, -1])


def test_report_is_json_serialisable_percentages():
    report = segmentation_report(CM, ["road", "marks", "sky"])
    text = json.dumps(report, allow_nan=False)
    back = json.loads(text)
    assert back["per_class_iou"] == pytest.approx(
        {"road": 100 / 3, "marks": 200 / 3, "sky": 0.0}
    )
    assert back["global_iou"] == pytest.approx(100 * GLOBAL)
    assert back["weighted_iou"] == pytest.approx(100 * WEIGHTED)
    assert back["mean_iou"] == pytest.approx(100 / 3)
    assert back["pixel_accuracy"] == pytest.approx(60.0)
    assert back["pixels"] == 5
    assert all(type(v) is float for v in back["per_class_iou"].values())


def test_empty_confusion_matrix_gives_none_not_nan():
    report = segmentation_report(np.zeros((2, 2), dtype=np.int64), ["a", "b"])
    json.dumps(report, allow_nan=False)
    assert report["global_iou"] is None and report["weighted_iou"] is None
    assert report["pixel_accuracy"] is None and report["pixels"] == 0


def test_report_rejects_wrong_number_of_class_names():
    with pytest.raises(ValueError, match="class names"):
        segmentation_report(CM, ["a", "b"])
