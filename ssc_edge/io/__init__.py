"""Scene and result I/O. ``read_scene`` picks a reader by content, not by file name.

One module per format: :mod:`.mat` (MATLAB v5 / v7.3), :mod:`.npz`, :mod:`.geotiff` (GeoTIFFs
and band folders of any raster: JP2, GeoTIFF; needs the ``geo`` extra), :mod:`.safe` (SAFE
products). :mod:`.sources` reads every one of them window by window (``open_band_source``) and
defines a scene's identity (``scene_identity``). h5py and rasterio are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from ..scene import Scene
from .output import atomic_output, check_outputs, output_guard
from .results import read_estimate, write_result
from .sources import detect_format, open_band_source

__all__ = [
    "atomic_output",
    "check_outputs",
    "detect_format",
    "output_guard",
    "read_estimate",
    "read_scene",
    "write_result",
]


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
    with open_band_source(path) as source:
        return source.to_scene()
