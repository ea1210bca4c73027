"""The backoff search (largest passing FLOPs target in few fine-tunes) and the acceptance-aware
choice of the fine-tuned epoch, on stub judges: no model is trained here."""

from __future__ import annotations

import pytest

from hsiseu.pruning.acceptance import judge, margin
from hsiseu.pruning.finetune import epoch_key
from hsiseu.pruning.search import best_passing, next_target


def _run(requested, passes, *, step=0.05, max_attempts=3, refine=True):
    """Drive the search with a judge ``passes(target) -> bool``; the (target, passed) trail."""
    tried = []
    while (t := next_target(requested, tried, step=step, max_attempts=max_attempts, refine=refine)) is not None:
        tried.append((t, bool(passes(t))))
        assert len(tried) <= 50, "the search does not stop"
    return tried


def test_search_tries_the_requested_target_first_and_stops_when_it_passes():
    tried = _run(0.5, lambda t: True)
    assert tried == [(0.5, True)]
    assert best_passing(tried) == 0


def test_search_bisects_between_last_pass_and_first_fail():
    # True limit 0.3: 0.5 fails, 0.25 passes, 0.35 (0.375 snapped to the 0.05 grid) fails.
    tried = _run(0.5, lambda t: t <= 0.3 + 1e-12, max_attempts=3)
    assert [t for t, _ in tried] == [0.5, 0.25, 0.35]
    assert tried[best_passing(tried)] == (0.25, True)


@pytest.mark.parametrize("max_attempts", [2, 3, 4, 6])
@pytest.mark.parametrize("limit", [0.02, 0.11, 0.26, 0.33, 0.41, 0.49])
def test_search_is_bounded_and_gets_within_its_bracket_of_the_limit(limit, max_attempts):
    """On a monotone judge (targets up to ``limit`` pass) the search never exceeds its attempts,
    keeps only passing targets, and with enough attempts ends one grid step below the limit."""
    step = 0.05
    tried = _run(0.5, lambda t: t <= limit + 1e-12, step=step, max_attempts=max_attempts)
    assert 1 <= len(tried) <= max_attempts
    assert len({t for t, _ in tried}) == len(tried)  # no target tried twice
    assert all((t <= limit + 1e-12) == ok for t, ok in tried)
    best = best_passing(tried)
    if max_attempts >= 6:  # 0.5 -> bisection over a 0.05 grid: 5 halvings reach one step
        assert best is not None or limit < step
        if best is not None:
            assert limit - step < tried[best][0] + 1e-12
    # Bisection: with k attempts the kept target is within 0.5 / 2^(k-1) of the limit, plus one
    # grid step for the snapping, whenever something passed.
    if best is not None:
        assert limit - tried[best][0] <= 0.5 / 2 ** (len(tried) - 1) + step + 1e-9


def test_search_gives_up_when_nothing_passes_within_its_attempts():
    tried = _run(0.5, lambda t: False, max_attempts=3)
    assert [t for t, _ in tried] == [0.5, 0.25, 0.1]  # 0.125 snaps to 0.1 (ties go down)
    assert best_passing(tried) is None


@pytest.mark.parametrize("limit, expected", [(0.3, [0.5, 0.25]), (0.2, [0.5, 0.25, 0.1]), (0.05, [0.5, 0.25, 0.1])])
def test_search_without_refinement_halves_until_the_first_pass(limit, expected):
    tried = _run(0.5, lambda t: t <= limit + 1e-12, max_attempts=3, refine=False)
    assert [t for t, _ in tried] == expected
    best = best_passing(tried)
    assert (best is None) == (limit < 0.1)
    if best is not None:
        assert best == len(tried) - 1  # the last attempt is the first pass: no fine-tune after it


def test_search_stops_when_the_bracket_is_one_step_wide():
    assert next_target(0.5, [(0.5, False), (0.45, True)], step=0.05, max_attempts=10) is None
    assert next_target(0.5, [(0.5, False), (0.4, True)], step=0.05, max_attempts=10) == 0.45


def test_best_passing_is_the_largest_passing_target():
    assert best_passing([(0.5, False), (0.25, True), (0.35, True), (0.4, False)]) == 2
    assert best_passing([(0.5, False), (0.35, True), (0.25, True)]) == 1  # not the last pass
    assert best_passing([(0.5, False), (0.25, True), (0.25, True)]) == 1  # the first of equals
    assert best_passing([(0.5, False)]) is None


REF = {"validation": {"global_iou": 95.0, "weighted_iou": 85.0}}
ACC = {"split": "validation", "max_drop": 1.5, "min_global_iou": None, "min_weighted_iou": None}


def test_margin_is_the_tightest_check():
    verdict = judge(REF, {"validation": {"global_iou": 94.0, "weighted_iou": 82.0}}, ACC)
    assert margin(verdict) == pytest.approx(-1.5)  # WIoU drops 3 of 1.5
    candidate = {"validation": {"global_iou": 94.5, "weighted_iou": 84.0}}
    verdict = judge(REF, candidate, dict(ACC, min_weighted_iou=83.5))
    assert margin(verdict) == pytest.approx(0.5)  # GIoU slack 1.0, WIoU slack 0.5, floor slack 0.5


def test_fine_tune_keeps_a_passing_epoch_over_one_with_a_better_monitor():
    # Epoch A: best Global IoU, Weighted IoU 12 points down (the default ReLU's epoch 6);
    # epoch B: Global IoU a little lower, both within 1.5 points.
    a = {"global_iou": 94.9, "weighted_iou": 73.0}
    b = {"global_iou": 94.0, "weighted_iou": 84.0}
    key = lambda ious: epoch_key(ious, ious["global_iou"], "max", REF, ACC)  # noqa: E731
    assert key(b) > key(a)
    # Among failing epochs, the one closest to passing; among passing ones, the monitor.
    assert key({"global_iou": 90.0, "weighted_iou": 84.0}) > key(a)
    assert key({"global_iou": 94.5, "weighted_iou": 84.0}) > key(b)
    # Without a reference (rule measured on the test split), the monitor alone decides.
    plain = lambda ious: epoch_key(ious, ious["global_iou"], "max", None, None)  # noqa: E731
    assert plain(a) > plain(b)
    # A loss monitor is minimised.
    assert epoch_key(b, 0.1, "min", REF, ACC) > epoch_key(b, 0.2, "min", REF, ACC)
