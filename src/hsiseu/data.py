"""The HSI-Drive v2.0 data set on disk: the one module that knows file formats.

Layout (the synthetic stand-in is written in exactly this layout, so that swapping in the
real data set changes a path in the config and nothing else)::

    <root>/images/{training,validation,test}/<name>.npy       cube (H, W, 25) float32 reflectance
    <root>/annotations/{training,validation,test}/<name>.png  label, 8-bit grayscale, 0..10

Every reader validates what it reads and raises :class:`DatasetError` naming the file, because
a bad file found three hours into a training run (or, worse, silently turned into garbage
labels) costs far more than the check.

Classes: HSI-Drive labels 0 unlabelled, 1 road, 2 road marks, 3 vegetation, 4 painted metal,
5 sky, 6 concrete/stone/brick, 7 pedestrian/cyclist, 8 water, 9 unpainted metal, 10 glass are
grouped into the study's five classes Road, Marks, Vegetation, Sky, Others; unlabelled pixels
become :data:`IGNORE` and take no part in training or metrics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from hsiseu.io import atomic_path

if TYPE_CHECKING:  # TensorFlow's import takes seconds; only make_dataset needs it.
    import tensorflow as tf

SPLITS: tuple[str, ...] = ("training", "validation", "test")
#: Number of raw HSI-Drive v2.0 labels (0..10).
N_LABELS: int = 11
CLASS_NAMES: tuple[str, ...] = ("Road", "Marks", "Vegetation", "Sky", "Others")
#: Grouped label of pixels that count nowhere (HSI-Drive's "unlabelled").
IGNORE: int = 255

#: Raw HSI-Drive label -> five-class label (index = raw label).
LABEL_GROUPS: np.ndarray = np.array(
    [
        IGNORE,  # 0 unlabelled
        0,  # 1 road -> Road
        1,  # 2 road marks -> Marks
        2,  # 3 vegetation -> Vegetation
        4,  # 4 painted metal -> Others
        3,  # 5 sky -> Sky
        4,  # 6 concrete/stone/brick -> Others
        4,  # 7 pedestrian/cyclist -> Others
        4,  # 8 water -> Others
        4,  # 9 unpainted metal -> Others
        4,  # 10 glass -> Others
    ],
    dtype=np.uint8,
)
LABEL_GROUPS.setflags(write=False)

CUBE_SUFFIX = ".npy"
LABEL_SUFFIX = ".png"
_IMAGES = "images"
_ANNOTATIONS = "annotations"


class DatasetError(ValueError):
    """A data-set file or directory is missing or malformed; the message names it."""


# --------------------------------------------------------------------------- labels


def group_labels(labels: np.ndarray) -> np.ndarray:
    """Map raw labels 0..10 to the five classes (0..4) and IGNORE.

    Out-of-range values are an error rather than IGNORE: they mean a wrong file or a wrong
    label convention, which should stop a run, not quietly shrink the training set.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= N_LABELS):
        bad = np.unique(labels[(labels < 0) | (labels >= N_LABELS)])
        raise DatasetError(f"label values {bad[:10].tolist()} outside 0..{N_LABELS - 1}")
    return LABEL_GROUPS[labels.astype(np.intp, copy=False)]


def class_pixel_counts(y: np.ndarray, n_classes: int = 5) -> np.ndarray:
    """Pixels per grouped class, IGNORE excluded: the basis of the class weights and WIoU."""
    y = np.asarray(y)
    valid = y[y != IGNORE]
    if valid.size and (valid.min() < 0 or valid.max() >= n_classes):
        raise ValueError(
            f"grouped labels must be 0..{n_classes - 1} or {IGNORE}; found "
            f"{np.unique(valid[(valid < 0) | (valid >= n_classes)])[:10].tolist()}"
        )
    return np.bincount(valid.ravel().astype(np.intp), minlength=n_classes).astype(np.int64)


