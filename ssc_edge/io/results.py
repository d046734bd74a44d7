"""Sharpened results: write them atomically in one of three formats, read any of them back.

The writer picks the format from the suffix: ``.tif``/``.tiff`` (GeoTIFF, needs the ``geo``
extra), ``.npz`` (one array per band) or ``.mat`` (MATLAB v5, an H x W x B array ``xpr`` like
the paper's outputs, plus ``band_names``). :func:`read_estimate` reads all of these and any
``.mat``/``.npz``/``.npy`` that holds exactly one H x W x B numeric array under any name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..bands import COARSE_BANDS, band_name_or_none
from ..errors import OptionError, SceneError, SceneReadError
from ..nodata import NODATA_UINT16, output_nodata
from ..scene import GeoReference
from .cog import cloud_optimize, scratch_geotiff
from .geotiff import read_geotiff_image, write_geotiff
from .limits import check_regular_file
from .mat import read_mat_arrays, write_mat
from .npz import read_npz_arrays, split_band_arrays, write_npz
from .output import atomic_output, check_outputs
from .sources import detect_format

__all__ = ["RESULT_DTYPES", "RESULT_SUFFIXES", "read_estimate", "to_dtype", "write_result"]

logger = logging.getLogger(__name__)

#: Output suffixes :func:`write_result` understands.
RESULT_SUFFIXES = (".tif", ".tiff", ".npz", ".mat")

#: Output sample types: float32 DN, or uint16 DN rounded to the nearest integer and clipped.
RESULT_DTYPES = ("float32", "uint16")

_NPY_MAGIC = b"\x93NUMPY"


def to_dtype(image: np.ndarray, dtype: str) -> np.ndarray:
    """Convert DN to the output sample type; NaN marks no-data (:mod:`ssc_edge.nodata`).

    ``"uint16"`` rounds half to even (``numpy.rint``) and clips valid samples to [1, 65535], so
    that 0 (the uint16 nodata value) only means no-data: NaN becomes 0. ``"float32"`` casts (NaN
    stays the float32 nodata value). Raises :class:`OptionError` for any other ``dtype``.
    """
    if dtype not in RESULT_DTYPES:
        raise OptionError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(RESULT_DTYPES)}")
    if dtype == "uint16":
        image = np.asarray(image)
        out = np.clip(np.rint(image), 1, np.iinfo(np.uint16).max)
        if image.dtype.kind == "f":
            out = np.where(np.isnan(image), NODATA_UINT16, out)
        return out.astype(np.uint16)
    return np.asarray(image, dtype=np.float32)


def write_result(
    path: Path,
    image: np.ndarray,
    *,
    band_names: tuple[str, ...] = COARSE_BANDS,
    georef: GeoReference | None = None,
    dtype: str = "float32",
    force: bool = False,
    cog: bool = True,
) -> Path:
    """Write a sharpened (H, W, B) image atomically, in the format its suffix names.

    Parameters
    ----------
    path : Path
        ``.tif``/``.tiff``, ``.npz`` or ``.mat``.
    image : (H, W, B) ndarray
        Sharpened bands, DN; NaN marks no-data (:mod:`ssc_edge.nodata`), any other value is finite.
    band_names : tuple of B str
        Names of the bands along the last axis (default ``COARSE_BANDS``).
    georef : GeoReference, optional
        Georeferencing of the image grid (GeoTIFF and ``.npz`` store it; ``.mat`` stores
        ``transform`` and ``crs`` variables).
    dtype : {"float32", "uint16"}
        ``uint16`` is DN rounded to the nearest integer and clipped to [1, 65535]; no-data is 0.
    force : bool
        Overwrite an existing ``path``.
    cog : bool
        A ``.tif`` is a Cloud-Optimized GeoTIFF (:func:`ssc_edge.io.cog.cloud_optimize`: 512 px
        tiles, DEFLATE, overviews); False: a plain tiled (256 x 256) DEFLATE GeoTIFF. Ignored for
        ``.npz`` and ``.mat``.

    Returns
    -------
    Path
        ``path``. Nothing is left there, and no temporary file beside it, if writing fails.
        No-data: a GeoTIFF carries the nodata tag (NaN for float32, 0 for uint16); ``.npz`` and
        ``.mat`` hold the same samples (NaN in float32, 0 in uint16) and no separate mask.

    Raises
    ------
    OptionError
        Unknown suffix or dtype, an image that is not (H, W, B) with B names, infinite values.
    OutputError
        ``path`` exists (without ``force``), its folder is missing or not writable, the disk is full.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        shown = suffix or "(no suffix)"
        raise OptionError(f"{path}: unsupported output format {shown!r}; use {', '.join(RESULT_SUFFIXES)}")
    image = np.asarray(image)
    band_names = tuple(band_names)
    if image.ndim != 3 or image.shape[2] != len(band_names) or image.dtype.kind not in "uif":
        raise OptionError(
            f"{path}: result must be a real (H, W, {len(band_names)}) array for bands {', '.join(band_names)}, "
            f"got {image.dtype} {'x'.join(map(str, image.shape))}"
        )
    if np.isinf(image).any():
        raise OptionError(f"{path}: result has {int(np.isinf(image).sum())} infinite values")
    data = to_dtype(image, dtype)
    check_outputs([path], force=force)
    with atomic_output(path) as tmp:
        if suffix == ".npz":
            write_npz(tmp, data, band_names=band_names, georef=georef)
        elif suffix == ".mat":
            extra: dict[str, object] = {"band_names": np.array(band_names, dtype=object)}
            if georef is not None:
                extra.update(transform=np.asarray(georef.transform, dtype=np.float64), crs=georef.crs)
            write_mat(tmp, data, name="xpr", extra=extra)
        else:
            tiff = {"band_names": band_names, "georef": georef, "dtype": dtype, "nodata": output_nodata(dtype)}
            if cog:
                with scratch_geotiff(path) as plain:
                    write_geotiff(plain, data, **tiff)
                    cloud_optimize(plain, tmp, name=path)
            else:
                write_geotiff(tmp, data, **tiff)
    logger.debug("wrote %s (%dx%dx%d %s)", path, *data.shape, dtype)
    return path


