"""No-data: which pixels carry a measurement, how the network's input is filled there, how outputs mark them.

Rules
-----
A band pixel is **no-data** when the file says it carries no measurement:

- a SAFE product (L1C or L2A, folder or zip): the product's ``NODATA`` special value of the raw DN
  (0 in every processing baseline), tested *before* the radiometric offset, so a valid pixel whose
  reflectance is exactly 0 after the offset stays valid;
- a raster band (band folder, multi-band GeoTIFF, JPEG 2000): the band's nodata tag (NaN allowed
  for float bands) or its GDAL mask band (an internal mask or an alpha band); a band with neither
  uses 0 DN, ESA's ``NODATA`` value;
- a ``.mat``/``.npz`` file or an in-memory :class:`~ssc_edge.scene.Scene`: 0 DN (the readers and
  the trainer use the same rule).

Every reader gives no-data pixels the value 0 DN, so code that only sees values (the trainer, the
summaries) keeps working. A **10 m pixel is valid** for a model only if every band the model reads
is valid there: each 10 m band at the pixel, each 20 m / 60 m band at the coarse pixel covering it.

Before the network
------------------
No-data input pixels take the values of the nearest valid pixel of the same grid (:func:`fill_nearest`),
so the network and the bicubic upsampling see plausible values near a no-data edge instead of 0 DN. A
window is filled on itself extended by :func:`fill_margin` pixels and cropped, so a tiled run equals the
whole-image run bit for bit.

After the network
-----------------
Output pixels that are not valid get the output's nodata value (:func:`output_nodata`): NaN for
float32, 0 for uint16 (whose valid values are then clipped to 1..65535, so 0 only means no-data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the runtime imports this module: no import of it at run time
    from .tiling import Tile

__all__ = [
    "NODATA_FLOAT32",
    "NODATA_UINT16",
    "ValidReader",
    "fill_margin",
    "fill_nearest",
    "mask_invalid",
    "nonzero_valid",
    "output_nodata",
    "read_filled",
    "measured",
    "nodata_where_read",
    "scene_valid",
    "valid_pixels",
]

#: The float32 output's nodata value: NaN (GDAL and QGIS honour a NaN nodata tag on float bands, and a
#: NaN cannot be mistaken for a sharpened value, which any finite number could).
NODATA_FLOAT32 = float("nan")

#: The uint16 output's nodata value: 0 DN (ESA's ``NODATA``); valid samples are clipped to 1..65535.
NODATA_UINT16 = 0

#: ``valid(band, tile) -> (h, w) bool``: True where ``band`` carries a measurement (``tile`` on its grid).
ValidReader = Callable[[str, "Tile"], np.ndarray]


def output_nodata(dtype: str) -> float | int:
    """The nodata value of an output sample type: NaN for ``"float32"``, 0 for ``"uint16"``."""
    return NODATA_UINT16 if np.dtype(dtype).kind in "ui" else NODATA_FLOAT32


def nonzero_valid(read_band: Callable[[str, Tile], np.ndarray]) -> ValidReader:
    """The validity of a reader of DN windows by the 0 DN rule (``.mat``, ``.npz``, in-memory scenes)."""

    def valid(band: str, tile: Tile) -> np.ndarray:
        return np.asarray(read_band(band, tile)) != 0

    return valid


def valid_pixels(values: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of an (H, W[, C]) output that are not no-data (finite in every band; convert a
    uint16 output's 0 to NaN first)."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    return finite.all(axis=-1) if values.ndim == 3 else finite


def measured(values: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of an (H, W[, C]) DN array where every band carries a measurement.

    The rule of the readers' output and of in-memory scenes: 0 DN (or NaN) in any band is no-data. Every
    estimate made from a scene's own bands (:mod:`ssc_edge.registration`) leaves those pixels out.
    """
    values = np.asarray(values)
    present = np.isfinite(values) & (values != 0)
    return present.all(axis=-1) if values.ndim == 3 else present


def nodata_where_read(degraded: np.ndarray, observed: np.ndarray, *, reach: int, ratio: int = 2) -> np.ndarray:
    """A decimation with 0 DN (no-data) at every pixel whose kernel read a no-data pixel of its input.

    Parameters
    ----------
    degraded : (H // ratio, W // ratio[, C]) ndarray
        ``observed`` blurred and decimated by ``ratio`` (:func:`ssc_edge.wald.decimate`, ``degrade``), DN.
    observed : (H, W[, C]) ndarray
        Its input, DN, no-data by :func:`measured`.
    reach : int
        The kernel's largest tap offset from ``ratio * i``, pixels of ``observed``
        (:meth:`ssc_edge.wald.PairModel.reach`): coarse pixel ``i`` reads ``ratio * i - reach ..
        ratio * i + reach`` on each axis (a mirrored edge reads pixels inside that range).
    ratio : int
        The decimation factor.

    Returns
    -------
    ndarray
        ``degraded`` itself when ``observed`` has no no-data; else a copy, 0 where the kernel's support held
        no-data, so a reduced-resolution scene (the precision gate's sample) is scored on valid pixels only.
    """
    valid = measured(observed)
    if valid.all():
        return degraded
    from .sampling import valid_origins

    rows, cols = (ratio * np.arange(n) - reach for n in degraded.shape[:2])
    out = np.array(degraded, copy=True)
    out[~valid_origins(~valid, rows, cols, patch=2 * reach + 1, margin=0)] = 0
    return out


