"""Measured reflectance spectra (earthlib) resampled to the HSI-Drive camera bands.

The synthetic stand-in for HSI-Drive draws its pixel spectra from real measurements so that
the classes differ the way real materials do (asphalt is dark and flat, paint is bright,
canopy has a red edge), not in some arbitrary way a network could exploit too easily.

Source: PyPI ``earthlib`` 1.1.0 (MIT) ships ``earthlib/data/spectra.sli`` (an ENVI spectral
library, float32, 7261 spectra x 180 samples) and ``spectra.csv`` (one row per spectrum, in the
same order, with the class hierarchy LEVEL_1..LEVEL_4). The library's wavelengths are
0.40-1.35, 1.46-1.79 and 1.96-2.45 um at 0.01 um (the water-absorption bands are cut out);
the camera's 600-975 nm lies inside the first, gap-free, stretch, so linear interpolation
onto it never bridges a gap. The files are only read, never imported through ``earthlib``'s
Python package (whose import pulls in loguru, tqdm and more than we need).

Materials (name -> earthlib ``LEVEL_3`` values it selects; LEVEL_1/LEVEL_2 in brackets):

- ``road``       -> road, asphalt, parking_lot                  [impervious/built]
- ``paint``      -> paint                                       [impervious/built]
- ``metal``      -> metal                                       [impervious/built]
- ``glass``      -> glass                                       [impervious/built]
- ``concrete``   -> concrete_tile, sidewalk, bridge, tile       [impervious/built]
- ``gravel``     -> gravel                                      [impervious/built and pervious/bare]
- ``vegetation`` -> canopy                                      [pervious/vegetation, simulated]
- ``soil``       -> soil, dirt                                  [pervious/bare]
- ``wood``       -> bark, wood                                  [pervious/npv]
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

#: Band centres of the HSI-Drive v2.0 camera (25 bands, 600-975 nm, evenly spaced).
CAMERA_WAVELENGTHS_NM: np.ndarray = np.linspace(600.0, 975.0, 25)
CAMERA_WAVELENGTHS_NM.setflags(write=False)

#: Material name -> earthlib LEVEL_3 labels. A mapping, not code, so the report can print it.
MATERIALS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "road": ("road", "asphalt", "parking_lot"),
        "paint": ("paint",),
        "metal": ("metal",),
        "glass": ("glass",),
        "concrete": ("concrete_tile", "sidewalk", "bridge", "tile"),
        "gravel": ("gravel",),
        "vegetation": ("canopy",),
        "soil": ("soil", "dirt"),
        "wood": ("bark", "wood"),
    }
)

_LIBRARY_FILES = ("spectra.sli", "spectra.sli.hdr", "spectra.csv")


class SpectraError(RuntimeError):
    """earthlib's spectral library is missing or not what this module was written against."""


def library_dir() -> Path:
    """Where earthlib keeps its data; found without importing earthlib (its import is heavy)."""
    try:
        spec_root = importlib.resources.files("earthlib")
    except ModuleNotFoundError as exc:
        raise SpectraError(
            "the Python package 'earthlib' (==1.1.0) is not installed; it provides the measured "
            "spectra (earthlib/data/spectra.sli, spectra.csv) for the synthetic data set: "
            "pip install earthlib==1.1.0"
        ) from exc
    directory = Path(str(spec_root)) / "data"
    missing = [name for name in _LIBRARY_FILES if not (directory / name).is_file()]
    if missing:
        raise SpectraError(
            f"earthlib's spectral library is incomplete: {', '.join(missing)} missing in "
            f"{directory} (expected earthlib==1.1.0)"
        )
    return directory