# --------------------------------------------------------------------------- files


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def split_files(root: str | os.PathLike[str], split: str) -> list[tuple[Path, Path]]:
    """(cube, label) path pairs of a split, sorted by name so that order never depends on the
    file system. Unpaired files are errors: a silently dropped sample changes the metrics."""
    _check_split(split)
    root = Path(root)
    image_dir = root / _IMAGES / split
    label_dir = root / _ANNOTATIONS / split
    for directory in (image_dir, label_dir):
        if not directory.is_dir():
            raise DatasetError(f"{directory}: split directory missing")
    cubes = {p.stem: p for p in image_dir.iterdir() if p.suffix == CUBE_SUFFIX and p.is_file()}
    labels = {p.stem: p for p in label_dir.iterdir() if p.suffix == LABEL_SUFFIX and p.is_file()}
    if not cubes and not labels:
        raise DatasetError(
            f"{image_dir}: empty split (no *{CUBE_SUFFIX} cubes here and no *{LABEL_SUFFIX} "
            f"labels in {label_dir})"
        )
    for stem in sorted(cubes.keys() - labels.keys()):
        raise DatasetError(
            f"{cubes[stem]}: cube without label (expected {label_dir / (stem + LABEL_SUFFIX)})"
        )
    for stem in sorted(labels.keys() - cubes.keys()):
        raise DatasetError(
            f"{labels[stem]}: label without cube (expected {image_dir / (stem + CUBE_SUFFIX)})"
        )
    return [(cubes[stem], labels[stem]) for stem in sorted(cubes)]


def read_cube(path: str | os.PathLike[str], expected_bands: int = 25) -> np.ndarray:
    """Load one reflectance cube, (H, W, B) float32, refusing anything a model should not see."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            # np.load would try to unpickle a non-.npy file and report a misleading reason.
            if handle.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise ValueError("not a .npy file (bad magic bytes)")
            handle.seek(0)
            cube = np.lib.format.read_array(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: unreadable cube ({type(exc).__name__}: {exc})") from exc
    if cube.ndim != 3:
        raise DatasetError(f"{path}: cube must be 3-D (H, W, bands); got shape {cube.shape}")
    if cube.shape[2] != expected_bands:
        raise DatasetError(
            f"{path}: cube has {cube.shape[2]} bands, expected {expected_bands} "
            f"(shape {cube.shape})"
        )
    if not (np.issubdtype(cube.dtype, np.floating) or np.issubdtype(cube.dtype, np.integer)):
        raise DatasetError(f"{path}: cube dtype {cube.dtype} is not a real number type")
    cube = cube.astype(np.float32, copy=False)
    if not np.isfinite(cube).all():
        n_bad = int(np.count_nonzero(~np.isfinite(cube)))
        raise DatasetError(f"{path}: cube holds {n_bad} non-finite values (NaN/Inf)")
    return cube


def read_label(path: str | os.PathLike[str]) -> np.ndarray:
    """Load one raw label image, (H, W) uint8 with values 0..10 (not yet grouped)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            label = np.array(image)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad bytes
        raise DatasetError(f"{path}: unreadable label image ({type(exc).__name__}: {exc})") from exc
    if mode != "L" or label.ndim != 2:
        raise DatasetError(
            f"{path}: label must be an 8-bit grayscale (mode 'L') image; got mode {mode!r}, "
            f"array shape {label.shape}"
        )
    label = label.astype(np.uint8, copy=False)
    if label.size and label.max() >= N_LABELS:
        bad = np.unique(label[label >= N_LABELS])
        raise DatasetError(
            f"{path}: label values {bad[:10].tolist()} outside 0..{N_LABELS - 1}"
        )
    return label


def write_sample(
    root: str | os.PathLike[str],
    split: str,
    name: str,
    cube: np.ndarray,
    label: np.ndarray,
) -> None:
    """Write one (cube, raw label) pair in the data-set layout; validated so that whatever is
    written can be read back by :func:`load_sample`."""
    _check_split(split)
    if not name or name != Path(name).name or name.startswith("."):
        raise DatasetError(f"sample name {name!r} must be a plain, non-hidden file name")
    cube = np.asarray(cube)
    label = np.asarray(label)
    if cube.ndim != 3:
        raise DatasetError(f"sample {name!r}: cube must be 3-D (H, W, bands); got {cube.shape}")
    if not np.isfinite(cube).all():
        raise DatasetError(f"sample {name!r}: cube holds non-finite values")
    if label.ndim != 2 or label.shape != cube.shape[:2]:
        raise DatasetError(
            f"sample {name!r}: label shape {label.shape} does not match cube H, W {cube.shape[:2]}"
        )
    if label.size and (label.min() < 0 or label.max() >= N_LABELS):
        raise DatasetError(f"sample {name!r}: label values outside 0..{N_LABELS - 1}")
    cube = np.ascontiguousarray(cube, dtype=np.float32)
    label = np.ascontiguousarray(label, dtype=np.uint8)

    root = Path(root)
    image_dir = root / _IMAGES / split
    label_dir = root / _ANNOTATIONS / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    # Atomic, so that readers (and a killed Snakemake job) never see a half-written sample.
    with atomic_path(image_dir / (name + CUBE_SUFFIX)) as tmp:
        np.save(tmp, cube, allow_pickle=False)
    with atomic_path(label_dir / (name + LABEL_SUFFIX)) as tmp:
        Image.fromarray(label).save(tmp, format="PNG")


