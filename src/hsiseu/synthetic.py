"""A deterministic synthetic stand-in for HSI-Drive v2.0, written in the real data set's layout.

HSI-Drive v2.0 needs a licence agreement and is ~tens of GB, so the default workflow trains on
this instead; the real data drops in by pointing the config at it (see :mod:`hsiseu.data`).
The point is not photo-realism but a task with the same *structure*: 25 bands at 600-975 nm,
HSI-Drive's raw labels 0..10 grouped into five imbalanced classes (road dominant, marks rare),
classes that are separable from spectra plus spatial context, and pixel spectra drawn from
measured reflectances (earthlib, :mod:`hsiseu.spectra`) so that material contrasts are real.

Scene model (one forward-looking driving frame, per image varied from its own random stream):

- sky (label 5) above a horizon at 33-48 % of the height; modelled spectrum a*(l/600nm)^-k,
  bright and falling into the NIR, whiter towards the horizon, with optional thin clouds;
- a tree line (3, measured PROSAIL canopy spectra with the red edge) of random profile along
  the horizon, buildings (6, concrete) with glass windows (10), metal poles (9);
- the road (1, measured asphalt/road spectra) as a perspective trapezoid from a vanishing
  point, with bright paint lane marks (2): a dashed centre line and optional solid edge lines,
  at least 3 px wide at 128 px image width;
- verges beside the road: grass (3) or sidewalk (6), sometimes with a soil shoulder left
  unlabelled (0), as HSI-Drive leaves unannotated ground;
- cars (4 painted metal bodies, 10 windows, 9 unpainted-metal bumpers) on the road, scaled by
  perspective and drawn far-to-near, each casting a shadow; sometimes a pedestrian (7);
- a random share of the pixels on region borders is left unlabelled (0) and gets a mixed
  spectrum, as annotators skip mixed pixels.

Label 8 (water) is never drawn; it is rare in HSI-Drive and groups into Others like 4, 6, 7, 9, 10.

Pixel spectra: each region mixes 2-3 spectra of its material with per-pixel random weights,
times a per-region brightness (0.85-1.15) and a per-pixel texture (~4 %), then the whole image
gets one illumination scale (0.6-1.4) and spectral tint, shadows (x0.35-0.6) on the ground,
and 1 % gaussian sensor noise; values are clipped at 0. Everything derives from
``numpy.random.Generator`` streams seeded by (seed, split, index), so output is byte-identical
for a seed and one image does not change when the number of images changes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from hsiseu import data
from hsiseu.spectra import CAMERA_WAVELENGTHS_NM, material_spectra

GENERATOR_VERSION = 1
N_BANDS = CAMERA_WAVELENGTHS_NM.size
_NAME_RE = re.compile(r"^synth_\d{5}$")

# Raw HSI-Drive labels used below.
UNLABELLED, ROAD, MARKS, VEGETATION, PAINTED_METAL, SKY = 0, 1, 2, 3, 4, 5
CONCRETE, PEDESTRIAN, WATER, METAL, GLASS = 6, 7, 8, 9, 10


def _mean_between(spectra: np.ndarray, low: float, high: float) -> np.ndarray:
    mean = spectra.mean(axis=1)
    return spectra[(mean >= low) & (mean <= high)]


def _pools() -> dict[str, np.ndarray]:
    """Material pools per scene element, filtered where a measured class is too broad.

    earthlib's 'road' includes concrete roads as bright as sidewalks and its 'paint' includes
    dark colours; HSI-Drive's roads are asphalt and its lane marks white or yellow, so the
    road pool keeps mean reflectance 0.05-0.16, lane marks paint >= 0.30, sidewalks and
    buildings concrete >= 0.20. Cars may have any paint colour.
    """
    paint = material_spectra("paint")
    return {
        "road": _mean_between(material_spectra("road"), 0.05, 0.16),
        "marks": _mean_between(paint, 0.30, 10.0),
        "car": _mean_between(paint, 0.08, 10.0),
        "concrete": _mean_between(material_spectra("concrete"), 0.20, 10.0),
        "vegetation": np.asarray(material_spectra("vegetation")),
        "metal": np.asarray(material_spectra("metal")),
        "glass": np.asarray(material_spectra("glass")),
        "soil": np.asarray(material_spectra("soil")),
        "pedestrian": np.concatenate([paint, material_spectra("wood")]),
    }


class _Scene:
    """Label map plus a region map; regions are painted in order, later ones on top."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = height, width, rng
        self.label = np.zeros((height, width), np.uint8)
        self.region = np.zeros((height, width), np.int32)
        self.materials: list[tuple[str, float]] = [("sky", 1.0)]  # region 0 is the sky
        self.label[:] = SKY
        self.rows = (np.arange(height) + 0.5)[:, None] * np.ones((1, width))
        self.cols = np.ones((height, 1)) * (np.arange(width) + 0.5)[None, :]

    def paint(self, mask: np.ndarray, label: int, pool: str, scale: float = 1.0) -> None:
        if not mask.any():
            return
        self.materials.append((pool, scale))
        self.region[mask] = len(self.materials) - 1
        self.label[mask] = label

    def rect(self, top: float, bottom: float, left: float, right: float) -> np.ndarray:
        return (
            (self.rows >= top) & (self.rows < bottom) & (self.cols >= left) & (self.cols < right)
        )