@functools.lru_cache(maxsize=1)
def load_library() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Read earthlib's full library once: wavelengths (nm), spectra (n, samples), labels.

    Validated against the CSV so that a changed earthlib release fails loudly here rather
    than silently mislabelling spectra in the synthetic data.
    """
    import spectral.io.envi as envi  # local: only this function needs it

    directory = library_dir()
    sli = directory / "spectra.sli"
    hdr = directory / "spectra.sli.hdr"
    csv = directory / "spectra.csv"
    try:
        lib = envi.open(str(hdr), str(sli))
    except Exception as exc:  # spectral raises several unrelated types
        raise SpectraError(f"cannot read the ENVI spectral library {sli}: {exc}") from exc
    spectra = np.ascontiguousarray(lib.spectra, dtype=np.float32)
    wavelengths = np.asarray(lib.bands.centers, dtype=np.float64)
    unit = str(lib.bands.band_unit or "").lower()
    if unit.startswith("micro"):
        wavelengths = wavelengths * 1000.0
    elif not unit.startswith("nano"):
        raise SpectraError(f"{hdr}: unexpected wavelength unit {lib.bands.band_unit!r}")
    wavelengths = np.round(wavelengths, 6)
    if spectra.ndim != 2 or spectra.shape[1] != wavelengths.size:
        raise SpectraError(
            f"{sli}: spectra shape {spectra.shape} does not match {wavelengths.size} wavelengths"
        )
    if np.any(np.diff(wavelengths) <= 0):
        raise SpectraError(f"{hdr}: wavelengths are not strictly increasing")
    labels = pd.read_csv(csv)
    if len(labels) != spectra.shape[0]:
        raise SpectraError(f"{csv}: {len(labels)} rows but {sli} holds {spectra.shape[0]} spectra")
    # The rows must be in the library's order. earthlib 1.1.0 has one typo among 7261 names
    # ("burnedcham" in the CSV, "burncham" in the header, a burned-char spectrum), so demand
    # agreement of all but a handful rather than exact equality.
    names_csv = labels["NAME"].astype(str).to_numpy()
    names_hdr = np.asarray([str(n) for n in lib.names])
    n_mismatch = int(np.count_nonzero(names_csv != names_hdr))
    if n_mismatch > 5:
        raise SpectraError(
            f"{csv}: NAME column disagrees with the spectra names in {hdr} at {n_mismatch} rows"
        )
    spectra.setflags(write=False)
    wavelengths.setflags(write=False)
    return wavelengths, spectra, labels


def resample(
    spectra: np.ndarray,
    wavelengths_nm: np.ndarray,
    target_nm: np.ndarray = CAMERA_WAVELENGTHS_NM,
) -> np.ndarray:
    """Linear interpolation onto the camera bands; refuses to extrapolate or bridge a gap.

    A camera band centre further than 1.5 library steps from its nearest library samples
    would mean interpolating across a removed water band: that is an error, not data.
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    target = np.asarray(target_nm, dtype=np.float64)
    if target.min() < wl[0] or target.max() > wl[-1]:
        raise SpectraError(
            f"camera bands {target.min()}-{target.max()} nm lie outside the library's "
            f"{wl[0]}-{wl[-1]} nm"
        )
    right = np.clip(np.searchsorted(wl, target), 1, wl.size - 1)
    step = np.median(np.diff(wl))
    if np.any(wl[right] - wl[right - 1] > 1.5 * step):
        raise SpectraError("a camera band falls in a gap of the library's wavelengths")
    left_w = wl[right - 1]
    frac = (target - left_w) / (wl[right] - left_w)
    out = spectra[:, right - 1] * (1.0 - frac) + spectra[:, right] * frac
    return out.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _material_spectra_cached(material: str) -> np.ndarray:
    wavelengths, spectra, labels = load_library()
    wanted = MATERIALS[material]
    mask = labels["LEVEL_3"].isin(wanted).to_numpy()
    if not mask.any():
        raise SpectraError(f"earthlib's spectra.csv has no spectra with LEVEL_3 in {wanted}")
    out = resample(spectra[mask], wavelengths)
    out.setflags(write=False)
    return out


def material_spectra(material: str) -> np.ndarray:
    """Measured spectra of one material at the 25 camera bands, (n, 25) float32, read-only.

    Read-only and cached: the synthetic generator calls this per image, and a caller that
    mutated the shared array would silently change every later image.
    """
    if material not in MATERIALS:
        raise KeyError(f"unknown material {material!r}; known: {', '.join(MATERIALS)}")
    return _material_spectra_cached(material)
