"""NumPy ``.npz`` scenes and results: one 2-D array per band, named by band.

Layout
------
- ``B02``, ``B03``, ... ``B8A``, ``B12`` (any spelling :func:`~ssc_edge.bands.canonical_band_name`
  accepts, e.g. ``B2`` or ``b8a``): one (h, w) array of DN per band, each on its own grid.
- ``reference`` (optional): (H, W, 6) true 20 m bands at the fine grid size, ``COARSE_BANDS`` order.
- ``transform`` (optional): 6 floats, affine order ``a, b, c, d, e, f`` of the fine grid, and
  ``crs`` (optional): a 0-d string array (WKT or ``EPSG:nnnn``).
- ``fine_pixel_size`` (optional): scalar, metres per fine-grid pixel.

Arrays are read with ``allow_pickle=False``: an object array is an error, never code to run.
Each member's ``.npy`` header (its declared shape and dtype) is read first, without decompressing
the data, and an array larger than :data:`ssc_edge.io.limits.MAX_ARRAY_BYTES` is refused before
anything is read (a zip bomb costs nothing).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from ..bands import VERY_COARSE_BANDS, canonical_band_name
from ..errors import OptionError, SceneError, SceneReadError
from ..scene import GeoReference, Scene
from . import limits
from .limits import check_array_size, check_zip_member

__all__ = ["check_npz_sizes", "read_npz_arrays", "read_npz_scene", "split_band_arrays", "write_npz"]

logger = logging.getLogger(__name__)

_META_KEYS = ("reference", "transform", "crs", "fine_pixel_size")


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file into memory, in file order.

    Raises
    ------
    SceneReadError
        If the file is not a readable ``.npz`` archive or holds pickled objects.
    """
    path = Path(path)
    try:
        check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            return {key: np.asarray(archive[key]) for key in archive.files}
    except SceneReadError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, RuntimeError) as exc:
        raise SceneReadError(f"{path}: cannot read .npz file ({type(exc).__name__}: {exc})") from None
    except AttributeError:  # np.load returned a plain array: an .npy file, not an archive
        raise SceneReadError(f"{path}: not an .npz archive") from None


def check_npz_sizes(path: Path) -> None:
    """Refuse an ``.npz`` whose members declare more than :data:`~ssc_edge.io.limits.MAX_ARRAY_BYTES`.

    Reads the zip's central directory and each ``.npy`` member's header (a few hundred bytes of
    it decompressed), never the array data.

    Raises
    ------
    SceneReadError
        A member's declared array or uncompressed size over the limit. A malformed archive or
        header raises what :func:`numpy.load` would (``BadZipFile``, ``ValueError``), reported by
        :func:`read_npz_arrays`.
    """
    from numpy.lib import format as npy

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    # 2.0 and 3.0 (UTF-8 field names) share the header layout (a 4-byte length)
                    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read(member)
                check_array_size(shape, dtype, where=f"{path}: array {info.filename[: -len('.npy')]!r}")
            # the uncompressed size: the array plus its header (at most 64 kB of header in any .npy version)
            check_zip_member(info, where=str(path), max_bytes=limits.MAX_ARRAY_BYTES + (1 << 16))


