"""``hsiseu.faults.run``, the Python API on one's own model: the command line's campaign (same
outcomes, same files), from a keras.Model, a .keras file or .tflite bytes; and the example of
docs/own-model.md runs as written."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hsiseu.runtime import configure_tensorflow

configure_tensorflow(1, 0)

import hsiseu.faults  # noqa: E402
from hsiseu.cli import main  # noqa: E402
from hsiseu.faults.stats.aggregate import network_rate, set_mean  # noqa: E402

from conftest import REPO  # noqa: E402
from test_faults_engines import residual_classifier  # noqa: E402

#: the command line's default method (leveugle), spelled out for the API (whose default is adaptive)
#: one worker (in this process) unless a test is about workers
SETTINGS = {"method": "leveugle", "error_margin": 0.3, "bits": [31, 30, 22], "seed": 3, "workers": 1}


def cli_args(model, x, y, out):
    return ["faults-campaign", "--model", str(model), "--images", str(x), "--labels", str(y), "--out", str(out),
            "--error-margin", "0.3", "--bits", "31", "30", "22", "--seed", "3",
            "--checkpoint-faults", "64", "--threads", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    model = residual_classifier(seed=4)
    model.save(d / "my.keras")
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 255, 3], np.uint8)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    assert main(cli_args(d / "my.keras", d / "x.npy", d / "y.npy", d / "cli")) == 0
    return d, model, x, y


def test_run_on_a_keras_model_gives_the_command_lines_outcomes_on_the_same_seed(classifier):
    d, model, x, y = classifier
    result = hsiseu.faults.run(model, x, y, progress=False, **SETTINGS)
    assert result.out is None
    outcomes = pd.read_csv(d / "cli" / "outcomes.csv")
    assert len(outcomes) > 50 and outcomes["changed"].any()
    pd.testing.assert_frame_equal(result.outcomes, outcomes)
    cells = pd.read_csv(d / "cli" / "cells.csv")
    pd.testing.assert_frame_equal(result.cells, cells)
    assert result.set_mean == set_mean(cells) and result.network_rate == network_rate(cells)
    assert result.set_mean["low"] <= result.set_mean["mean"] <= result.set_mean["high"]
    assert list(result.per_set.index) == result.parameter_sets["name"].tolist()
    assert "network_rate" in repr(result)


def test_run_with_out_writes_the_command_lines_files_byte_for_byte_and_resumes(classifier, tmp_path):
    d, _, x, y = classifier
    out = tmp_path / "api"
    result = hsiseu.faults.run(d / "my.keras", x, y, out=out, checkpoint_faults=64, progress=False, **SETTINGS)
    assert result.out == out
    for name in ("parameter_sets.csv", "fault_list.csv", "faults_run.csv", "outcomes.csv", "cells.csv"):
        assert (out / name).read_bytes() == (d / "cli" / name).read_bytes(), name
    again = hsiseu.faults.run(d / "my.keras", x, y, out=out, checkpoint_faults=64, progress=False, **SETTINGS)
    pd.testing.assert_frame_equal(again.outcomes, result.outcomes)
    with pytest.raises(ValueError, match="other settings"):
        hsiseu.faults.run(d / "my.keras", x, y, out=out, progress=False, **{**SETTINGS, "seed": 4})


def test_run_refuses_what_does_not_fit_by_name(classifier, tmp_path):
    _, model, x, _ = classifier
    with pytest.raises(ValueError, match="labels: shape"):
        hsiseu.faults.run(model, x, np.zeros((5, 8, 8), np.uint8), out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="images: expected a non-empty float array"):
        hsiseu.faults.run(model, x.astype(np.int32), progress=False)
    with pytest.raises(TypeError, match="keras.Model"):
        hsiseu.faults.run(object(), x, progress=False)


def test_run_on_tflite_bytes_equals_the_file(tmp_path):
    from test_faults_int8 import CALIB, X, tiny_unet

    from hsiseu.quantization.convert import quantize_int8

    content = quantize_int8(tiny_unet("relu"), CALIB)
    (tmp_path / "m.tflite").write_bytes(content)
    kwargs = dict(fixed_n=2, method="fixed", bits=[7, 31], seed=0, progress=False)
    from_bytes = hsiseu.faults.run(content, X, workers=1, **kwargs)
    from_file = hsiseu.faults.run(tmp_path / "m.tflite", X, workers=1, **kwargs)
    assert set(from_bytes.parameter_sets["dtype"]) == {"int8", "int32"}
    pd.testing.assert_frame_equal(from_bytes.outcomes, from_file.outcomes)
    assert from_bytes.outcomes["changed"].any()
    # two worker processes, the bytes handed over as a file: the same outcomes and cells
    two = hsiseu.faults.run(content, X, workers=2, **kwargs)
    pd.testing.assert_frame_equal(two.outcomes, from_bytes.outcomes)
    pd.testing.assert_frame_equal(two.cells, from_bytes.cells)


def test_two_workers_write_one_workers_files_byte_for_byte_and_resume(classifier, tmp_path):
    d, model, x, y = classifier
    out = tmp_path / "two"
    settings = {**SETTINGS, "method": "adaptive", "workers": 2}
    one = hsiseu.faults.run(model, x, y, out=tmp_path / "one", checkpoint_faults=16, progress=False,
                            **{**settings, "workers": 1})
    two = hsiseu.faults.run(model, x, y, out=out, checkpoint_faults=16, progress=False, **settings)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0-of-1.csv"]
    for name in ("parameter_sets.csv", "fault_list.csv", "faults_run.csv", "outcomes.csv", "cells.csv",
                 "shards/0-of-1.csv"):
        assert (out / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert len(two.outcomes) == len(one.outcomes) and two.outcomes["changed"].any()
    # a second call finds the shard done
    (out / "outcomes.csv").unlink()
    again = hsiseu.faults.run(model, x, y, out=out, checkpoint_faults=16, progress=False, **settings)
    pd.testing.assert_frame_equal(again.outcomes, two.outcomes)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        hsiseu.faults.run(model, x, y, progress=False, **{**settings, "workers": 0})


def test_adaptive_campaign_with_an_enumerated_cell_of_nonzero_outcomes(classifier):
    # an enumerated cell's deterministic range is its exact mean: (0.8 + 4) - 4 once made it empty
    _, model, x, y = classifier
    hsiseu.faults.run(model, x, y, progress=False, **{**SETTINGS, "method": "adaptive"})


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_the_own_model_example_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((REPO / "docs" / "own-model.md").read_text())
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/own-model.md", "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert "network_rate" in capsys.readouterr().out
    assert result.out is not None and (tmp_path / result.out / "cells.csv").is_file()
    assert set(result.cells["bit"]) == {31, 30}
    for stat in (result.set_mean, result.network_rate):
        assert 0 <= stat["low"] <= stat["mean"] <= stat["high"] <= 100


def test_the_chunk_pool_shares_chunks_with_a_worker_process_and_writes_what_this_process_would(classifier, tmp_path):
    """Every chunk file is the one this process writes alone, byte for byte, whichever process
    ran it; this process holds its first chunk back until the worker has delivered one, so the
    worker's part is exercised whatever its start-up costs."""
    import time

    from hsiseu.faults import faultlist
    from hsiseu.faults.api import open_model
    from hsiseu.faults.campaign import chunk_writer
    from hsiseu.faults.workers import ChunkPool

    d, model, x, y = classifier
    listed = faultlist.read(d / "cli" / "fault_list.csv")
    backend = open_model(d / "my.keras", x, {})
    write = chunk_writer(backend, y)
    chunks = [listed.iloc[i:i + 16] for i in range(0, len(listed), 16)]
    alone = tmp_path / "alone"
    alone.mkdir()
    for i, chunk in enumerate(chunks):
        write(chunk, alone / f"{i}.csv")
    shared = tmp_path / "shared"
    shared.mkdir()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    spec = {"model": str(d / "my.keras"), "images": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy"),
            "options": {}, "faults": str(d / "cli" / "fault_list.csv")}
    mine = []

    def here(chunk, path):
        deadline = time.monotonic() + 120
        while not mine and not any(shared.glob("*.csv")) and time.monotonic() < deadline:
            time.sleep(0.05)
        mine.append(path.name)
        write(chunk, path)

    counted = []
    with ChunkPool(spec, 2, tmp_path) as pool:
        pool.run([(chunk, shared / f"{i}.csv") for i, chunk in enumerate(chunks)], here, counted.append)
    assert sum(counted) == len(listed)
    assert 0 < len(mine) < len(chunks)  # both processes ran chunks
    for i in range(len(chunks)):
        assert (shared / f"{i}.csv").read_bytes() == (alone / f"{i}.csv").read_bytes(), i


