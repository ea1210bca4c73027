"""``hsiseu faults-campaign`` on a user's own model and data, outside the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hsiseu.runtime import configure_tensorflow

configure_tensorflow(1, 0)

from hsiseu.cli import main  # noqa: E402
from hsiseu.faults import faultlist  # noqa: E402

from test_faults_engines import residual_classifier  # noqa: E402


def test_campaign_on_a_users_classifier_writes_the_pipelines_files_and_resumes(tmp_path, capsys):
    model = residual_classifier(seed=4)
    model.save(tmp_path / "my.keras")
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 255, 3], np.uint8))
    args = ["faults-campaign", "--model", str(tmp_path / "my.keras"), "--images", str(tmp_path / "x.npy"),
            "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "out"), "--fixed-n", "2",
            "--bits", "31", "30", "22", "--checkpoint-faults", "16", "--threads", "1"]
    assert main(args) == 0
    out = tmp_path / "out"
    sets = pd.read_csv(out / "parameter_sets.csv")
    listed = faultlist.read(out / "fault_list.csv")
    outcomes = pd.read_csv(out / "outcomes.csv")
    cells = pd.read_csv(out / "cells.csv")
    assert len(sets) == len(model.trainable_variables)
    assert outcomes["fault"].tolist() == listed["fault"].tolist()
    assert set(cells["bit"]) == {31, 30, 22} and (cells["n"] <= 2).all()
    # one image of five is unlabelled: labelled error rates are over four
    assert set(np.round(outcomes["error_rate"] / 20, 6)) <= set(range(6))
    assert outcomes["changed"].any()
    before = (out / "outcomes.csv").read_bytes()
    assert main(args) == 0  # a second run finds the campaign done and rewrites the same files
    assert (out / "outcomes.csv").read_bytes() == before
    with pytest.raises(SystemExit):
        main([*args[:-6], "--fixed-n", "3", "--threads", "1"])
    assert "other settings" in capsys.readouterr().err


def test_campaign_refuses_bad_inputs_by_name(tmp_path, capsys):
    model = residual_classifier()
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "ints.npy", np.zeros((2, 8, 8, 3), np.int32))
    base = ["faults-campaign", "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o")]
    for images, message in ((tmp_path / "missing.npy", "missing.npy: no such file"),
                            (tmp_path / "ints.npy", "expected a non-empty float array")):
        with pytest.raises(SystemExit):
            main([*base, "--images", str(images)])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
