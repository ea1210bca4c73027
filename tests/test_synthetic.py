"""hsiseu.spectra and hsiseu.synthetic: measured spectra and the synthetic HSI-Drive stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hsiseu import data, spectra, synthetic

SIZE = {"height": 64, "width": 128}
COUNTS = {"n_train": 8, "n_val": 2, "n_test": 2}
BAND_670 = int(np.argmin(np.abs(spectra.CAMERA_WAVELENGTHS_NM - 670)))
BAND_800 = int(np.argmin(np.abs(spectra.CAMERA_WAVELENGTHS_NM - 800)))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    summary = synthetic.generate_dataset(root, seed=11, **COUNTS, **SIZE)
    return root, summary


# ----------------------------------------------------------------------------- spectra


def test_earthlib_library_has_7261_spectra_on_its_documented_wavelengths() -> None:
    wavelengths, library, labels = spectra.load_library()
    assert library.shape == (7261, 180) and library.dtype == np.float32
    assert len(labels) == 7261 and {"LEVEL_1", "LEVEL_2", "LEVEL_3", "LEVEL_4"} <= set(labels)
    assert wavelengths[0] == pytest.approx(400.0) and wavelengths[-1] == pytest.approx(2450.0)
    visible_nir = wavelengths[wavelengths <= 1350.0]
    np.testing.assert_allclose(np.diff(visible_nir), 10.0, atol=1e-6)  # gap-free over the camera
    assert np.isfinite(library).all()


def test_material_spectra_are_resampled_to_the_25_camera_bands() -> None:
    assert spectra.CAMERA_WAVELENGTHS_NM.shape == (25,)
    assert spectra.CAMERA_WAVELENGTHS_NM[[0, -1]].tolist() == [600.0, 975.0]
    for material in spectra.MATERIALS:
        values = spectra.material_spectra(material)
        assert values.ndim == 2 and values.shape[1] == 25 and values.shape[0] >= 2, material
        assert values.dtype == np.float32 and np.isfinite(values).all()
    assert spectra.material_spectra("road") is spectra.material_spectra("road")  # cached
    with pytest.raises(ValueError):
        spectra.material_spectra("road")[0, 0] = 1.0  # read-only: the cache cannot be corrupted


def test_resampling_is_linear_interpolation_on_the_library_grid() -> None:
    wavelengths, library, _ = spectra.load_library()
    ramp = wavelengths[None, :] / 1000.0
    np.testing.assert_allclose(
        spectra.resample(ramp, wavelengths)[0], spectra.CAMERA_WAVELENGTHS_NM / 1000.0, rtol=1e-6
    )
    on_grid = np.array([600.0, 700.0, 970.0])
    expected = library[:3][:, np.searchsorted(wavelengths, on_grid)]
    np.testing.assert_allclose(spectra.resample(library[:3], wavelengths, on_grid), expected)
    with pytest.raises(spectra.SpectraError, match="gap"):
        spectra.resample(library[:1], wavelengths, np.array([1400.0]))
    with pytest.raises(spectra.SpectraError, match="outside"):
        spectra.resample(library[:1], wavelengths, np.array([350.0]))


def test_measured_canopy_has_a_red_edge_and_paint_is_brighter_than_road() -> None:
    canopy = spectra.material_spectra("vegetation")
    assert np.median(canopy[:, BAND_800] / canopy[:, BAND_670]) > 5.0
    assert np.median(spectra.material_spectra("paint")) > 2 * np.median(
        spectra.material_spectra("road")
    )


# ----------------------------------------------------------------------------- synthetic


def test_same_seed_gives_byte_identical_output_and_another_seed_differs(tmp_path: Path) -> None:
    kwargs = {"n_train": 3, "n_val": 1, "n_test": 1, "height": 32, "width": 64}
    synthetic.generate_dataset(tmp_path / "a", seed=5, **kwargs)
    synthetic.generate_dataset(tmp_path / "b", seed=5, **kwargs)
    synthetic.generate_dataset(tmp_path / "c", seed=6, **kwargs)
    a, b, c = (_tree_bytes(tmp_path / name) for name in "abc")
    assert len(a) == 2 * 5 + 1
    assert a == b
    assert a.keys() == c.keys()
    differing = [name for name in a if name != "summary.json" and a[name] != c[name]]
    assert len(differing) == 2 * 5


def test_an_image_does_not_depend_on_how_many_images_are_generated(tmp_path: Path) -> None:
    """Image i of a split is a function of (seed, split, i) alone: a data set generated with more
    images in every split holds the smaller one's images byte for byte, under the same names."""
    kwargs = {"seed": 3, "height": 32, "width": 64}
    synthetic.generate_dataset(tmp_path / "small", n_train=2, n_val=1, n_test=1, **kwargs)
    synthetic.generate_dataset(tmp_path / "large", n_train=5, n_val=3, n_test=2, **kwargs)
    for split in data.SPLITS:
        small = data.split_files(tmp_path / "small", split)
        large = data.split_files(tmp_path / "large", split)
        assert len(large) > len(small)
        for (cube_s, label_s), (cube_l, label_l) in zip(small, large):
            assert (cube_s.name, label_s.name) == (cube_l.name, label_l.name)
            assert cube_s.read_bytes() == cube_l.read_bytes(), cube_s
            assert label_s.read_bytes() == label_l.read_bytes(), label_s
    # and each one is generate_image's, regenerated alone
    cube, label = synthetic.generate_image(3, "training", 1, 32, 64)
    cube_path, label_path = data.split_files(tmp_path / "large", "training")[1]
    np.testing.assert_array_equal(data.read_cube(cube_path), cube)
    np.testing.assert_array_equal(data.read_label(label_path), label)
    cube_again, _ = synthetic.generate_image(3, "training", 1, 32, 64)
    np.testing.assert_array_equal(cube, cube_again)
    other_split, _ = synthetic.generate_image(3, "validation", 1, 32, 64)
    assert not np.array_equal(cube, other_split)