def fill_nearest(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill no-data pixels with the value of the nearest valid pixel.

    Parameters
    ----------
    values : (h, w[, C]) ndarray
        One grid's bands, DN.
    valid : (h, w) bool ndarray
        True where every band carries a measurement.

    Returns
    -------
    ndarray
        ``values`` where valid; elsewhere the values (all bands together) of the nearest valid pixel
        in Euclidean distance (:func:`scipy.ndimage.distance_transform_edt`). ``values`` itself when
        every pixel is valid or none is (nothing to fill from).
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != values.shape[:2]:
        raise ValueError(f"valid mask {valid.shape} does not match values {values.shape}")
    if valid.all() or not valid.any():
        return values
    from scipy import ndimage

    rows, cols = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[rows, cols]


def fill_margin(reach: float) -> int:
    """Pixels a window is extended by before :func:`fill_nearest` so that its fill is the whole image's.

    Parameters
    ----------
    reach : float
        The largest distance, pixels of the band's grid (Chebyshev), between a window pixel and a
        valid output pixel whose value it can change: the halo on the 10 m grid; on a coarse grid
        of ratio ``r`` with an upsampling read margin ``m``: ``ceil(halo / r) + m + 1``.

    Returns
    -------
    int
        ``ceil(sqrt(2) * reach) + 1``: a filled pixel within ``reach`` of a valid pixel has its
        nearest valid pixel within Euclidean distance ``sqrt(2) * reach``, so that disk lies inside
        the extended window and the nearest valid pixel found there is the whole image's.
    """
    return math.ceil(math.sqrt(2.0) * reach) + 1


def read_filled(
    read_band: Callable[[str, Tile], np.ndarray],
    read_valid: ValidReader,
    bands: Sequence[str],
    region: Tile,
    grid_shape: tuple[int, int],
    *,
    margin: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands of one grid over ``region`` with no-data filled (:func:`fill_nearest`).

    Parameters
    ----------
    read_band : callable
        ``read_band(band, tile) -> (h, w)`` DN.
    read_valid : ValidReader
    bands : sequence of str
        Bands of one grid (all 10 m, or all 20 m, or all 60 m).
    region : Tile
        On that grid, inside ``grid_shape``.
    grid_shape : (int, int)
        ``(h, w)`` of that grid, pixels.
    margin : int
        :func:`fill_margin` of the grid: when ``region`` holds no-data, the bands are read again over
        ``region`` grown by ``margin`` (clipped to the grid), filled there and cropped.

    Returns
    -------
    values : (region.height, region.width, len(bands)) float32 ndarray
        DN; valid pixels as read, no-data pixels filled.
    valid : (region.height, region.width) bool ndarray
        True where every band of ``bands`` is valid.
    """
    stack = np.stack([np.asarray(read_band(b, region), dtype=np.float32) for b in bands], axis=-1)
    valid = np.logical_and.reduce([np.asarray(read_valid(b, region), dtype=bool) for b in bands])
    if valid.all():
        return stack, valid
    from .tiling import coarse_window

    grown = coarse_window(region, ratio=1, margin=margin, coarse_shape=grid_shape)  # region grown by margin, clipped
    big = np.stack([np.asarray(read_band(b, grown), dtype=np.float32) for b in bands], axis=-1)
    big_valid = np.logical_and.reduce([np.asarray(read_valid(b, grown), dtype=bool) for b in bands])
    inner = region.relative_to(grown).slices
    return fill_nearest(big, big_valid)[inner], valid


def mask_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values`` (h, w, C) float32 with NaN (the float32 nodata) at pixels where ``valid`` (h, w) is False."""
    if valid.all():
        return values
    out = np.array(values, dtype=np.float32, copy=True)
    out[~valid] = np.nan
    return out


def scene_valid(scene) -> np.ndarray:
    """(H, W) bool: the 10 m pixels of an in-memory :class:`~ssc_edge.scene.Scene` where every 10 m and 20 m band is
    valid (0 DN rule). A 20 m band counts at the coarse pixel covering the 10 m pixel. With a ``reference`` (a
    reduced-resolution scene), its 0 DN pixels are no-data too.
    """
    from .bands import COARSE_BANDS, FINE_BANDS

    height, width = scene.shape
    valid = np.ones((height, width), dtype=bool)
    for band in FINE_BANDS + COARSE_BANDS:
        values = scene.bands[band]
        ratio = height // values.shape[0]
        band_valid = values != 0
        if ratio > 1:
            band_valid = np.repeat(np.repeat(band_valid, ratio, axis=0), ratio, axis=1)
        valid &= band_valid[:height, :width]
    if getattr(scene, "reference", None) is not None:
        valid &= np.all(scene.reference != 0, axis=-1)
    return valid
