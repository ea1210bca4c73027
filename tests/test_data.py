"""hsiseu.data: the data-set layout, its validation and the streaming input pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hsiseu import data
from hsiseu.data import DatasetError

H, W, B = 8, 12, 25


def _sample(seed: int, h: int = H, w: int = W, b: int = B) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cube = rng.uniform(0.0, 1.0, size=(h, w, b)).astype(np.float32)
    label = rng.integers(0, data.N_LABELS, size=(h, w)).astype(np.uint8)
    return cube, label


def _write_split(root: Path, split: str = "training", n: int = 3, **kwargs: int) -> None:
    for i in range(n):
        cube, label = _sample(i, **kwargs)
        data.write_sample(root, split, f"s{i:02d}", cube, label)


def _cube_path(root: Path, name: str, split: str = "training") -> Path:
    return root / "images" / split / f"{name}.npy"


def _label_path(root: Path, name: str, split: str = "training") -> Path:
    return root / "annotations" / split / f"{name}.png"


# ----------------------------------------------------------------------------- grouping


def test_label_groups_follow_the_hsi_drive_five_class_grouping() -> None:
    assert data.LABEL_GROUPS.dtype == np.uint8
    assert data.LABEL_GROUPS.shape == (data.N_LABELS,)
    expected = {0: data.IGNORE, 1: 0, 2: 1, 3: 2, 5: 3, 4: 4, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4}
    assert {raw: int(data.LABEL_GROUPS[raw]) for raw in range(data.N_LABELS)} == expected
    assert data.CLASS_NAMES == ("Road", "Marks", "Vegetation", "Sky", "Others")
    assert data.SPLITS == ("training", "validation", "test")


def test_group_labels_maps_every_raw_label_and_keeps_shape() -> None:
    raw = np.arange(data.N_LABELS, dtype=np.uint8).reshape(1, -1).repeat(2, axis=0)
    grouped = data.group_labels(raw)
    assert grouped.dtype == np.uint8 and grouped.shape == raw.shape
    np.testing.assert_array_equal(grouped[0], data.LABEL_GROUPS)


def test_group_labels_rejects_values_above_10() -> None:
    with pytest.raises(DatasetError, match="11"):
        data.group_labels(np.array([[1, 11]], dtype=np.uint8))


def test_class_pixel_counts_ignores_ignore_and_counts_absent_classes_as_zero() -> None:
    y = np.array([[0, 0, 255], [2, 255, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(data.class_pixel_counts(y), [3, 0, 1, 0, 0])
    with pytest.raises(ValueError):
        data.class_pixel_counts(np.array([5], dtype=np.uint8))


# ----------------------------------------------------------------------------- round trip


def test_write_then_read_round_trips_cube_and_raw_label(tmp_path: Path) -> None:
    cube, label = _sample(7)
    data.write_sample(tmp_path, "validation", "a", cube, label)
    np.testing.assert_array_equal(data.read_cube(_cube_path(tmp_path, "a", "validation")), cube)
    np.testing.assert_array_equal(data.read_label(_label_path(tmp_path, "a", "validation")), label)
    assert data.split_files(tmp_path, "validation") == [
        (_cube_path(tmp_path, "a", "validation"), _label_path(tmp_path, "a", "validation"))
    ]
    with Image.open(_label_path(tmp_path, "a", "validation")) as image:
        assert image.mode == "L" and image.format == "PNG"


def test_write_sample_leaves_no_temporary_or_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cube, label = _sample(0)
    data.write_sample(tmp_path, "training", "ok", cube, label)
    assert sorted(p.name for p in (tmp_path / "images" / "training").iterdir()) == ["ok.npy"]

    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        data.write_sample(tmp_path, "training", "broken", cube, label)
    assert sorted(p.name for p in (tmp_path / "images" / "training").iterdir()) == ["ok.npy"]


def test_write_sample_rejects_path_like_names(tmp_path: Path) -> None:
    cube, label = _sample(0)
    with pytest.raises(DatasetError, match="name"):
        data.write_sample(tmp_path, "training", "../escape", cube, label)


# ----------------------------------------------------------------------------- bad inputs


def test_wrong_band_count_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1, b=24)
    path = _cube_path(tmp_path, "s00")
    with pytest.raises(DatasetError, match="24 bands") as info:
        data.read_cube(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError) as info:
        data.load_split(tmp_path, "training")
    assert path.name in str(info.value)


def test_cube_of_wrong_rank_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flat.npy"
    np.save(path, np.zeros((4, 25), np.float32))
    with pytest.raises(DatasetError, match="3-D") as info:
        data.read_cube(path)
    assert path.name in str(info.value)


def test_non_finite_cube_names_the_file(tmp_path: Path) -> None:
    cube, label = _sample(0)
    cube[1, 2, 3] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, cube)
    with pytest.raises(DatasetError, match="non-finite") as info:
        data.read_cube(path)
    assert path.name in str(info.value)


def test_cube_label_shape_mismatch_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    Image.fromarray(np.ones((H + 1, W), np.uint8)).save(_label_path(tmp_path, "s00"))
    with pytest.raises(DatasetError, match="differ") as info:
        data.load_sample(_cube_path(tmp_path, "s00"), _label_path(tmp_path, "s00"))
    assert "s00.npy" in str(info.value) and "s00.png" in str(info.value)


def test_label_value_outside_0_to_10_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    label = np.ones((H, W), np.uint8)
    label[0, 0] = 11
    Image.fromarray(label).save(_label_path(tmp_path, "s00"))
    with pytest.raises(DatasetError, match="11") as info:
        data.read_label(_label_path(tmp_path, "s00"))
    assert "s00.png" in str(info.value)
    with pytest.raises(DatasetError) as info:
        data.load_split(tmp_path, "training")
    assert "s00.png" in str(info.value)


def test_colour_label_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    Image.fromarray(np.ones((H, W, 3), np.uint8)).save(path)
    with pytest.raises(DatasetError, match="grayscale") as info:
        data.read_label(path)
    assert path.name in str(info.value)


def test_garbage_npy_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    path = _cube_path(tmp_path, "s00")
    path.write_bytes(b"this is not a numpy file \x00\x01\x02")
    with pytest.raises(DatasetError, match="unreadable") as info:
        data.read_cube(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError) as info:
        data.load_split(tmp_path, "training")
    assert "s00.npy" in str(info.value)


def test_truncated_npy_names_the_file(tmp_path: Path) -> None:
    cube, _ = _sample(0)
    path = tmp_path / "cut.npy"
    np.save(path, cube)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="unreadable") as info:
        data.read_cube(path)
    assert path.name in str(info.value)


def test_garbage_png_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    path = _label_path(tmp_path, "s00")
    path.write_bytes(b"\x89PNG garbage garbage garbage")
    with pytest.raises(DatasetError, match="unreadable") as info:
        data.read_label(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError) as info:
        data.load_split(tmp_path, "training")
    assert "s00.png" in str(info.value)


def test_empty_split_names_the_directory(tmp_path: Path) -> None:
    (tmp_path / "images" / "test").mkdir(parents=True)
    (tmp_path / "annotations" / "test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="empty") as info:
        data.split_files(tmp_path, "test")
    assert str(tmp_path / "images" / "test") in str(info.value)


def test_missing_split_directory_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing") as info:
        data.split_files(tmp_path, "validation")
    assert str(tmp_path / "images" / "validation") in str(info.value)


def test_unknown_split_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="train"):
        data.split_files(tmp_path, "train")


def test_missing_label_names_the_cube(tmp_path: Path) -> None:
    _write_split(tmp_path, n=2)
    _label_path(tmp_path, "s01").unlink()
    with pytest.raises(DatasetError, match="without label") as info:
        data.split_files(tmp_path, "training")
    assert "s01.npy" in str(info.value)


def test_missing_cube_names_the_label(tmp_path: Path) -> None:
    _write_split(tmp_path, n=2)
    _cube_path(tmp_path, "s00").unlink()
    with pytest.raises(DatasetError, match="without cube") as info:
        data.split_files(tmp_path, "training")
    assert "s00.png" in str(info.value)


# ----------------------------------------------------------------------------- crop / bands


def test_crop_is_centred_and_bands_are_selected_in_the_given_order(tmp_path: Path) -> None:
    cube, label = _sample(3)
    data.write_sample(tmp_path, "training", "c", cube, label)
    x, y = data.load_sample(
        _cube_path(tmp_path, "c"), _label_path(tmp_path, "c"), bands=[5, 0, 24], crop=(4, 6)
    )
    assert x.shape == (4, 6, 3) and x.dtype == np.float32
    assert y.shape == (4, 6) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, cube[2:6, 3:9][:, :, [5, 0, 24]])
    np.testing.assert_array_equal(y, data.LABEL_GROUPS[label[2:6, 3:9]])


def test_crop_larger_than_image_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    with pytest.raises(DatasetError, match="smaller than the crop") as info:
        data.load_sample(_cube_path(tmp_path, "s00"), _label_path(tmp_path, "s00"), crop=(H + 2, W))
    assert "s00.npy" in str(info.value)


def test_band_index_out_of_range_is_rejected(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    with pytest.raises(ValueError, match="25"):
        data.load_sample(_cube_path(tmp_path, "s00"), _label_path(tmp_path, "s00"), bands=[25])


def test_load_split_stacks_samples_in_name_order(tmp_path: Path) -> None:
    _write_split(tmp_path, n=3)
    x, y = data.load_split(tmp_path, "training")
    assert x.shape == (3, H, W, B) and x.dtype == np.float32
    assert y.shape == (3, H, W) and y.dtype == np.uint8
    for i in range(3):
        cube, label = _sample(i)
        np.testing.assert_array_equal(x[i], cube)
        np.testing.assert_array_equal(y[i], data.LABEL_GROUPS[label])


def test_load_split_of_differing_sizes_names_the_file_unless_cropped(tmp_path: Path) -> None:
    _write_split(tmp_path, n=1)
    cube, label = _sample(9, h=H + 2)
    data.write_sample(tmp_path, "training", "s99", cube, label)
    with pytest.raises(DatasetError, match="differs") as info:
        data.load_split(tmp_path, "training")
    assert "s99.npy" in str(info.value)
    x, _ = data.load_split(tmp_path, "training", crop=(H, W))
    assert x.shape == (2, H, W, B)


# ----------------------------------------------------------------------------- tf.data


def test_make_dataset_yields_the_same_arrays_as_load_split(tmp_path: Path) -> None:
    _write_split(tmp_path, n=3)
    kwargs = {"bands": [1, 3, 20], "crop": (6, 10)}
    x, y = data.load_split(tmp_path, "training", **kwargs)
    dataset = data.make_dataset(tmp_path, "training", batch_size=2, **kwargs)
    batches = [(bx.numpy(), by.numpy()) for bx, by in dataset]
    assert [bx.shape for bx, _ in batches] == [(2, 6, 10, 3), (1, 6, 10, 3)]
    assert all(bx.dtype == np.float32 and by.dtype == np.uint8 for bx, by in batches)
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), x)
    np.testing.assert_array_equal(np.concatenate([by for _, by in batches]), y)
    assert dataset.element_spec[0].shape.as_list() == [None, 6, 10, 3]


def test_make_dataset_shuffle_is_a_deterministic_permutation_for_a_seed(tmp_path: Path) -> None:
    _write_split(tmp_path, n=5, h=2, w=2)
    x, _ = data.load_split(tmp_path, "training")

    def order(seed: int) -> list[int]:
        dataset = data.make_dataset(tmp_path, "training", batch_size=5, shuffle=True, seed=seed)
        batch = next(iter(dataset))[0].numpy()
        return [int(np.flatnonzero((x == sample).all(axis=(1, 2, 3)))[0]) for sample in batch]

    first = order(1)
    assert sorted(first) == list(range(5))
    assert order(1) == first
    assert any(order(s) != first for s in (2, 3, 4))


def test_make_dataset_rejects_a_wrong_band_count_before_training_names_the_file(
    tmp_path: Path,
) -> None:
    _write_split(tmp_path, n=2)
    cube, label = _sample(5, b=24)
    data.write_sample(tmp_path, "training", "s01", cube, label)
    with pytest.raises(DatasetError) as info:
        data.make_dataset(tmp_path, "training", batch_size=2)
    assert "s01.npy" in str(info.value)


def test_make_dataset_validates_contents_as_it_reads_and_names_the_file(tmp_path: Path) -> None:
    _write_split(tmp_path, n=2)
    label = np.ones((H, W), np.uint8)
    label[0, 0] = 42
    Image.fromarray(label).save(_label_path(tmp_path, "s01"))
    dataset = data.make_dataset(tmp_path, "training", batch_size=1)
    with pytest.raises(Exception) as info:  # TensorFlow wraps the DatasetError
        for _ in dataset:
            pass
    message = str(info.value)
    assert "DatasetError" in message and "s01.png" in message and "42" in message


def test_describe_dataset_counts_every_split_and_names_a_bad_file(tmp_path):
    from hsiseu.data import describe_dataset

    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for split in ("training", "validation", "test"):
        for i in range(2):
            label = np.zeros((8, 16), np.uint8)
            label[:4] = 1  # road
            label[4:, 4:8] = 5  # sky, inside the centre crop (columns 4..11)
            data.write_sample(root, split, f"s{i}", rng.random((8, 16, 25), dtype=np.float32), label)
    info = describe_dataset(root, crop=(8, 8))
    assert info["input_shape"] == [8, 8, 25]
    test = info["splits"]["test"]
    assert test["images"] == 2 and test["class_pixels"]["Road"] == 2 * 32 and test["class_pixels"]["Sky"] == 2 * 16
    assert test["ignored_pixels"] == 2 * 16
    (root / "images" / "test" / "s1.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="s1.npy"):
        describe_dataset(root)