def _draw_scene(scene: _Scene) -> tuple[np.ndarray, float]:
    """Lay out one frame; returns the ground shadow factor map and the horizon row."""
    h, w, rng = scene.h, scene.w, scene.rng
    rows, cols = scene.rows, scene.cols
    shadow = np.ones((h, w))

    horizon = rng.uniform(0.33, 0.48) * h
    vanish_x = rng.uniform(0.35, 0.65) * w
    bottom_x = vanish_x + rng.uniform(-0.15, 0.15) * w
    top_half = rng.uniform(0.02, 0.05) * w
    bottom_half = rng.uniform(0.75, 1.2) * w
    # t: 0 at the horizon, 1 at the bottom row (linear in image rows = perspective ground).
    t = np.clip((rows - horizon) / (h - horizon), 0.0, 1.0)
    centre = vanish_x + t * (bottom_x - vanish_x)
    half = top_half + t * (bottom_half - top_half)
    u = (cols - centre) / half  # lateral road coordinate: -1..1 across the road
    ground = rows >= horizon

    # Verges: grass or sidewalk per side, optional unlabelled soil shoulder next to the road.
    for side in (-1.0, 1.0):
        side_mask = ground & (u * side > 1.0)
        if rng.random() < 0.6:
            scene.paint(side_mask, VEGETATION, "vegetation")
        else:
            scene.paint(side_mask, CONCRETE, "concrete")
        if rng.random() < 0.4:
            width = rng.uniform(0.08, 0.2)
            scene.paint(side_mask & (u * side < 1.0 + width), UNLABELLED, "soil")

    # Skyline: a tree line of random profile, buildings with windows.
    xs = np.arange(w) + 0.5
    profile = np.full(w, rng.uniform(0.0, 0.12) * h)
    for _ in range(rng.integers(2, 6)):
        centre_x, spread = rng.uniform(0, w), rng.uniform(0.05, 0.25) * w
        profile += rng.uniform(0.05, 0.3) * h * np.exp(-0.5 * ((xs - centre_x) / spread) ** 2)
    profile *= rng.uniform(0.6, 1.0)
    profile[profile < 0.03 * h] = 0.0
    trees = (rows >= horizon - profile[None, :]) & ~ground
    scene.paint(trees, VEGETATION, "vegetation")
    for _ in range(rng.integers(0, 4)):
        left = rng.uniform(-0.1, 0.9) * w
        right = left + rng.uniform(0.1, 0.35) * w
        top = horizon - rng.uniform(0.1, 0.35) * h
        bottom = horizon + rng.uniform(0.02, 0.08) * h
        building = scene.rect(top, bottom, left, right) & ((np.abs(u) > 1.0) | ~ground)
        scene.paint(building, CONCRETE, "concrete")
        if rng.random() < 0.6:
            period = max(4.0, rng.uniform(0.05, 0.09) * w)
            win_x = ((cols - left) % period) < 0.5 * period
            win_y = ((rows - top) % period) < 0.5 * period
            inner = scene.rect(top + 1.5, bottom - 0.1 * (bottom - top), left + 1.5, right - 1.5)
            scene.paint(building & inner & win_x & win_y, GLASS, "glass", rng.uniform(0.3, 0.6))

    # The road, then its marks.
    road = ground & (np.abs(u) <= 1.0)
    scene.paint(road, ROAD, "road")
    mark_width = max(2.0, 3.0 * w / 128.0)
    width_px = mark_width * (1.0 + 0.7 * t)
    far_enough = t > 0.15
    depth = 1.0 / np.maximum(t, 1e-3)  # proportional to distance along the road
    dash_period = rng.uniform(0.25, 0.45)
    dash_on = ((depth / dash_period + rng.uniform()) % 1.0) < rng.uniform(0.4, 0.6)
    centre_u = 0.0 if rng.random() < 0.6 else rng.uniform(-0.25, 0.25)
    lines = [(centre_u, dash_on)]
    edge_u = rng.uniform(0.82, 0.92)
    for side in (-1.0, 1.0):
        if rng.random() < 0.5:
            lines.append((side * edge_u, np.ones_like(dash_on)))
    marks = np.zeros((h, w), bool)
    for line_u, pattern in lines:
        x_line = centre + line_u * half
        marks |= (np.abs(cols - x_line) < 0.5 * width_px) & pattern
    scene.paint(marks & road & far_enough, MARKS, "marks")

    # Poles at the road side.
    for _ in range(rng.integers(0, 4)):
        t_base = rng.uniform(0.15, 0.8)
        side = rng.choice([-1.0, 1.0])
        base_row = horizon + t_base * (h - horizon)
        half_base = top_half + t_base * (bottom_half - top_half)
        x = vanish_x + t_base * (bottom_x - vanish_x) + side * half_base * rng.uniform(1.1, 1.4)
        pole_w = max(1.5, 4.0 * t_base * w / 128.0)
        top = base_row - rng.uniform(0.6, 1.2) * t_base * h - 0.1 * h
        scene.paint(scene.rect(top, base_row, x - pole_w / 2, x + pole_w / 2), METAL, "metal")

    # Cars, far to near, each with windows, a bumper strip and a shadow.
    t_cars = np.sort(rng.uniform(0.15, 0.7, size=rng.integers(0, 4)))
    for t_car in t_cars:
        half_car = top_half + t_car * (bottom_half - top_half)
        lane = rng.uniform(-0.6, 0.6)
        x = vanish_x + t_car * (bottom_x - vanish_x) + lane * half_car
        car_w = 2 * half_car * rng.uniform(0.22, 0.32)
        car_h = car_w * rng.uniform(0.55, 0.85)
        bottom = horizon + t_car * (h - horizon)
        top = bottom - car_h
        left, right = x - car_w / 2, x + car_w / 2
        shadow[scene.rect(bottom - 0.2 * car_h, bottom + 0.15 * car_h, left - 0.05 * car_w,
                          right + 0.1 * car_w)] *= rng.uniform(0.35, 0.6)
        scene.paint(scene.rect(top, bottom, left, right), PAINTED_METAL, "car")
        scene.paint(
            scene.rect(top + 0.15 * car_h, top + 0.45 * car_h, left + 0.12 * car_w,
                       right - 0.12 * car_w),
            GLASS, "glass", rng.uniform(0.25, 0.5),
        )
        scene.paint(scene.rect(bottom - 0.15 * car_h, bottom, left, right), METAL, "metal")

    if rng.random() < 0.25:
        t_p = rng.uniform(0.3, 0.8)
        half_p = top_half + t_p * (bottom_half - top_half)
        x = vanish_x + t_p * (bottom_x - vanish_x) + rng.choice([-1.0, 1.0]) * half_p * 1.15
        p_w = max(2.0, 0.12 * half_p)
        bottom = horizon + t_p * (h - horizon)
        scene.paint(scene.rect(bottom - 3.5 * p_w, bottom, x - p_w / 2, x + p_w / 2),
                    PEDESTRIAN, "pedestrian")

    # Tree and building shadows falling across the road.
    for _ in range(rng.integers(0, 4)):
        cy = rng.uniform(horizon, h)
        cx = rng.uniform(0, w)
        ry, rx = rng.uniform(0.04, 0.15) * h, rng.uniform(0.05, 0.25) * w
        blob = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 < 1.0
        shadow[blob & ground] *= rng.uniform(0.35, 0.6)
    return shadow, horizon


