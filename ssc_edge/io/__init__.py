"""Scene and result I/O. ``read_scene`` picks a reader by content, not by file name.

One module per format: :mod:`.mat` (MATLAB v5 / v7.3), :mod:`.npz`, :mod:`.geotiff` (GeoTIFFs
and band folders of any raster: JP2, GeoTIFF; needs the ``geo`` extra), :mod:`.safe` (SAFE
products). :mod:`.sources` reads every one of them window by window (``open_band_source``) and
defines a scene's identity (``scene_identity``). h5py and rasterio are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SceneReadError
from ..scene import Scene
from .limits import check_regular_file
from .output import atomic_output, check_outputs, output_guard
from .results import read_estimate, write_result

__all__ = [
    "atomic_output",
    "check_outputs",
    "detect_format",
    "output_guard",
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
        If the path does not exist, is not a folder or a regular file (a FIFO, a device), is unreadable, or
        matches no supported format.
    """
    from .safe import is_safe_product

    path = Path(path)
    if not path.is_dir():
        check_regular_file(path)  # a FIFO would block the open below forever; a device never ends
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
    """Read a Sentinel-2 scene from any supported file or folder, whole.

    The scene comes through the one door, :func:`ssc_edge.io.sources.open_band_source`, with every check
    it makes, and is then read whole (its size added up first: :class:`ssc_edge.io.limits.ReadBudget`).

    Parameters
    ----------
    path : Path
        A Sentinel-2 L1C/L2A SAFE product (folder or zip), a MATLAB ``.mat`` (cell or grouped
        layout, v5 or v7.3), a NumPy ``.npz`` with one array per band, a GeoTIFF (multi-band with band
        descriptions) or a folder of single-band rasters named by band.

    Returns
    -------
    Scene
        Validated; every error names ``path``.

    Raises
    ------
    SceneReadError
        Unreadable, corrupt or unknown file, or one over the limits.
    SceneError
        Readable, but the bands are missing, of the wrong size, non-finite, misaligned, ...
    """
    from .sources import open_band_source

    with open_band_source(path) as source:
        return source.to_scene()
