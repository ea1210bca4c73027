"""Sensitivity analysis, ratio search, composition of iterations and the acceptance criterion."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from hsiseu.model import build_unet, complexity
from hsiseu.pruning.acceptance import judge
from hsiseu.pruning.groups import prunable_groups
from hsiseu.pruning.iterative import composed_ratio
from hsiseu.pruning.ratios import allowed_sparsity, select_ratios
from hsiseu.pruning.sensitivity import sensitivity_curves, validation_scorer
from hsiseu.pruning.surgery import channels_to_remove, slim_model
from hsiseu.settings import model_kwargs
from hsiseu.synthetic import generate_dataset
from hsiseu.runtime import configure_tensorflow

SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    configure_tensorflow(threads=2, seed=0)
    cfg = tiny_config()
    cfg["data"]["root"] = str(tmp_path_factory.mktemp("data") / "synthetic")
    generate_dataset(cfg["data"]["root"], **cfg["data"]["synthetic"])
    model = build_unet(**model_kwargs(cfg, "relu"))
    groups = prunable_groups(model)
    curves = sensitivity_curves(model, groups, validation_scorer(cfg, "global_iou"), SPARSITIES, "global_iou")
    return cfg, model, groups, curves


def test_sensitivity_has_one_row_per_layer_and_sparsity_scored_against_the_baseline(tiny):
    cfg, model, groups, curves = tiny
    assert len(curves) == len(groups) * len(SPARSITIES)
    assert {"global_iou", "weighted_iou"} <= set(curves.columns)
    assert (curves["value"] == curves["global_iou"]).all()
    assert set(curves["layer"]) == {g.producer for g in groups}
    assert curves["baseline"].nunique() == 1
    np.testing.assert_allclose(curves["drop"], curves["baseline"] - curves["value"])
    # Sparsities that remove no channel (0.1 of 4 channels) score exactly the baseline.
    none = curves[curves["removed"] == 0]
    assert len(none) > 0 and (none["drop"] == 0).all()
    # Removing channels changes the score somewhere: the masking reaches the model.
    assert (curves["drop"].abs() > 0).any()


def test_sensitivity_point_equals_the_score_of_the_slim_model(tiny):
    cfg, model, groups, curves = tiny
    row = curves[curves["removed"] > 0].iloc[-1]
    g = next(gr for gr in groups if gr.producer == row["layer"])
    slim = slim_model(model, groups, {g.producer: channels_to_remove(model, g, int(row["removed"]))})
    assert validation_scorer(cfg, "global_iou")(slim) == pytest.approx(row["value"], abs=1e-6)


def test_allowed_sparsity_is_the_largest_within_the_threshold_before_any_excess():
    s = [0.1, 0.2, 0.3, 0.4]
    drops = [0.0, 0.5, 3.0, 0.2]  # collapses at 0.3; the lucky 0.4 must not count
    assert allowed_sparsity(s, drops, 0.5) == pytest.approx(0.2, abs=1e-4)
    assert allowed_sparsity(s, drops, 1.75) == pytest.approx(0.25, abs=1e-4)  # interpolated
    assert allowed_sparsity(s, drops, 10.0) == pytest.approx(0.4)
    assert allowed_sparsity(s, drops, -0.1) == 0.0
    thresholds = np.linspace(-1, 4, 200)
    values = [allowed_sparsity(s, drops, t) for t in thresholds]
    assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("target", [0.2, 0.4, 0.5])
def test_ratio_search_reaches_the_flops_target_on_the_slim_model(tiny, target):
    cfg, model, groups, curves = tiny
    sel = select_ratios(model, groups, curves, target, tolerance=0.05)
    slim = slim_model(model, groups, sel.removal)
    reached = 1 - complexity(slim).flops / complexity(model).flops
    assert reached == pytest.approx(sel.reached, abs=1e-12)
    # The tiny model's layers have 4..16 channels, so one channel is a coarse step: 5 points here;
    # the default config's wider layers are held to 1 point by the workflow.
    assert abs(reached - target) <= 0.05
    assert (sel.table["ratio"] <= max(SPARSITIES) + 1e-9).all()
    assert list(sel.table["layer"]) == [g.producer for g in groups]


def test_ratio_search_prunes_insensitive_layers_more(tiny):
    cfg, model, groups, curves = tiny
    fake = curves.copy()
    fragile = groups[0].producer
    fake["drop"] = np.where(fake["layer"] == fragile, 50.0 * fake["sparsity"], 0.1 * fake["sparsity"])
    sel = select_ratios(model, groups, fake, 0.3, tolerance=0.05)
    ratios = sel.table.set_index("layer")["ratio"]
    assert ratios[fragile] == 0.0
    assert ratios.drop(fragile).max() > 0


@pytest.mark.parametrize("floor", [2, 3])
def test_channel_floor_caps_every_layer_and_binds_where_the_curves_allow_more(tiny, floor):
    cfg, model, groups, curves = tiny
    flat = curves.copy()
    flat["drop"] = 0.0  # nothing hurts: every layer may go to the largest analysed sparsity
    free = select_ratios(model, groups, flat, 0.95, tolerance=1.0)
    assert (free.table["kept"] < floor).any()  # without a floor some layer keeps fewer
    sel = select_ratios(model, groups, flat, 0.95, tolerance=1.0, min_channels=floor)
    assert (sel.table["kept"] >= np.minimum(floor, sel.table["channels"])).all()
    assert sel.reached < free.reached and sel.min_channels == floor
    slim = slim_model(model, groups, sel.removal)
    assert min(slim.get_layer(g.producer).filters for g in groups) >= floor
    with pytest.raises(ValueError, match="min_channels"):
        select_ratios(model, groups, flat, 0.3, min_channels=0)


def test_stale_sensitivity_file_is_refused(tiny):
    cfg, model, groups, curves = tiny
    stale = curves.copy()
    stale.loc[stale["layer"] == groups[0].producer, "channels"] += 1
    with pytest.raises(ValueError, match="stale"):
        select_ratios(model, groups, stale, 0.3)


def test_iteration_ratios_compose_multiplicatively_as_in_the_paper():
    assert composed_ratio([0.5, 0.5]) == pytest.approx(0.75)
    assert composed_ratio([0.4, 0.2]) == pytest.approx(0.52)
    assert composed_ratio([0.5, 0.4]) == pytest.approx(0.7)


def _reports(giou, wiou):
    return {"validation": {"global_iou": giou, "weighted_iou": wiou}}


ACC = {"split": "validation", "max_drop": 1.5, "min_global_iou": 90, "min_weighted_iou": 80}


@pytest.mark.parametrize(
    "giou, wiou, passed",
    [(94.0, 84.0, True), (93.5, 84.0, True), (93.4, 84.0, False), (94.0, 83.4, False), (94.0, 79.9, False)],
)
def test_acceptance_needs_both_drops_within_1_5_points_and_both_floors(giou, wiou, passed):
    # Reference 95 / 85: a drop of 1.5 passes, 1.6 fails, on either metric.
    verdict = judge(_reports(95.0, 85.0), _reports(giou, wiou), ACC)
    assert verdict["passed"] is passed


def test_acceptance_floor_fails_a_model_whose_drop_is_small():
    verdict = judge(_reports(90.5, 85.0), _reports(89.5, 85.0), ACC)
    assert verdict["checks"]["global_iou"]["drop"] == pytest.approx(1.0)
    assert not verdict["passed"]
    assert judge(_reports(90.5, 85.0), _reports(89.5, 85.0), dict(ACC, min_global_iou=None))["passed"]