def _sky_spectra(scene: _Scene, horizon: float) -> np.ndarray:
    """Sky as a*(l/600nm)^-k per pixel: bright, falling into the NIR, whiter near the horizon."""
    rng = scene.rng
    lam = CAMERA_WAVELENGTHS_NM / 600.0
    height_frac = np.clip(scene.rows / max(horizon, 1.0), 0.0, 1.0)  # 0 top, 1 horizon
    k_top, k_horizon = rng.uniform(1.8, 3.2), rng.uniform(0.8, 1.6)
    a_top, a_horizon = rng.uniform(0.5, 0.8), rng.uniform(0.7, 1.0)
    k = k_top + (k_horizon - k_top) * height_frac
    a = a_top + (a_horizon - a_top) * height_frac
    sky = a[..., None] * lam[None, None, :] ** (-k[..., None])
    if rng.random() < 0.5:  # a thin cloud: blend towards a flat white spectrum
        cy, cx = rng.uniform(0, horizon), rng.uniform(0, scene.w)
        ry, rx = rng.uniform(0.05, 0.2) * scene.h, rng.uniform(0.1, 0.4) * scene.w
        alpha = rng.uniform(0.2, 0.45) * np.exp(
            -(((scene.rows - cy) / ry) ** 2 + ((scene.cols - cx) / rx) ** 2)
        )
        sky = sky * (1 - alpha[..., None]) + alpha[..., None] * rng.uniform(0.6, 0.8)
    return sky