# --------------------------------------------------------------------------- samples


def _check_bands(bands: Sequence[int] | None, expected_bands: int) -> list[int] | None:
    if bands is None:
        return None
    bands = [int(b) for b in bands]
    if not bands:
        raise ValueError("bands must be None (all) or a non-empty list of band indices")
    bad = [b for b in bands if not 0 <= b < expected_bands]
    if bad:
        raise ValueError(f"band indices {bad} outside 0..{expected_bands - 1}")
    return bands


def _check_crop(crop: Sequence[int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    if len(crop) != 2 or min(int(c) for c in crop) <= 0:
        raise ValueError(f"crop must be (height, width) with positive sizes; got {crop!r}")
    return int(crop[0]), int(crop[1])


def _center_crop_offsets(
    shape: tuple[int, int], crop: tuple[int, int], path: Path
) -> tuple[int, int]:
    height, width = shape
    if height < crop[0] or width < crop[1]:
        raise DatasetError(
            f"{path}: image {height}x{width} is smaller than the crop {crop[0]}x{crop[1]}"
        )
    return (height - crop[0]) // 2, (width - crop[1]) // 2


def load_sample(
    cube_path: str | os.PathLike[str],
    label_path: str | os.PathLike[str],
    *,
    bands: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    expected_bands: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """One model-ready sample: (H, W, B') float32 cube and (H, W) uint8 grouped label.

    Band selection and the centre crop happen here, once, so training, evaluation and the
    fault-injection campaign see exactly the same pixels.
    """
    cube_path, label_path = Path(cube_path), Path(label_path)
    band_list = _check_bands(bands, expected_bands)
    crop_hw = _check_crop(crop)
    cube = read_cube(cube_path, expected_bands)
    label = read_label(label_path)
    if cube.shape[:2] != label.shape:
        raise DatasetError(
            f"{cube_path}: cube H, W {cube.shape[:2]} differ from its label {label_path} "
            f"{label.shape}"
        )
    if band_list is not None:
        cube = cube[:, :, band_list]
    if crop_hw is not None:
        top, left = _center_crop_offsets(label.shape, crop_hw, cube_path)
        cube = cube[top : top + crop_hw[0], left : left + crop_hw[1]]
        label = label[top : top + crop_hw[0], left : left + crop_hw[1]]
    return np.ascontiguousarray(cube, dtype=np.float32), group_labels(label)


def load_split(
    root: str | os.PathLike[str],
    split: str,
    *,
    bands: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    expected_bands: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """A whole split in memory, x (N, H, W, B) float32 and y (N, H, W) uint8; for the small
    test sets the metrics and fault campaigns run on (training streams via make_dataset)."""
    files = split_files(root, split)
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    for i, (cube_path, label_path) in enumerate(files):
        cube, label = load_sample(
            cube_path, label_path, bands=bands, crop=crop, expected_bands=expected_bands
        )
        if x is None or y is None:
            x = np.empty((len(files), *cube.shape), dtype=np.float32)
            y = np.empty((len(files), *label.shape), dtype=np.uint8)
        elif cube.shape != x.shape[1:]:
            raise DatasetError(
                f"{cube_path}: sample size {cube.shape} differs from {files[0][0]} "
                f"{x.shape[1:]} (set a crop to make them equal)"
            )
        x[i] = cube
        y[i] = label
    assert x is not None and y is not None  # split_files never returns an empty list
    return x, y


def _peek_cube_shape(path: Path) -> tuple[int, ...]:
    """A cube's shape from its .npy header alone, so a split can be checked without reading it."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, _ = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: unreadable cube ({type(exc).__name__}: {exc})") from exc
    return tuple(int(s) for s in shape)


def _peek_label_shape(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable label image ({type(exc).__name__}: {exc})") from exc
    return height, width


def make_dataset(
    root: str | os.PathLike[str],
    split: str,
    *,
    batch_size: int,
    bands: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    expected_bands: int = 25,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (x float32 (b, H, W, B), y uint8 (b, H, W)) streamed from the files, so the
    training split is never held in memory whole.

    File headers are checked up front (a wrong band count or size fails here with a
    DatasetError); contents are validated by :func:`load_sample` as each file is read, and
    such an error surfaces from TensorFlow with the file name in its message. With
    ``shuffle`` the order is reshuffled each epoch, deterministically for a given seed.
    """
    import tensorflow as tf

    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    band_list = _check_bands(bands, expected_bands)
    crop_hw = _check_crop(crop)
    files = split_files(root, split)

    out_hw: tuple[int, int] | None = None
    for cube_path, label_path in files:
        shape = _peek_cube_shape(cube_path)
        if len(shape) != 3 or shape[2] != expected_bands:
            raise DatasetError(
                f"{cube_path}: cube shape {shape}, expected (H, W, {expected_bands})"
            )
        if _peek_label_shape(label_path) != shape[:2]:
            raise DatasetError(
                f"{cube_path}: cube H, W {shape[:2]} differ from its label {label_path} "
                f"{_peek_label_shape(label_path)}"
            )
        hw = (shape[0], shape[1])
        if crop_hw is not None:
            _center_crop_offsets(hw, crop_hw, cube_path)
            hw = crop_hw
        if out_hw is None:
            out_hw = hw
        elif hw != out_hw:
            raise DatasetError(
                f"{cube_path}: sample size {hw} differs from {files[0][0]} {out_hw} "
                f"(set a crop to make them equal)"
            )
    assert out_hw is not None
    n_out_bands = expected_bands if band_list is None else len(band_list)
    cube_paths = [str(c) for c, _ in files]
    label_paths = [str(lab) for _, lab in files]

    def _load(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = int(index)
        return load_sample(
            cube_paths[i], label_paths[i], bands=band_list, crop=crop_hw,
            expected_bands=expected_bands,
        )

    def _tf_load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(_load, [index], (tf.float32, tf.uint8), stateful=False)
        x = tf.ensure_shape(x, (*out_hw, n_out_bands))
        y = tf.ensure_shape(y, out_hw)
        return x, y

    dataset = tf.data.Dataset.range(len(files))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(_tf_load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def describe_dataset(
    root: str | os.PathLike[str],
    *,
    bands: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    expected_bands: int = 25,
    n_classes: int = len(CLASS_NAMES),
) -> dict:
    """Read and check every file of every split once, and count pixels per class.

    Run before any training so that a bad file stops the pipeline at once, naming the file,
    rather than in the middle of the third model's training; the counts document the class
    imbalance of whatever data the run used.
    """
    out: dict = {"root": str(root), "classes": list(CLASS_NAMES[:n_classes]), "splits": {}}
    shapes: set[tuple[int, ...]] = set()
    for split in SPLITS:
        counts = np.zeros(n_classes, dtype=np.int64)
        ignored = 0
        pairs = split_files(root, split)
        for cube_path, label_path in pairs:
            cube, label = load_sample(
                cube_path, label_path, bands=bands, crop=crop, expected_bands=expected_bands
            )
            shapes.add(tuple(cube.shape))
            counts += class_pixel_counts(label, n_classes)
            ignored += int(np.count_nonzero(label == IGNORE))
        labelled = int(counts.sum())
        out["splits"][split] = {
            "images": len(pairs),
            "labelled_pixels": labelled,
            "ignored_pixels": ignored,
            "class_pixels": dict(zip(out["classes"], counts.tolist())),
            "class_fractions": {
                c: (round(n / labelled, 6) if labelled else None) for c, n in zip(out["classes"], counts.tolist())
            },
        }
    if len(shapes) != 1:
        raise DatasetError(f"{root}: images differ in size after cropping: {sorted(shapes)}")
    out["input_shape"] = list(shapes.pop())
    return out
