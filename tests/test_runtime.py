"""Which TensorFlow build is installed, read from real distribution metadata: this environment's,
plus dist-info directories put on sys.path the way pip would write them."""

from __future__ import annotations

import pytest

from hsiseu import cluster
from hsiseu.runtime import check_single_tensorflow, tensorflow_can_use_gpu, tensorflow_distributions


def _dist(root, name: str, version: str = "1.0") -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_this_environment_has_exactly_one_tensorflow():
    assert len(tensorflow_distributions()) == 1
    check_single_tensorflow()


def test_a_second_build_side_by_side_is_refused_naming_the_fix(tmp_path, monkeypatch):
    other = "tensorflow" if tensorflow_distributions() == ["tensorflow-cpu"] else "tensorflow-cpu"
    _dist(tmp_path, other, "2.21.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(tensorflow_distributions()) == {"tensorflow", "tensorflow-cpu"}
    with pytest.raises(RuntimeError, match=r"pip uninstall -y tensorflow tensorflow-cpu"):
        check_single_tensorflow()
    assert not tensorflow_can_use_gpu()


def test_gpu_only_with_the_cuda_libraries_of_the_gpu_extra(tmp_path, monkeypatch):
    monkeypatch.delenv(cluster.GPUS_ENV, raising=False)
    if tensorflow_distributions() != ["tensorflow"]:
        pytest.skip("this environment has tensorflow-cpu, which never uses a GPU")
    can = tensorflow_can_use_gpu()
    assert cluster.requested_gpus() == (1 if can else 0)
    if not can:
        _dist(tmp_path, "nvidia-cudnn-cu12", "9.28.0.42")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert tensorflow_can_use_gpu()
        assert cluster.requested_gpus() == 1