def _render(scene: _Scene, shadow: np.ndarray, horizon: float,
            pools: dict[str, np.ndarray]) -> np.ndarray:
    rng = scene.rng
    h, w = scene.h, scene.w
    n_regions = len(scene.materials)
    # Per region: 3 spectra of its material (2 distinct when the third repeats one).
    table = np.zeros((n_regions, 3, N_BANDS))
    for index, (pool_name, scale) in enumerate(scene.materials):
        if pool_name == "sky":
            continue
        pool = pools[pool_name]
        picks = rng.integers(0, len(pool), size=3)
        if rng.random() < 0.5:
            picks[2] = picks[rng.integers(0, 2)]
        table[index] = pool[picks] * (scale * rng.uniform(0.85, 1.15))
    weights = rng.gamma(2.0, size=(h, w, 3))
    weights /= weights.sum(axis=2, keepdims=True)
    cube = np.einsum("hwk,hwkb->hwb", weights, table[scene.region])
    sky_mask = scene.region == 0
    cube[sky_mask] = _sky_spectra(scene, horizon)[sky_mask]

    lam = CAMERA_WAVELENGTHS_NM / CAMERA_WAVELENGTHS_NM.mean()
    texture = 1.0 + 0.04 * rng.standard_normal((h, w, 1))
    tilt = 0.03 * rng.standard_normal((h, w, 1)) * (lam - 1.0)[None, None, :]
    cube *= texture + tilt
    # Shadows are lit by bluish skylight only: darker, more so in the NIR.
    shade = shadow[..., None] * lam[None, None, :] ** np.where(shadow < 1.0, -0.3, 0.0)[..., None]
    cube *= np.where(sky_mask[..., None], 1.0, shade)

    # Unlabelled borders: a share of the pixels whose right/lower neighbour differs, mixed.
    label = scene.label
    border = np.zeros((h, w), bool)
    mixed = cube.copy()
    right = label[:, :-1] != label[:, 1:]
    down = label[:-1, :] != label[1:, :]
    border[:, :-1] |= right
    border[:-1, :] |= down
    mixed[:, :-1][right] = 0.5 * (cube[:, :-1][right] + cube[:, 1:][right])
    mixed[:-1, :][down] = 0.5 * (cube[:-1, :][down] + cube[1:, :][down])
    drop = border & (label != MARKS) & (rng.random((h, w)) < rng.uniform(0.3, 0.7))
    cube[drop] = mixed[drop]
    label[drop] = UNLABELLED

    illumination = rng.uniform(0.6, 1.4) * lam ** rng.uniform(-0.15, 0.15)
    cube *= illumination[None, None, :]
    cube += rng.standard_normal(cube.shape) * (0.01 * cube + 0.001)
    return np.clip(cube, 0.0, None).astype(np.float32)