def test_layout_is_readable_by_load_split_with_all_five_classes_in_training(
    generated: tuple[Path, dict],
) -> None:
    root, _ = generated
    for split, n in zip(data.SPLITS, COUNTS.values()):
        x, y = data.load_split(root, split)
        assert x.shape == (n, 64, 128, 25) and x.dtype == np.float32
        assert y.shape == (n, 64, 128)
        assert np.isfinite(x).all() and x.min() >= 0.0
    _, y = data.load_split(root, "training")
    assert (data.class_pixel_counts(y) > 0).all()
    assert (y == data.IGNORE).any()  # some pixels are left unlabelled, as in HSI-Drive


def test_class_imbalance_road_dominant_and_marks_rare(generated: tuple[Path, dict]) -> None:
    root, _ = generated
    _, y = data.load_split(root, "training")
    counts = data.class_pixel_counts(y)
    fractions = counts / y.size
    assert counts.argmax() == 0  # Road
    assert 0.3 < fractions[0] < 0.55
    assert 0.005 < fractions[1] < 0.05  # Marks


def test_summary_json_records_parameters_and_label_fractions(generated: tuple[Path, dict]) -> None:
    root, summary = generated
    on_disk = json.loads((root / "summary.json").read_text())
    assert on_disk == summary
    for key, value in {"seed": 11, **COUNTS, **SIZE, "bands": 25}.items():
        assert summary["parameters"][key] == value, key
    for split in data.SPLITS:
        raw = np.stack([data.read_label(lab) for _, lab in data.split_files(root, split)])
        fractions = summary["splits"][split]["label_fractions"]
        expected = np.bincount(raw.ravel(), minlength=data.N_LABELS) / raw.size
        np.testing.assert_allclose([fractions[str(k)] for k in range(11)], expected, atol=1e-6)
        assert sum(summary["splits"][split]["class_fractions"].values()) == pytest.approx(1.0)


def test_pixel_spectra_have_25_bands_and_classes_differ_as_measured(
    generated: tuple[Path, dict],
) -> None:
    root, _ = generated
    x, y = data.load_split(root, "training")
    assert x.shape[-1] == 25
    vegetation = x[y == 2]
    ratio = vegetation[:, BAND_800] / np.maximum(vegetation[:, BAND_670], 1e-6)
    assert np.median(ratio) > 2.0 and (ratio > 2.0).mean() > 0.9  # red edge
    road, marks, sky = x[y == 0], x[y == 1], x[y == 3]
    assert np.median(marks.mean(axis=1)) > 2 * np.median(road.mean(axis=1))  # paint is bright
    assert np.median(sky[:, 0]) > np.median(sky[:, -1])  # sky falls into the NIR


def test_scenes_vary_between_images(generated: tuple[Path, dict]) -> None:
    root, _ = generated
    _, y = data.load_split(root, "training")
    sky_rows = [(img == 3).any(axis=1).sum() for img in y]
    road_share = [(img == 0).mean() for img in y]
    assert len(set(sky_rows)) > 3 and np.std(road_share) > 0.02
    assert len({img.tobytes() for img in y}) == len(y)


def test_lane_marks_are_at_least_three_pixels_wide_at_128_px(
    generated: tuple[Path, dict],
) -> None:
    root, _ = generated
    _, y = data.load_split(root, "training")
    widths = []
    for img in y:
        for row in (img == 1):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
            widths.extend(edges[1::2] - edges[::2])
    assert widths and np.median(widths) >= 3


def test_regeneration_into_the_same_root_drops_stale_samples(tmp_path: Path) -> None:
    kwargs = {"n_val": 1, "n_test": 1, "height": 32, "width": 64}
    synthetic.generate_dataset(tmp_path, seed=0, n_train=3, **kwargs)
    synthetic.generate_dataset(tmp_path, seed=0, n_train=2, **kwargs)
    assert len(data.split_files(tmp_path, "training")) == 2


def test_invalid_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_val"):
        synthetic.generate_dataset(tmp_path, seed=0, n_train=1, n_val=0, n_test=1, **SIZE)
    with pytest.raises(ValueError, match="16x16"):
        synthetic.generate_dataset(tmp_path, seed=0, n_train=1, n_val=1, n_test=1, height=8,
                                   width=64)