def split_band_arrays(arrays: dict[str, np.ndarray], path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split arrays into ``{canonical band name: array}`` and the other entries.

    Raises
    ------
    SceneError
        If two entries name the same band (``B2`` and ``B02``).
    """
    bands: dict[str, np.ndarray] = {}
    others: dict[str, np.ndarray] = {}
    spelled: dict[str, str] = {}
    for key, value in arrays.items():
        try:
            band = canonical_band_name(key)
        except KeyError:
            others[key] = value
            continue
        if band in bands:
            raise SceneError(f"{path}: arrays {spelled[band]!r} and {key!r} both hold band {band}")
        bands[band], spelled[band] = value, key
    return bands, others


def _describe(array: np.ndarray) -> str:
    if array.size == 1 and array.dtype.kind in "uifb":
        return repr(array.ravel()[0].item())
    return f"a {array.dtype} array of shape {'x'.join(map(str, array.shape)) or '()'}"


def _georef(others: dict[str, np.ndarray], path: Path) -> GeoReference | None:
    if "transform" not in others and "crs" not in others:
        return None
    if "transform" not in others or "crs" not in others:
        raise SceneError(f"{path}: georeferencing needs both 'transform' (6 floats) and 'crs' (a string)")
    transform, crs = others["transform"], others["crs"]
    if transform.dtype.kind not in "uif" or transform.size != 6 or not np.all(np.isfinite(transform)):
        raise SceneError(f"{path}: 'transform' must be 6 finite numbers (a, b, c, d, e, f), got {_describe(transform)}")
    if crs.dtype.kind != "U" or crs.size != 1:
        raise SceneError(f"{path}: 'crs' must be one string (WKT or EPSG:nnnn), got dtype {crs.dtype}")
    return GeoReference(tuple(float(v) for v in transform.ravel()), str(crs.ravel()[0]))  # type: ignore[arg-type]


def read_npz_scene(path: Path) -> Scene:
    """Read a scene stored as one array per band in a NumPy ``.npz`` file.

    Parameters
    ----------
    path : Path
        ``.npz`` archive in the layout of this module's docstring.

    Returns
    -------
    Scene
        Bands as float32 DN; all-zero 60 m bands are dropped. ``fine_pixel_size`` is the stored
        value, else 20 m when a ``reference`` is present (an RR scene), else 10 m.

    Raises
    ------
    SceneReadError
        Not a readable ``.npz``, or no array is named by a band.
    SceneError
        Bands missing, of the wrong size, non-finite, of an unsupported dtype, ...
    """
    path = Path(path)
    arrays = read_npz_arrays(path)
    bands, others = split_band_arrays(arrays, path)
    if not bands:
        found = ", ".join(arrays) or "nothing"
        raise SceneReadError(f"{path}: unknown .npz layout: expected one array per band (B02, ..., B12), found {found}")
    ignored = [key for key in others if key not in _META_KEYS]
    if ignored:
        logger.debug("%s: ignoring arrays %s", path, ", ".join(ignored))
    for name in VERY_COARSE_BANDS:
        if name in bands and bands[name].dtype.kind in "uif" and not np.any(bands[name]):
            logger.debug("%s: dropping all-zero placeholder band %s", path, name)
            del bands[name]
    reference = others.get("reference")
    fine_pixel_size = 20.0 if reference is not None else 10.0
    if "fine_pixel_size" in others:
        value = others["fine_pixel_size"]
        if value.dtype.kind not in "uif" or value.size != 1 or not np.isfinite(value).all() or value.ravel()[0] <= 0:
            raise SceneError(f"{path}: 'fine_pixel_size' must be one positive number of metres, got {_describe(value)}")
        fine_pixel_size = float(value.ravel()[0])
    return Scene(
        bands=bands,
        reference=reference,
        fine_pixel_size=fine_pixel_size,
        georef=_georef(others, path),
        source=path,
        name=path.stem,
    )


def write_npz(
    path: Path, image: np.ndarray, *, band_names: tuple[str, ...], georef: GeoReference | None = None
) -> None:
    """Write an (H, W, B) image as a compressed ``.npz``, one (H, W) array per band.

    Writes exactly ``path`` (no ``.npz`` is appended) and is not atomic by itself; use
    :func:`ssc_edge.io.results.write_result` for checked, atomic outputs.

    Parameters
    ----------
    path : Path
    image : (H, W, B) ndarray
        Any real dtype, stored as is (DN).
    band_names : tuple of B str
        Array names, in the order of the last axis.
    georef : GeoReference, optional
        Stored as ``transform`` (6 float64) and ``crs`` (string).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != len(band_names):
        raise OptionError(f"image must be (H, W, {len(band_names)}) for bands {band_names}, got {image.shape}")
    arrays = {name: image[..., i] for i, name in enumerate(band_names)}
    if georef is not None:
        arrays["transform"] = np.asarray(georef.transform, dtype=np.float64)
        arrays["crs"] = np.asarray(georef.crs)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