def generate_image(
    seed: int, split: str, index: int, height: int, width: int,
    pools: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One (cube (H, W, 25) float32, raw label (H, W) uint8) pair; a pure function of its
    arguments, so any single image can be regenerated for debugging."""
    if split not in data.SPLITS:
        raise ValueError(f"unknown split {split!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, data.SPLITS.index(split), index]))
    scene = _Scene(height, width, rng)
    shadow, horizon = _draw_scene(scene)
    cube = _render(scene, shadow, horizon, pools if pools is not None else _pools())
    return cube, scene.label


def generate_dataset(
    root: str | os.PathLike[str],
    *,
    seed: int,
    n_train: int,
    n_val: int,
    n_test: int,
    height: int,
    width: int,
) -> dict:
    """Write the stand-in data set under ``root`` and ``root/summary.json``; returns the summary.

    The summary records the label pixel fractions so that the class imbalance the models were
    trained under is part of the results, not something to re-derive.
    """
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1 (every split is read downstream); got {value}")
    if height < 16 or width < 16:
        raise ValueError(f"images must be at least 16x16; got {height}x{width}")
    root = Path(root)
    pools = _pools()
    counts = {"training": n_train, "validation": n_val, "test": n_test}
    splits: dict[str, dict] = {}
    for split, n_images in counts.items():
        label_pixels = np.zeros(data.N_LABELS, np.int64)
        written = set()
        for index in range(n_images):
            cube, label = generate_image(seed, split, index, height, width, pools)
            name = f"synth_{index:05d}"
            data.write_sample(root, split, name, cube, label)
            written.add(name)
            label_pixels += np.bincount(label.ravel(), minlength=data.N_LABELS)
        _remove_stale(root, split, written)
        class_pixels = np.zeros(len(data.CLASS_NAMES), np.int64)
        labelled_raw = np.arange(1, data.N_LABELS)
        np.add.at(class_pixels, data.LABEL_GROUPS[labelled_raw], label_pixels[labelled_raw])
        total = label_pixels.sum()
        labelled = class_pixels.sum()
        splits[split] = {
            "n_images": n_images,
            "label_fractions": {
                str(k): round(float(v / total), 6) for k, v in enumerate(label_pixels)
            },
            "class_fractions": {
                name: round(float(v / labelled), 6)
                for name, v in zip(data.CLASS_NAMES, class_pixels)
            },
            "unlabelled_fraction": round(float(label_pixels[0] / total), 6),
        }
    summary = {
        "generator": f"hsiseu.synthetic v{GENERATOR_VERSION}",
        "parameters": {
            "seed": seed, "n_train": n_train, "n_val": n_val, "n_test": n_test,
            "height": height, "width": width, "bands": N_BANDS,
            "wavelengths_nm": [round(float(x), 4) for x in CAMERA_WAVELENGTHS_NM],
        },
        "splits": splits,
    }
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    tmp = root / ".summary.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / "summary.json")
    return summary


def _remove_stale(root: Path, split: str, written: set[str]) -> None:
    """Drop synthetic samples left from an earlier, larger run into the same root, which would
    otherwise silently join the split."""
    for directory, suffix in (
        (root / "images" / split, data.CUBE_SUFFIX),
        (root / "annotations" / split, data.LABEL_SUFFIX),
    ):
        for path in directory.glob(f"synth_*{suffix}"):
            if _NAME_RE.match(path.stem) and path.stem not in written:
                path.unlink()