def _read_arrays(path: Path, kind: str) -> dict[str, np.ndarray]:
    if kind == "npy":
        try:
            return {"array": np.asarray(np.load(path, allow_pickle=False))}
        except (OSError, ValueError, EOFError) as exc:
            raise SceneReadError(f"{path}: cannot read .npy file ({type(exc).__name__}: {exc})") from None
    if kind == "npz":
        return read_npz_arrays(path)
    arrays = read_mat_arrays(path)
    out = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray)}
    if isinstance(arrays.get("band_names"), list):  # a cell array of strings
        out["band_names"] = np.array([_cell_string(c) for c in arrays["band_names"]])
    return out


def _cell_string(cell: object) -> str:
    cell = np.asarray(cell)
    if cell.dtype.kind == "U":
        return "".join(cell.ravel().tolist()).strip()
    if cell.dtype.kind in "ui":  # v7.3 stores MATLAB char arrays as uint16 codes
        return "".join(chr(int(c)) for c in cell.ravel()).strip()
    return ""


def _from_arrays(arrays: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    bands, _ = split_band_arrays(arrays, path)
    if bands:
        names = tuple(bands)
        shapes = {b.shape for b in bands.values()}
        if len(shapes) != 1 or any(b.ndim != 2 for b in bands.values()):
            found = ", ".join(f"{n} {'x'.join(map(str, b.shape))}" for n, b in bands.items())
            raise SceneError(f"{path}: band arrays of an estimate must all be (H, W) of one size, got {found}")
        if any(b.dtype.kind not in "uif" for b in bands.values()):
            raise SceneError(f"{path}: band arrays must be integer or float")
        return np.stack(list(bands.values()), axis=-1), names
    candidates = {k: v for k, v in arrays.items() if v.ndim == 3 and v.dtype.kind in "uifcb"}
    if len(candidates) != 1:
        found = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in arrays.items()) or "nothing"
        what = "several" if candidates else "no"
        raise SceneReadError(f"{path}: {what} H x W x B arrays; an estimate file holds exactly one (found {found})")
    (image,) = candidates.values()
    stored = arrays.get("band_names")
    names = tuple(str(n) for n in stored.ravel()) if stored is not None and stored.dtype.kind == "U" else None
    return image, names


def read_estimate(path: Path) -> np.ndarray:
    """Read a sharpened image written by :func:`write_result`, the paper, or any tool.

    Parameters
    ----------
    path : Path
        A GeoTIFF, ``.npz``, ``.mat`` (v5 or v7.3; v7.3 arrays are transposed back to MATLAB's
        H x W x B) or ``.npy``. The format is recognised by content. The file holds either one
        H x W x B array under any name (``xpr`` in the paper's outputs) or one (H, W) array per
        band named by band.

    Returns
    -------
    (H, W, B) float32 ndarray
        DN, NaN at no-data (a GeoTIFF's nodata tag, NaN, and 0 in an integer ``.npz``/``.mat``).
        When the file names its bands and they are exactly ``COARSE_BANDS``, they are
        returned in ``COARSE_BANDS`` order; otherwise in file order.

    Raises
    ------
    SceneReadError
        Missing, unreadable or corrupt file; no (or several) H x W x B arrays.
    SceneError
        Unsupported dtype (complex, bool), empty, or infinite values.
    """
    path = Path(path)
    check_regular_file(path)  # before the first bytes are read: a FIFO would block
    with open(path, "rb") as f:
        kind = "npy" if f.read(6) == _NPY_MAGIC else detect_format(path)
    if kind == "geotiff":
        image, descriptions, _, nodata = read_geotiff_image(path)
        names = tuple(d or "" for d in descriptions)
        image = _nodata_to_nan(image, nodata)
    else:
        image, names = _from_arrays(_read_arrays(path, kind), path)
        if image.dtype.kind in "ui":  # 0 is the integer nodata value (ssc_edge.nodata)
            image = _nodata_to_nan(image, [NODATA_UINT16] * image.shape[-1])
    return _check_estimate(image, names, path)


def _nodata_to_nan(image: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    """(H, W, B) float32 with NaN where a band equals its nodata value (None: no nodata)."""
    if all(v is None for v in nodata):
        return image
    out = image.astype(np.float32)
    for band, value in enumerate(nodata):
        if value is not None and not np.isnan(value):
            out[..., band][image[..., band] == value] = np.nan
    return out


def _check_estimate(image: np.ndarray, names: tuple[str, ...] | None, path: Path) -> np.ndarray:
    """Check an (H, W, B) image as read: float32, in ``COARSE_BANDS`` order when ``names`` are those bands."""
    if image.dtype.kind not in "uif":
        raise SceneError(f"{path}: estimate has unsupported dtype {image.dtype} (expected integer or float)")
    if image.size == 0:
        raise SceneError(f"{path}: estimate is empty ({'x'.join(map(str, image.shape))})")
    image = image.astype(np.float32)
    if np.isinf(image).any():
        raise SceneError(f"{path}: estimate has {int(np.isinf(image).sum())} infinite values")
    names = tuple(band_name_or_none(n) or n for n in names) if names is not None else None
    if names is not None and len(names) == image.shape[2] and set(names) == set(COARSE_BANDS):
        image = image[..., [names.index(b) for b in COARSE_BANDS]]
    return np.ascontiguousarray(image)