def test_workers_started_early_for_nothing_are_ended_quietly(classifier, tmp_path, caplog):
    """The campaign starts its workers before it opens the model; when nothing is left to run
    (a finished shard on resume) they are killed unused, and no worker is reported as failed."""
    from hsiseu.faults.workers import ChunkPool

    d, _, x, y = classifier
    spec = {"model": str(d / "my.keras"), "images": str(d / "x.npy"), "labels": str(tmp_path / "not-yet.npy"),
            "options": {}, "faults": str(tmp_path / "not-yet.csv")}
    with caplog.at_level("WARNING", logger="hsiseu.faults.workers"), ChunkPool(spec, 3, tmp_path) as pool:
        pool.start()
        procs = list(pool._procs)
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs) and not pool._procs
    assert "exited early" not in caplog.text


def test_a_chunk_a_dead_worker_leaves_runs_in_this_process(classifier, tmp_path, caplog):
    """A worker that cannot start (here: its model file does not exist) hands its chunk back;
    this process runs every chunk and says which worker exited, with its log."""
    from hsiseu.faults import faultlist
    from hsiseu.faults.workers import ChunkPool

    d, _, x, y = classifier
    listed = faultlist.read(d / "cli" / "fault_list.csv")
    chunks = [listed.iloc[i:i + 64] for i in range(0, len(listed), 64)]
    spec = {"model": str(tmp_path / "missing.keras"), "images": str(d / "x.npy"), "labels": str(d / "y.npy"),
            "options": {}, "faults": str(d / "cli" / "fault_list.csv")}
    ran = []
    with caplog.at_level("WARNING", logger="hsiseu.faults.workers"), ChunkPool(spec, 2, tmp_path) as pool:
        pool.run([(chunk, tmp_path / f"{i}.csv") for i, chunk in enumerate(chunks)],
                 lambda chunk, path: ran.append(path.name), lambda n: None)
    assert sorted(ran) == sorted(f"{i}.csv" for i in range(len(chunks)))
    assert "exited early" in caplog.text and "missing.keras" in caplog.text
