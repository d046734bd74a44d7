"""Scene and result I/O. ``read_scene`` picks a reader by content, not by file name.

One module per format: :mod:`.mat` (MATLAB v5 / v7.3), :mod:`.npz`, :mod:`.geotiff` (GeoTIFFs
and band folders of any raster: JP2, GeoTIFF; needs the ``geo`` extra), :mod:`.safe` (SAFE
products). :mod:`.sources` reads every one of them window by window (``open_band_source``) and
defines a scene's identity (``scene_identity``). h5py and rasterio are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bands import ALL_BANDS
from ..errors import SceneReadError
from ..scene import Scene
from ._atomic import atomic_output, check_output_path
from .results import read_estimate, write_result

__all__ = [
    "atomic_output",
    "check_output_path",
    "describe_scene",
    "detect_format",
    "read_estimate",
    "read_scene",
    "write_result",
]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def detect_format(path: Path) -> str:
    """Return ``"safe"``, ``"mat"``, ``"npz"``, ``"geotiff"`` or ``"band-folder"`` from the content.

    A SAFE product (folder, zip or metadata XML) is recognised by its ``MTD_MSIL1C.xml`` /
    ``MTD_MSIL2A.xml``, and a zip named as one (``*.SAFE.zip``, ``S2A_MSIL2A_*.zip``) or holding a
    ``.SAFE`` folder is a SAFE product even when it is damaged (reading it then says so); any other
    folder is a band folder (single-band rasters named by band, see :mod:`ssc_edge.io.geotiff`);
    other files by their first bytes.

    Raises
    ------
    SceneReadError
        If the path does not exist, is unreadable, or matches no supported format.
    """
    from .safe import is_safe_product

    path = Path(path)
    if is_safe_product(path):
        return "safe"
    if path.is_dir():
        return "band-folder"
    try:
        with open(path, "rb") as f:
            head = f.read(528)
    except OSError as exc:
        raise SceneReadError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not head:
        raise SceneReadError(f"{path}: file is empty")
    if head.startswith(b"MATLAB") or head[512:520] == b"\x89HDF\r\n\x1a\n" or head[:8] == b"\x89HDF\r\n\x1a\n":
        return "mat"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        from .safe import looks_like_safe_zip

        # a zip named as a SAFE product (or holding a .SAFE folder) that is_safe_product did not accept is a
        # damaged or incomplete SAFE zip: the SAFE reader says what is wrong with it, not the .npz reader
        return "safe" if looks_like_safe_zip(path) else "npz"
    if head[:4] in _TIFF_MAGIC:
        return "geotiff"
    raise SceneReadError(f"{path}: unknown file format (not a MATLAB, NumPy .npz or GeoTIFF file)")


def read_scene(path: Path) -> Scene:
    """Read a Sentinel-2 scene from any supported file or folder.

    Parameters
    ----------
    path : Path
        A Sentinel-2 L1C/L2A SAFE product (folder or zip), a MATLAB ``.mat`` (cell or grouped
        layout, v5 or v7.3), a NumPy ``.npz`` with one
        array per band, a GeoTIFF (multi-band with band descriptions) or a folder of
        single-band GeoTIFFs named by band.

    Returns
    -------
    Scene
        Validated; every error names ``path``.

    Raises
    ------
    SceneReadError
        Unreadable, corrupt or unknown file.
    SceneError
        Readable, but the bands are missing, of the wrong size, non-finite, ...
    """
    path = Path(path)
    if not path.exists():
        raise SceneReadError(f"{path}: no such file or folder")
    kind = detect_format(path)
    if kind == "mat":
        from .mat import read_mat_scene

        return read_mat_scene(path)
    if kind == "safe":
        from .safe import read_safe_scene

        return read_safe_scene(path)
    if kind == "npz":
        from .npz import read_npz_scene

        return read_npz_scene(path)
    from .geotiff import read_geotiff_scene

    return read_geotiff_scene(path)


def _value_range(array: np.ndarray) -> dict[str, float]:
    return {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean())}


def describe_scene(scene: Scene) -> dict:
    """Summarise a scene as plain JSON types (what ``ssc-edge info`` prints).

    Returns
    -------
    dict
        ``source``, ``name``, ``shape`` (H, W of the fine grid, pixels), ``fine_pixel_size`` (m),
        ``bands``: ``{name: {"shape", "gsd" (m), "min", "max", "mean" (DN)}}`` in canonical band
        order, ``reference``: ``{"shape", "min", "max", "mean"}`` or None, ``georef``:
        ``{"transform", "crs"}`` or None.
    """
    bands = {}
    for name in sorted(scene.bands, key=ALL_BANDS.index):
        array = scene.bands[name]
        bands[name] = {"shape": list(array.shape), "gsd": scene.gsd(name), **_value_range(array)}
    reference = None
    if scene.reference is not None:
        reference = {"shape": list(scene.reference.shape), **_value_range(scene.reference)}
    georef = None
    if scene.georef is not None:
        georef = {"transform": list(scene.georef.transform), "crs": scene.georef.crs}
    return {
        "source": str(scene.source) if scene.source is not None else None,
        "name": scene.name,
        "shape": list(scene.shape),
        "fine_pixel_size": scene.fine_pixel_size,
        "bands": bands,
        "reference": reference,
        "georef": georef,
    }
