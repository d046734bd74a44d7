"""The :class:`Scene` value: one Sentinel-2 scene in memory, validated on construction.

A scene holds each band as a 2-D array of digital numbers (DN, L1C/L2A reflectance x 10000,
as float32) on its own grid. The *fine grid* is the grid of the 10 m bands (B02, B03, B04,
B08); the 20 m bands (B05, B06, B07, B8A, B11, B12) must be exactly half its size. In a
reduced-resolution (RR) file every band is already degraded by 2, so the fine grid is 20 m
(``fine_pixel_size=20``) and the optional ``reference`` holds the observed 20 m bands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .bands import COARSE_BANDS, FINE_BANDS, GSD, VERY_COARSE_BANDS
from .errors import SceneError

__all__ = ["GeoReference", "Scene", "check_transform"]

logger = logging.getLogger(__name__)

#: Largest pixel side a georeference may state, in CRS units (100 km in metres; more than 360 degrees).
MAX_PIXEL_SIZE = 1e5

#: Largest grid origin coordinate, in CRS units (no projected CRS on Earth goes past a few 10^7 m).
MAX_ORIGIN = 1e9


def check_transform(transform: Iterable[float], *, where: str) -> tuple[float, float, float, float, float, float]:
    """A fine grid's affine transform as 6 floats, refused unless finite, north-up and of a usable pixel size.

    Parameters
    ----------
    transform : iterable of 6 numbers
        ``(a, b, c, d, e, f)`` in rasterio/affine order (see :class:`GeoReference`), CRS units.
    where : str
        What errors start with (the file, and the band or array).

    Returns
    -------
    tuple of 6 float

    Raises
    ------
    SceneError
        Not 6 finite numbers; a rotation or shear term (``b``, ``d``) that is not 0 (only north-up grids are
        supported); a pixel width ``a`` that is not positive or a pixel height ``e`` that is not negative; a
        pixel side over :data:`MAX_PIXEL_SIZE` or an origin beyond :data:`MAX_ORIGIN`.
    """
    values = tuple(float(v) for v in transform)
    if len(values) != 6 or not all(np.isfinite(values)):
        raise SceneError(f"{where}: transform {values} must be 6 finite numbers (a, b, c, d, e, f)")
    a, b, c, d, e, f = values
    if b != 0 or d != 0:
        raise SceneError(f"{where}: transform {values} is rotated or sheared (b={b:g}, d={d:g}); only north-up grids")
    if not (0 < a <= MAX_PIXEL_SIZE and 0 < -e <= MAX_PIXEL_SIZE):
        raise SceneError(
            f"{where}: transform {values} has pixel size {a:g} x {e:g}: needs a width in (0, {MAX_PIXEL_SIZE:g}] "
            f"and a negative height (north-up) down to -{MAX_PIXEL_SIZE:g}"
        )
    if abs(c) > MAX_ORIGIN or abs(f) > MAX_ORIGIN:
        raise SceneError(f"{where}: transform {values} has its origin beyond {MAX_ORIGIN:g} CRS units")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class GeoReference:
    """Georeferencing of the fine grid.

    Attributes
    ----------
    transform : tuple of 6 floats
        Affine transform ``(a, b, c, d, e, f)`` in rasterio/affine order: ``x = a*col + b*row + c``,
        ``y = d*col + e*row + f`` for pixel corner coordinates, in CRS units (metres for UTM).
    crs : str
        The coordinate reference system as WKT or ``EPSG:nnnn``.

    Raises
    ------
    SceneError
        A transform :func:`check_transform` refuses, or an empty CRS.
    """

    transform: tuple[float, float, float, float, float, float]
    crs: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "transform", check_transform(self.transform, where="georeference"))
        if not isinstance(self.crs, str) or not self.crs.strip():
            raise SceneError(f"georeference: CRS {self.crs!r} is not a WKT or EPSG:nnnn string")

    @classmethod
    def stored(cls, arrays: Mapping[str, object], *, where: str) -> GeoReference | None:
        """The georeference an ``.npz`` or ``.mat`` scene stores beside its bands: a ``transform`` array (6
        numbers, the order above) and a ``crs`` (one string); None when it stores neither. Errors start with
        ``where`` (the file)."""
        if "transform" not in arrays and "crs" not in arrays:
            return None
        if "transform" not in arrays or "crs" not in arrays:
            raise SceneError(f"{where}: georeferencing needs both 'transform' (6 floats) and 'crs' (a string)")
        transform, crs = np.asarray(arrays["transform"]), np.asarray(arrays["crs"])
        if transform.dtype.kind not in "uif" or transform.size != 6:
            raise SceneError(
                f"{where}: 'transform' must be 6 finite numbers (a, b, c, d, e, f), got {_kind(transform)}"
            )
        if crs.dtype.kind != "U" or crs.size != 1 or not str(crs.ravel()[0]).strip():
            raise SceneError(f"{where}: 'crs' must be one string (WKT or EPSG:nnnn), got {_kind(crs)}")
        return cls(check_transform(transform.ravel(), where=f"{where}: 'transform'"), str(crs.ravel()[0]).strip())

    def scaled(self, factor: float) -> GeoReference:
        """Return the georeference of a grid whose pixels are ``factor`` times larger."""
        a, b, c, d, e, f = self.transform
        return GeoReference((a * factor, b * factor, c, d * factor, e * factor, f), self.crs)


def _describe(source: Path | None) -> str:
    return f"{source}: " if source is not None else ""


@dataclass(frozen=True, eq=False)
class Scene:
    """A Sentinel-2 scene: named bands on a 10 m (or, for RR files, 20 m) fine grid.

    Parameters
    ----------
    bands : mapping of str to (h, w) ndarray
        Band name (``B02``...) to DN array. Fine bands are (H, W), 20 m bands (H/2, W/2).
        Stored as C-contiguous float32; other real dtypes are converted. A 60 m band (B01, B09) that is
        empty or all zeros is a placeholder (the Reykjavik file has them) and is left out.
    fine_pixel_size : float
        Ground sampling distance of the fine grid, metres (10 for a normal scene, 20 for RR).
    reference : (H, W, 6) ndarray, optional
        The true 20 m bands at the fine grid size, in ``COARSE_BANDS`` order (RR files only).
        Training code must never read it; evaluation does.
    georef : GeoReference, optional
        Georeferencing of the fine grid.
    source : Path, optional
        The file the scene came from; named in every error message.

    Raises
    ------
    SceneError
        If a fine or 20 m band is missing, empty, all zeros, not finite, of an unsupported
        dtype, or not of the expected size.
    """

    bands: Mapping[str, np.ndarray]
    fine_pixel_size: float = 10.0
    reference: np.ndarray | None = None
    georef: GeoReference | None = None
    source: Path | None = None
    name: str = field(default="scene")

    def __post_init__(self) -> None:
        where = _describe(self.source)
        clean = {}
        for band, array in self.bands.items():
            if band in VERY_COARSE_BANDS and _is_placeholder(array):
                logger.debug("%sdropping all-zero placeholder band %s", where, band)
                continue
            clean[band] = _as_band_array(array, f"{where}band {band}")
        for band in FINE_BANDS + COARSE_BANDS:
            if band not in clean:
                raise SceneError(f"{where}missing band {band} (needs {', '.join(FINE_BANDS + COARSE_BANDS)})")
            if not np.any(clean[band]):
                raise SceneError(f"{where}band {band} is all zeros")
        height, width = clean[FINE_BANDS[0]].shape
        for band in FINE_BANDS:
            if clean[band].shape != (height, width):
                raise SceneError(
                    f"{where}10 m band {band} is {_size(clean[band].shape)}, "
                    f"but {FINE_BANDS[0]} is {_size((height, width))}"
                )
        for band in COARSE_BANDS:
            if clean[band].shape != (height / 2, width / 2):
                raise SceneError(
                    f"{where}20 m band {band} is {_size(clean[band].shape)}, not half the 10 m size "
                    f"{_size((height, width))}"
                )
        object.__setattr__(self, "bands", MappingProxyType(clean))
        if self.reference is not None:
            reference = _as_band_array(self.reference, f"{where}reference", ndim=3)
            if reference.shape != (height, width, len(COARSE_BANDS)):
                raise SceneError(
                    f"{where}reference is {'x'.join(map(str, reference.shape))}, "
                    f"expected {height}x{width}x{len(COARSE_BANDS)}"
                )
            object.__setattr__(self, "reference", reference)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the fine grid, pixels."""
        return self.bands[FINE_BANDS[0]].shape  # type: ignore[return-value]

    def gsd(self, band: str) -> float:
        """Ground sampling distance of ``band`` in this scene, metres."""
        return self.fine_pixel_size * GSD[band] / 10

    def fine(self) -> np.ndarray:
        """The 10 m bands as one (H, W, 4) float32 DN array in ``FINE_BANDS`` order."""
        return np.stack([self.bands[b] for b in FINE_BANDS], axis=-1)

    def coarse(self) -> np.ndarray:
        """The 20 m bands as one (H/2, W/2, 6) float32 DN array in ``COARSE_BANDS`` order."""
        return np.stack([self.bands[b] for b in COARSE_BANDS], axis=-1)


def _kind(array: np.ndarray) -> str:
    return f"a {array.dtype} array of shape {_size(array.shape) or '()'}"


def _is_placeholder(array: object) -> bool:
    """An empty or all-zero numeric array: a 60 m band a file holds only to keep its layout."""
    array = np.asarray(array)
    return array.dtype.kind in "uif" and (array.size == 0 or not np.any(array))


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(n)) for n in shape)


def _as_band_array(array: object, what: str, *, ndim: int = 2) -> np.ndarray:
    """Check one band (or the reference) and return it as C-contiguous float32."""
    array = np.asarray(array)
    if array.dtype.kind not in "uif":
        raise SceneError(f"{what} has unsupported dtype {array.dtype} (expected integer or float)")
    if array.ndim != ndim:
        raise SceneError(f"{what} has {array.ndim} dimensions, expected {ndim}")
    if array.size == 0:
        raise SceneError(f"{what} is empty ({_size(array.shape)})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise SceneError(f"{what} has {bad} non-finite values (NaN or inf)")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise SceneError(f"{what} has values beyond float32 range")
    return out
