"""NumPy ``.npz`` scenes and results: one 2-D array per band, named by band.

Layout
------
- ``B02``, ``B03``, ... ``B8A``, ``B12`` (any spelling :func:`~ssc_edge.bands.canonical_band_name`
  accepts, e.g. ``B2`` or ``b8a``): one (h, w) array of DN per band, each on its own grid.
- ``reference`` (optional): (H, W, 6) true 20 m bands at the fine grid size, ``COARSE_BANDS`` order.
- ``transform`` (optional): 6 floats, affine order ``a, b, c, d, e, f`` of the fine grid, and
  ``crs`` (optional): a 0-d string array (WKT or ``EPSG:nnnn``).
- ``fine_pixel_size`` (optional): scalar, metres per fine-grid pixel.

Arrays are read with ``allow_pickle=False``: an object array is an error, never code to run. Every member
is an ``.npy`` array whether or not its name ends in ``.npy``. Only the members a read uses are decompressed,
after their ``.npy`` headers (a few hundred bytes) were added up for the whole file
(:class:`ssc_edge.io.limits.ReadBudget`): a zip bomb costs nothing.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..bands import band_name_or_none
from ..errors import SceneError, SceneReadError
from ..scene import GeoReference, Scene, _kind
from .limits import ReadBudget

__all__ = ["read_npz_arrays", "read_npz_scene", "split_band_arrays", "write_npz"]

logger = logging.getLogger(__name__)

_META_KEYS = ("reference", "transform", "crs", "fine_pixel_size")

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, RuntimeError)


def read_npz_arrays(
    path: Path, *, wanted: Callable[[str], bool] | None = None, as_float32: Callable[[str], bool] | None = None
) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` file that ``wanted`` names (all by default), in file order.

    Parameters
    ----------
    path : Path
    wanted : callable, optional
        ``wanted(key) -> bool`` for each member's key (its name without ``.npy``); members not wanted are
        never decompressed.
    as_float32 : callable, optional
        ``as_float32(key) -> bool``: the caller keeps a float32 copy of that array, counted in the budget.

    Raises
    ------
    SceneReadError
        Not a readable ``.npz`` archive, a member that is not an ``.npy`` array, pickled objects, or what the
        wanted members declare over the file's budget (:class:`~ssc_edge.io.limits.ReadBudget`).
    """
    from numpy.lib import format as npy

    path = Path(path)
    budget = ReadBudget(str(path))
    try:
        with zipfile.ZipFile(path) as archive:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                key = info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename
                if key in members:
                    raise SceneReadError(f"{path}: members {members[key].filename!r} and {info.filename!r} clash")
                if wanted is None or wanted(key):
                    members[key] = info
            for key, info in members.items():
                with archive.open(info) as member:
                    shape, dtype = _npy_header(member, path, key)
                float32 = as_float32 is not None and as_float32(key)
                budget.add(shape, dtype, what=f"array {key!r}", as_float32=float32)  # only that much is read
            out = {}
            for key, info in members.items():
                with archive.open(info) as member:
                    out[key] = npy.read_array(member, allow_pickle=False)
            return out
    except SceneReadError:
        raise
    except MemoryError:
        raise SceneReadError(f"{path}: not enough memory to read the .npz file ({budget.total / 1e9:.3g} GB)") from None
    except _READ_ERRORS as exc:
        raise SceneReadError(f"{path}: cannot read .npz file ({type(exc).__name__}: {exc})") from None


def _npy_header(member, path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one member's ``.npy`` header; the data is not read."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(member)
    except ValueError:
        raise SceneReadError(f"{path}: member {key!r} is not a NumPy .npy array") from None
    # 2.0 and 3.0 (UTF-8 field names) share the header layout (a 4-byte length)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, _, dtype = read(member)
    if dtype.hasobject:
        raise SceneReadError(f"{path}: array {key!r} holds Python objects (pickled); refused")
    return shape, dtype


def split_band_arrays(arrays: dict[str, np.ndarray], path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split arrays into ``{canonical band name: array}`` and the other entries; :class:`SceneError` if two
    entries name the same band (``B2`` and ``B02``)."""
    bands: dict[str, np.ndarray] = {}
    others: dict[str, np.ndarray] = {}
    spelled: dict[str, str] = {}
    for key, value in arrays.items():
        band = band_name_or_none(key)
        if band is None:
            others[key] = value
            continue
        if band in bands:
            raise SceneError(f"{path}: arrays {spelled[band]!r} and {key!r} both hold band {band}")
        bands[band], spelled[band] = value, key
    return bands, others


def _describe(array: np.ndarray) -> str:
    return repr(array.ravel()[0].item()) if array.size == 1 and array.dtype.kind in "uifb" else _kind(array)


def read_npz_scene(path: Path) -> Scene:
    """Read a scene stored as one array per band in a NumPy ``.npz`` file.

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
    keys: list[str] = []

    def wanted(key: str) -> bool:  # a member a scene uses: a band (any spelling) or one of the metadata keys
        keys.append(key)
        return key in _META_KEYS or band_name_or_none(key) is not None

    arrays = read_npz_arrays(path, wanted=wanted, as_float32=lambda key: key not in _META_KEYS or key == "reference")
    bands, others = split_band_arrays(arrays, path)
    if not bands:
        found = ", ".join(keys) or "nothing"
        raise SceneReadError(f"{path}: unknown .npz layout: expected one array per band (B02, ..., B12), found {found}")
    ignored = [key for key in keys if key not in arrays]
    if ignored:
        logger.debug("%s: not reading arrays %s (no band uses them)", path, ", ".join(ignored))
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
        georef=GeoReference.stored(others, where=str(path)),
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
    arrays = {name: image[..., i] for i, name in enumerate(band_names)}
    if georef is not None:
        arrays["transform"] = np.asarray(georef.transform, dtype=np.float64)
        arrays["crs"] = np.asarray(georef.crs)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
