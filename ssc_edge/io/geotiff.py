"""GeoTIFF scenes and results, and folders of single-band rasters (read with rasterio, a base dependency).

A scene is either

- a **folder** of rasters in any format rasterio opens: single-band files named by band as in a SAFE
  granule's ``IMG_DATA`` (``T31TDH_20150726T105026_B05.jp2``, ``..._B05_20m.jp2``, ``B05.tif``: the band
  token at the end of the stem, optionally followed by ``_10m``/``_20m``/``_60m``) and/or multi-band
  GeoTIFFs whose band descriptions are band names. Files naming no band (``_TCI.jp2``, ``B10``) or at
  another resolution than their band's (``_B02_20m``) are skipped; two files holding one band are an
  error. An L2A granule's ``IMG_DATA``, with its ``R10m``/``R20m``/``R60m`` folders, reads the same way; or
- **one multi-band GeoTIFF** whose band descriptions are band names (all on one grid, so usable only if
  every band is on the fine grid, which :class:`~ssc_edge.scene.Scene` refuses for real scenes).

:class:`ssc_edge.io.sources.RasterBandSource` checks and reads the grids: the georeferencing of the file
holding ``B02`` becomes ``Scene.georef``; the fine pixel size is its pixel width when the CRS is projected
in metres, else 10 m.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..bands import GSD, band_name_or_none
from ..errors import SceneReadError
from ..scene import GeoReference, check_transform
from .limits import check_regular_file

__all__ = [
    "band_of_file_name",
    "geotiff_band_sources",
    "open_raster",
    "read_geotiff_image",
    "tiled_profile",
    "write_geotiff",
]

logger = logging.getLogger(__name__)

_SUFFIXES = (".tif", ".tiff")

#: Files in a band folder that are never rasters (sidecars, metadata); everything else is tried.
_NOT_RASTERS = (".xml", ".aux", ".ovr", ".json", ".txt", ".md", ".csv", ".html", ".prj", ".tfw", ".wld",
                ".qml", ".msk", ".gml", ".safe", ".py", ".zip", ".npz", ".mat", ".png")  # fmt: skip

#: The subfolders of an L2A granule's ``IMG_DATA`` that hold its rasters, one per resolution.
_L2A_RESOLUTION_FOLDERS = ("R10m", "R20m", "R60m")

#: A band token at the end of a file stem, with an optional resolution suffix: ``..._B05``, ``..._B8A_20m``.
_BAND_STEM = re.compile(r"(?:^|_)(B(?:\d{1,2}|8A))(?:_(\d\d)m)?$", re.IGNORECASE)


def band_of_file_name(path: Path) -> tuple[str, int | None] | None:
    """The band a single-band raster's file name claims, and its resolution suffix in metres.

    ``T31TDH_20150726T105026_B05.jp2`` -> ``("B05", None)``; ``T29UNU_..._B8A_20m.jp2`` ->
    ``("B8A", 20)``; ``..._TCI.jp2`` and ``..._B10.jp2`` (a band ssc-edge does not use) -> None.
    """
    name = Path(path).name
    stem = name[: -len(".aux.xml")] if name.lower().endswith(".aux.xml") else Path(name).stem
    match = _BAND_STEM.search(stem)
    band = band_name_or_none(match.group(1)) if match is not None else None
    if band is None:
        return None
    return band, int(match.group(2)) if match.group(2) else None


@contextlib.contextmanager
def not_georeferenced_is_fine() -> Iterator[None]:
    """A raster of a scene without georeferencing (a ``.mat`` file's product) is a plain image: no warning."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_raster(path: Path | str):
    """Open a raster for reading (a regular file, or a GDAL ``/vsi...`` path); any rasterio failure becomes a
    one-line :class:`SceneReadError`. The dataset is a context manager."""
    import rasterio

    if not str(path).startswith("/vsi"):
        check_regular_file(path)
    try:
        with not_georeferenced_is_fine():
            return rasterio.open(path)
    except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SceneReadError(f"{path}: cannot read raster ({message})") from None


def _file_bands(path: Path, *, strict: bool) -> dict[str, int]:
    """Band name -> 1-based index for one GeoTIFF, from its name (single band) or band descriptions."""
    with open_raster(path) as dataset:
        descriptions = dataset.descriptions
        count = dataset.count
    names: dict[str, int] = {}
    if count == 1:
        named = band_of_file_name(path)
        band = named[0] if named is not None else band_name_or_none(descriptions[0] or "")
        if band is not None:
            return {band: 1}
        if strict:
            raise SceneReadError(f"{path}: neither the file name nor the band description names a Sentinel-2 band")
        return {}
    for index, description in enumerate(descriptions, start=1):
        band = band_name_or_none(description or "")
        if band is None:
            if strict:
                raise SceneReadError(
                    f"{path}: band {index} description {description!r} is not a Sentinel-2 band name "
                    "(a multi-band GeoTIFF must name its bands B02, B03, ...)"
                )
            return {}
        if band in names:
            raise SceneReadError(f"{path}: bands {names[band]} and {index} are both described as {band}")
        names[band] = index
    return names


def geotiff_band_sources(path: Path) -> dict[str, tuple[Path, int]]:
    """Find where each band of a raster scene (see module notes) lives, without reading pixels.

    Returns canonical band name -> (file, 1-based band index in that file), in file-name order. Raises
    :class:`SceneReadError` for an unreadable file, two files (or two bands) holding one band, or no band.
    """
    path = Path(path)
    sources: dict[str, tuple[Path, int]] = {}

    def add(band: str, file: Path, index: int) -> None:
        if band in sources:
            raise SceneReadError(f"{path}: band {band} is in both {sources[band][0].name} and {file.name}")
        sources[band] = (file, index)

    if not path.is_dir():
        for band, index in _file_bands(path, strict=True).items():
            add(band, path, index)
        return sources
    folders = [path, *(path / name for name in _L2A_RESOLUTION_FOLDERS if (path / name).is_dir())]
    files = sorted(p for folder in folders for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for file in files:
        suffix = file.suffix.lower()
        if suffix in _NOT_RASTERS or file.name.lower().endswith(".aux.xml"):
            continue
        named = band_of_file_name(file)
        if named is not None and named[1] is not None and named[1] != GSD[named[0]]:
            logger.debug("%s: skipping %s (%s at %d m, not its native %d m)", path, file.name, named[0], named[1],
                         GSD[named[0]])  # fmt: skip
            continue
        if suffix in _SUFFIXES:
            for band, index in _file_bands(file, strict=False).items():
                add(band, file, index)
        elif named is not None:
            add(named[0], file, 1)
    if not sources:
        raise SceneReadError(
            f"{path}: no raster named by a Sentinel-2 band (T31TDH_20150726T105026_B02.jp2, B02.tif, ..., "
            "or GeoTIFF band descriptions)"
        )
    return sources


def read_geotiff_image(
    path: Path,
) -> tuple[np.ndarray, tuple[str | None, ...], GeoReference | None, tuple[float | None, ...]]:
    """Read every band of one GeoTIFF as an (H, W, B) array.

    Returns
    -------
    image : (H, W, B) ndarray
        The file's dtype (DN).
    descriptions : tuple of B (str or None)
        Band descriptions as stored.
    georef : GeoReference or None
        Its transform checked (:func:`~ssc_edge.scene.check_transform`), naming the file.
    nodata : tuple of B (float or None)
        Each band's nodata tag (None without one).
    """
    path = Path(path)
    with open_raster(path) as dataset:
        try:
            data = dataset.read()
        except Exception as exc:  # rasterio/GDAL raise several types for corrupt tiles
            raise SceneReadError(f"{path}: cannot read GeoTIFF ({type(exc).__name__}: {exc})") from None
        georef = None
        if dataset.crs is not None:
            georef = GeoReference(check_transform(tuple(dataset.transform)[:6], where=str(path)), dataset.crs.to_wkt())
        return np.moveaxis(data, 0, -1), tuple(dataset.descriptions), georef, tuple(dataset.nodatavals)


def tiled_profile(
    shape: tuple[int, int], count: int, dtype: str, *, block: int, georef: GeoReference | None = None, **options: object
) -> dict[str, object]:
    """The rasterio profile of a tiled, band-interleaved GeoTIFF of ``shape`` (H, W) pixels and ``count`` bands of
    ``dtype``, in ``block`` x ``block`` px tiles; ``georef`` gives its CRS and transform (none: not georeferenced);
    ``options`` are further creation options (``compress``, ``nodata``, ``BIGTIFF``...)."""
    from rasterio.transform import Affine

    profile = {"driver": "GTiff", "height": shape[0], "width": shape[1], "count": count, "dtype": dtype, "tiled": True,
               "blockxsize": block, "blockysize": block, "interleave": "band", **options}  # fmt: skip
    if georef is not None:
        profile.update(crs=georef.crs, transform=Affine(*georef.transform))
    return profile


def write_geotiff(
    path: Path,
    image: np.ndarray,
    *,
    band_names: tuple[str, ...],
    georef: GeoReference | None = None,
    dtype: str = "float32",
    nodata: float | None = None,
) -> None:
    """Write an (H, W, B) image as a tiled, DEFLATE-compressed GeoTIFF with band descriptions.

    Writes exactly ``path`` and is not atomic by itself; use
    :func:`ssc_edge.io.results.write_result` for checked, atomic outputs.

    Parameters
    ----------
    path : Path
    image : (H, W, B) ndarray
        DN; cast to ``dtype`` as is (round and clip first for integer outputs).
    band_names : tuple of B str
        Written as band descriptions.
    georef : GeoReference, optional
        Transform and CRS of the image grid; without it the file is not georeferenced.
    dtype : str
        Any dtype GDAL stores (``"float32"``, ``"uint16"``, ...).
    nodata : float, optional
        The nodata tag of every band (NaN allowed for float; see :mod:`ssc_edge.nodata`).
    """
    import rasterio

    image = np.asarray(image)
    height, width, count = image.shape
    options = {} if nodata is None else {"nodata": nodata}
    # zlevel 1 as the streamed writer (runtime.stream): same size, about 2x faster than level 6
    profile = tiled_profile((height, width), count, dtype, block=256, georef=georef, compress="deflate", zlevel=1,
                            predictor=3 if np.dtype(dtype).kind == "f" else 2, **options)  # fmt: skip
    with not_georeferenced_is_fine(), rasterio.open(path, "w", **profile) as dataset:
        dataset.write(np.moveaxis(image.astype(dtype, copy=False), -1, 0))
        for index, name in enumerate(band_names, start=1):
            dataset.set_band_description(index, name)
