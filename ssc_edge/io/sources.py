"""Windowed band sources: every scene format read window by window, and a scene's identity.

A :class:`BandSource` serves one band's window at a time, on that band's own grid, as float32 DN
(the same values :func:`ssc_edge.io.read_scene` gives for the whole scene). It is what lets the
runtime (and the trainer) work through a full 10980 x 10980 Sentinel-2 tile in memory bounded by
the window, not the scene::

    with open_band_source("S2A_MSIL2A_....SAFE") as source:
        source.shape                       # (H, W) of the 10 m grid
        source.bands                       # ("B02", "B03", ..., "B12"), canonical order
        source.read("B05", Tile(0, 0, 256, 256))   # (256, 256) float32 DN of B05's 20 m grid

Implementations
---------------
- **Rasters** (:class:`RasterBandSource`), read with rasterio windowed reads and kept open:
  a SAFE product (folder, ``.zip`` through ``/vsizip/``, or its metadata XML; band files and the
  DN conversion ``(DN + offset) / quantification x 10000``, nodata -> 0, from
  :mod:`ssc_edge.io.safe`), a folder of single-band rasters named by band (JPEG 2000, GeoTIFF, any
  format rasterio opens; see :mod:`ssc_edge.io.geotiff`) and a multi-band GeoTIFF.
- **Arrays** (:class:`ArrayBandSource`): ``.mat`` and ``.npz`` files (their formats cannot be
  read in windows, so they are read whole with the existing readers) and in-memory
  :class:`~ssc_edge.scene.Scene` values (:meth:`BandSource.from_scene`).

Every source checks its grids when opened: the 10 m bands share one (H, W) grid, the 20 m bands
are exactly (H/2, W/2) and, when georeferenced, start at the 10 m grid's corner.

Scene identity
--------------
:func:`scene_identity` is the scene's ``sha256`` (hex) that a fitted model records as
``scene_sha256`` and that ``infer``/``batch`` compare with the scene they sharpen:

- a single file (``.mat``, ``.npz``, a multi-band GeoTIFF): the sha256 of its bytes;
- a SAFE product (folder, ``.zip`` or metadata XML) or a band folder: the sha256 of the UTF-8 text
  ``"B02 <sha256 of the B02 file>\\nB03 <...>\\n..."``, one line per band ssc-edge uses
  (``B02 B03 B04 B08 B05 B06 B07 B8A B11 B12`` that are present, in that order: 10 m bands
  then 20 m bands), each hash over the band file's bytes. Metadata, quicklooks and 60 m bands do
  not count, so a SAFE folder, its zip, and a folder holding its 10 band files (L1C) have one
  identity.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, GSD, VERY_COARSE_BANDS
from ..errors import SceneError, SceneReadError
from ..tiling import Tile
from ..scene import GeoReference, Scene
from .limits import check_array_size

__all__ = [
    "ArrayBandSource",
    "BandSource",
    "RasterBandSource",
    "central_scene",
    "describe_source",
    "open_band_source",
    "scene_identity",
]

logger = logging.getLogger(__name__)

#: The bands ssc-edge uses, in the order of a folder's or a SAFE product's identity.
IDENTITY_BANDS: tuple[str, ...] = FINE_BANDS + COARSE_BANDS

#: Rows read at a time when a whole band is scanned (for no-data checks and summaries), band pixels.
SCAN_ROWS = 1024


def _sha256_stream(read: Callable[[int], bytes]) -> str:
    digest = hashlib.sha256()
    while block := read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _file_sha256(path: Path | str) -> str:
    try:
        with open(path, "rb") as f:
            return _sha256_stream(f.read)
    except OSError as exc:
        raise SceneReadError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _band_digest(hashes: Mapping[str, str]) -> str:
    text = "".join(f"{band} {hashes[band]}\n" for band in IDENTITY_BANDS if band in hashes)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _gdal_file_sha256(gdal_path: str, product_path: Path) -> str:
    """sha256 of a band file given by its GDAL path (a plain path or ``/vsizip/ZIP/member``)."""
    prefix = f"/vsizip/{product_path.resolve()}/"
    if not gdal_path.startswith(prefix):
        return _file_sha256(gdal_path)
    try:
        with zipfile.ZipFile(product_path) as archive, archive.open(gdal_path[len(prefix) :]) as member:
            return _sha256_stream(member.read)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise SceneReadError(f"{product_path}: cannot read {gdal_path[len(prefix) :]} ({exc})") from None


def scene_identity(path: Path) -> str:
    """The documented identity of a scene file or folder: a sha256 hex digest (see module notes).

    Parameters
    ----------
    path : Path
        Any scene :func:`open_band_source` opens.

    Returns
    -------
    str
        64 hex digits. A single file: the sha256 of its bytes. A SAFE product or a band folder:
        the sha256 over ``"BAND <sha256 of its file>\\n"`` lines of the bands ssc-edge uses.

    Raises
    ------
    SceneReadError
        The path does not exist, a file cannot be read, or a band folder / SAFE product lists no
        band (or a band file that is missing).
    """
    from . import detect_format

    path = Path(path)
    if not path.exists():
        raise SceneReadError(f"{path}: no such file or folder")
    kind = detect_format(path)
    if kind == "safe":
        from .safe import read_safe_product

        product = read_safe_product(path)
        hashes = {b: _gdal_file_sha256(f, path) for b, f in product.band_files.items() if b in IDENTITY_BANDS}
        return _band_digest(hashes)
    if kind == "band-folder":
        from .geotiff import geotiff_band_sources

        sources = geotiff_band_sources(path)
        hashes: dict[str, str] = {}
        by_file: dict[Path, str] = {}
        for band, (file, _) in sources.items():
            if band in IDENTITY_BANDS:
                if file not in by_file:
                    by_file[file] = _file_sha256(file)
                hashes[band] = by_file[file]
        return _band_digest(hashes)
    return _file_sha256(path)


class BandSource(ABC):
    """One scene's bands, read window by window (a context manager; :meth:`close` releases files).

    Attributes
    ----------
    shape : (int, int)
        ``(H, W)`` of the fine (10 m) grid, pixels.
    bands : tuple of str
        Bands present, canonical order (:data:`ssc_edge.bands.ALL_BANDS`).
    georef : GeoReference or None
        Georeferencing of the fine grid.
    source : Path or None
        The file or folder read (None for an in-memory scene without one).
    name : str
        Scene name (file stem or SAFE product name).
    fine_pixel_size : float
        Metres per fine-grid pixel (10; 20 for reduced-resolution files).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, int],
        band_shapes: Mapping[str, tuple[int, int]],
        georef: GeoReference | None,
        source: Path | None,
        name: str,
        fine_pixel_size: float = 10.0,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self._band_shapes = MappingProxyType({b: band_shapes[b] for b in ALL_BANDS if b in band_shapes})
        self.bands: tuple[str, ...] = tuple(self._band_shapes)
        self.georef = georef
        self.source = Path(source) if source is not None else None
        self.name = name
        self.fine_pixel_size = float(fine_pixel_size)
        self._identity: str | None = None

    # -- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def _read(self, band: str, tile: Tile) -> np.ndarray:
        """The (h, w) float32 DN of ``tile`` of ``band`` (already checked to lie inside its grid)."""

    def close(self) -> None:  # noqa: B027 (a no-op by default: array sources hold no files)
        """Release open files (nothing for arrays)."""

    # -- the interface ------------------------------------------------------------------------
    def __enter__(self) -> BandSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source or self.name!s}, {self.shape[0]}x{self.shape[1]}, {self.bands})"

    @property
    def where(self) -> str:
        """How errors name the scene: its path, else its name."""
        return str(self.source) if self.source is not None else self.name

    def band_shape(self, band: str) -> tuple[int, int]:
        """``(h, w)`` of ``band``'s own grid, pixels."""
        if band not in self._band_shapes:
            raise SceneError(f"{self.where}: the scene has no band {band} (it has {', '.join(self.bands)})")
        return self._band_shapes[band]

    def read(self, band: str, tile: Tile) -> np.ndarray:
        """Read one window of one band.

        Parameters
        ----------
        band : str
            Canonical band name.
        tile : Tile
            On ``band``'s own grid (the 20 m grid for a 20 m band), inside it.

        Returns
        -------
        (tile.height, tile.width) float32 ndarray
            DN (reflectance x 10000), as :func:`ssc_edge.io.read_scene` gives them.

        Raises
        ------
        SceneError
            Unknown band, a window outside the band's grid, or non-finite values.
        SceneReadError
            The file cannot be read there.
        """
        h, w = self.band_shape(band)
        if tile.row < 0 or tile.col < 0 or tile.row + tile.height > h or tile.col + tile.width > w:
            raise SceneError(f"{self.where}: window {tile} lies outside band {band}'s {h}x{w} grid")
        return self._read(band, tile)

    def valid(self, band: str, tile: Tile) -> np.ndarray:
        """Which pixels of one window of one band carry a measurement (:mod:`ssc_edge.nodata`).

        Parameters
        ----------
        band : str
            Canonical band name.
        tile : Tile
            On ``band``'s own grid, inside it.

        Returns
        -------
        (tile.height, tile.width) bool ndarray
            False at no-data pixels: a SAFE product's ``NODATA`` DN, a raster's nodata tag or mask
            (0 DN without either), 0 DN in ``.mat``/``.npz`` files and in-memory scenes. :meth:`read`
            gives those pixels 0 DN.
        """
        h, w = self.band_shape(band)
        if tile.row < 0 or tile.col < 0 or tile.row + tile.height > h or tile.col + tile.width > w:
            raise SceneError(f"{self.where}: window {tile} lies outside band {band}'s {h}x{w} grid")
        return self._valid(band, tile)

    def _valid(self, band: str, tile: Tile) -> np.ndarray:
        """The 0 DN rule; raster sources override it with the file's own no-data."""
        return self._read(band, tile) != 0

    def read_band(self, band: str) -> np.ndarray:
        """The whole of one band, (h, w) float32 DN (memory: the band's area)."""
        return self.read(band, Tile(0, 0, *self.band_shape(band)))

    def strips(self, band: str, rows: int = SCAN_ROWS) -> Iterable[tuple[Tile, np.ndarray]]:
        """Full-width strips of ``rows`` rows of one band, top to bottom: ``(tile, values)``."""
        h, w = self.band_shape(band)
        for row in range(0, h, rows):
            tile = Tile(row, 0, min(rows, h - row), w)
            yield tile, self.read(band, tile)

    def require(self, bands: Iterable[str], *, who: str = "the model") -> None:
        """Raise :class:`SceneError` naming every band of ``bands`` the scene lacks."""
        missing = [b for b in bands if b not in self._band_shapes]
        if missing:
            raise SceneError(f"{self.where}: {who} needs band(s) {', '.join(missing)}, which the scene lacks")

    def check_has_data(self, bands: Iterable[str]) -> None:
        """Raise :class:`SceneError` if one of ``bands`` holds no data (no pixel :meth:`valid`).

        Reads strip by strip and stops at the first strip with data, so a normal scene costs one
        strip per band; only an all-nodata band is read through.
        """
        for band in bands:
            if not any(np.any(self.valid(band, tile)) for tile in self._strip_tiles(band)):
                rule = self._nodata_text(band)
                raise SceneError(f"{self.where}: band {band} is all no-data (every pixel {rule}); nothing to sharpen")

    def _nodata_text(self, band: str) -> str:
        """How ``band`` marks no-data, for messages."""
        return "0 DN"

    def _strip_tiles(self, band: str, rows: int = SCAN_ROWS) -> Iterable[Tile]:
        h, w = self.band_shape(band)
        for row in range(0, h, rows):
            yield Tile(row, 0, min(rows, h - row), w)

    @property
    def identity(self) -> str:
        """:func:`scene_identity` of :attr:`source` (computed once); ``""`` without a source."""
        if self._identity is None:
            self._identity = scene_identity(self.source) if self.source is not None else ""
        return self._identity

    def to_scene(self) -> Scene:
        """Read every band whole into a validated :class:`Scene` (memory: the scene's area).

        All-zero 60 m placeholder bands are dropped, as the file readers do.
        """
        bands = {}
        for band in self.bands:
            values = self.read_band(band)
            if band in VERY_COARSE_BANDS and not np.any(values):
                continue
            bands[band] = values
        return Scene(bands, fine_pixel_size=self.fine_pixel_size, georef=self.georef, source=self.source,
                     name=self.name)  # fmt: skip

    @classmethod
    def from_scene(cls, scene: Scene) -> ArrayBandSource:
        """Serve an in-memory :class:`Scene` (views of its arrays, no copy)."""
        return ArrayBandSource(scene)


class ArrayBandSource(BandSource):
    """Windows of an in-memory :class:`Scene` (``.mat``/``.npz`` files are read whole into one).

    Parameters
    ----------
    scene : Scene
    """

    def __init__(self, scene: Scene) -> None:
        super().__init__(
            shape=scene.shape,
            band_shapes={b: a.shape for b, a in scene.bands.items()},
            georef=scene.georef,
            source=scene.source,
            name=scene.name,
            fine_pixel_size=scene.fine_pixel_size,
        )
        self.scene = scene

    def _read(self, band: str, tile: Tile) -> np.ndarray:
        return self.scene.bands[band][tile.slices]

    def check_has_data(self, bands: Iterable[str]) -> None:
        for band in bands:
            if not np.any(self.scene.bands[band]):
                raise SceneError(f"{self.where}: band {band} is all no-data (every pixel 0 DN); nothing to sharpen")

    def to_scene(self) -> Scene:
        return self.scene


#: ``convert(samples, band, tile) -> (float32 DN, valid)``: a band file's samples (of ``tile``) to the scene's DN
#: (0 at no-data) and the (h, w) bool mask of pixels that carry a measurement.
Converter = Callable[[np.ndarray, str, Tile], tuple[np.ndarray, np.ndarray]]

#: Validity masks a raster source keeps from its last reads, so that ``valid`` after ``read`` of the
#: same window costs no second decode.
_KEPT_MASKS = 32


class RasterBandSource(BandSource):
    """Windows of band files read with rasterio (SAFE products, band folders, multi-band GeoTIFFs).

    Use :meth:`safe` or :meth:`folder` (or :func:`open_band_source`) rather than the constructor.

    Parameters
    ----------
    path : Path
        The scene as given (named in errors).
    files : mapping of str to (str, int)
        Band -> (GDAL path of its file, 1-based band index in it).
    convert : Converter
        ``convert(samples, band, tile) -> (float32 DN, valid mask)``.
    name : str
    """

    def __init__(self, path: Path, files: Mapping[str, tuple[str, int]], convert: Converter, *, name: str) -> None:
        import rasterio

        self._rasterio = rasterio
        self._files = dict(files)
        self._convert = convert
        self._datasets: dict[str, Any] = {}
        self._masks: OrderedDict[tuple[str, Tile], np.ndarray] = OrderedDict()
        path = Path(path)
        try:
            band_shapes: dict[str, tuple[int, int]] = {}
            transforms, crss = {}, {}
            for band, (file, index) in self._files.items():
                ds = self._dataset(file, path)
                if index > ds.count:
                    raise SceneReadError(f"{file}: holds {ds.count} band(s), not band {index} ({band})")
                # windows are read one at a time, but a grid this large cannot be a Sentinel-2 product: a crafted
                # header (a sparse file) would otherwise start a run of millions of windows
                check_array_size((ds.height, ds.width), ds.dtypes[index - 1], where=f"{file}: band {band}")
                band_shapes[band] = (ds.height, ds.width)
                transforms[band] = tuple(ds.transform)[:6]
                crss[band] = ds.crs.to_wkt() if ds.crs is not None else None
            fine = next((b for b in FINE_BANDS if b in band_shapes), None)
            if fine is None:
                raise SceneError(f"{path}: missing band {FINE_BANDS[0]} (needs {', '.join(FINE_BANDS + COARSE_BANDS)})")
            shape = band_shapes[fine]
            self._check_grids(path, band_shapes, transforms, crss, fine)
            georef = None
            fine_pixel_size = 10.0
            reference = self._datasets[self._files[fine][0]]
            if reference.crs is not None:
                t = reference.transform
                georef = GeoReference((t.a, t.b, t.c, t.d, t.e, t.f), reference.crs.to_wkt())
                if reference.crs.is_projected and reference.crs.linear_units in ("metre", "meter"):
                    fine_pixel_size = abs(t.a)
        except BaseException:
            self.close()
            raise
        super().__init__(shape=shape, band_shapes=band_shapes, georef=georef, source=path, name=name,
                         fine_pixel_size=fine_pixel_size)  # fmt: skip

    def _dataset(self, file: str, path: Path):
        if file not in self._datasets:
            rasterio = self._rasterio
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    self._datasets[file] = rasterio.open(file)
            except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SceneReadError(f"{file}: cannot read raster ({message})") from None
        return self._datasets[file]

    def _check_grids(self, path, band_shapes, transforms, crss, fine: str) -> None:
        from .safe import _check_alignment

        height, width = band_shapes[fine]
        for band, (h, w) in band_shapes.items():
            file = self._files[band][0]
            if band in FINE_BANDS and (h, w) != (height, width):
                raise SceneError(f"{file}: 10 m band {band} is {h}x{w}, but {fine} is {height}x{width}")
            if band in COARSE_BANDS and (2 * h, 2 * w) != (height, width):
                raise SceneError(
                    f"{file}: 20 m band {band} is {h}x{w}, not half the 10 m size {height}x{width}"
                    + (" (the 10 m size must be even)" if height % 2 or width % 2 else "")
                )
            if crss[band] is not None and crss[fine] is not None and band not in VERY_COARSE_BANDS:
                if band in FINE_BANDS and crss[band] != crss[fine]:
                    raise SceneError(f"{file}: band {band} has a different CRS than {fine}")
                _check_alignment(transforms[band], transforms[fine], GSD[band] / GSD[fine], path, band)

    def _read(self, band: str, tile: Tile) -> np.ndarray:
        from rasterio.windows import Window

        file, index = self._files[band]
        try:
            data = self._datasets[file].read(index, window=Window(tile.col, tile.row, tile.width, tile.height))
        except Exception as exc:  # rasterio/GDAL raise several types for corrupt blocks
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SceneReadError(f"{file}: cannot read band {band} near row {tile.row} ({message})") from None
        values, valid = self._convert(data, band, tile)
        self._masks[band, tile] = valid
        while len(self._masks) > _KEPT_MASKS:
            self._masks.popitem(last=False)
        return values

    def _valid(self, band: str, tile: Tile) -> np.ndarray:
        if (band, tile) not in self._masks:
            self._read(band, tile)
        return self._masks[band, tile]

    def _nodata_text(self, band: str) -> str:
        from rasterio.enums import MaskFlags

        product = getattr(self, "product", None)
        if product is not None:
            return f"{product.nodata} DN"
        file, index = self._files[band]
        dataset = self._datasets[file]
        flags = dataset.mask_flag_enums[index - 1]
        if MaskFlags.nodata in flags:
            return f"the nodata value {dataset.nodatavals[index - 1]:g}"
        return "0 DN" if MaskFlags.all_valid in flags else "masked"

    def _sample_valid(self, data: np.ndarray, band: str, tile: Tile) -> np.ndarray:
        """A band file's own no-data: its nodata tag, else its GDAL mask band, else 0 DN."""
        from rasterio.enums import MaskFlags
        from rasterio.windows import Window

        file, index = self._files[band]
        dataset = self._datasets[file]
        flags = dataset.mask_flag_enums[index - 1]
        if MaskFlags.nodata in flags:
            nodata = dataset.nodatavals[index - 1]
            return ~np.isnan(data) if np.isnan(nodata) else data != np.asarray(nodata).astype(data.dtype)
        if MaskFlags.all_valid in flags:
            return data != 0  # no tag, no mask: ESA's NODATA value
        window = Window(tile.col, tile.row, tile.width, tile.height)
        return dataset.read_masks(index, window=window) > 0

    def close(self) -> None:
        datasets, self._datasets = self._datasets, {}
        for dataset in datasets.values():
            dataset.close()

    @classmethod
    def folder(cls, path: Path) -> RasterBandSource:
        """A band folder or a multi-band GeoTIFF (see :mod:`ssc_edge.io.geotiff`); samples cast to float32."""
        from .geotiff import geotiff_band_sources

        path = Path(path)
        sources = geotiff_band_sources(path)
        files = {band: (str(file), index) for band, (file, index) in sources.items()}

        def convert(data: np.ndarray, band: str, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
            file = files[band][0]
            if data.dtype.kind not in "uif":
                raise SceneError(f"{file}: band {band} has unsupported dtype {data.dtype} (expected integer or float)")
            valid = source._sample_valid(data, band, tile)
            if data.dtype.kind == "f" and not np.all(np.isfinite(data[valid])):
                raise SceneError(
                    f"{file}: band {band} has non-finite values (NaN or inf) near row {tile.row}, "
                    f"column {tile.col} ({band} grid); fill or mask them before sharpening"
                )
            values = data.astype(np.float32, copy=True)
            values[~valid] = 0.0
            return values, valid

        source = cls(path, files, convert, name=path.stem if path.is_file() else path.name)
        return source

    @classmethod
    def safe(cls, path: Path) -> RasterBandSource:
        """A SAFE product: band files and DN conversion from its metadata (:mod:`ssc_edge.io.safe`)."""
        from .safe import _to_reflectance_dn, check_sixty_grid, read_safe_product

        path = Path(path)
        product = read_safe_product(path)
        nodata_pixels = dict.fromkeys(product.band_files, 0)

        def convert(data: np.ndarray, band: str, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
            values, count = _to_reflectance_dn(data, product, band)
            nodata_pixels[band] += count
            return values, data != product.nodata  # the raw DN, before the offset (ssc_edge.nodata)

        source = cls(path, {b: (f, 1) for b, f in product.band_files.items()}, convert, name=product.name)
        try:  # B01, B09 (from R60m): a sixth of the 10 m grid, from its corner, as read_safe_scene checks
            fine = source._datasets[product.band_files[FINE_BANDS[0]]]
            for band in (b for b in VERY_COARSE_BANDS if b in source.bands):
                dataset = source._datasets[product.band_files[band]]
                check_sixty_grid(path, band, dataset.shape, dataset.transform, fine.shape, fine.transform)
        except BaseException:
            source.close()
            raise
        source.product = product
        source.nodata_pixels = nodata_pixels
        return source


def open_band_source(path: Path) -> BandSource:
    """Open any scene for windowed reading.

    Parameters
    ----------
    path : Path
        A SAFE product (``.SAFE`` folder, ``.zip``, metadata XML), a band folder (JP2, GeoTIFF, ...),
        a multi-band GeoTIFF, a ``.mat`` or an ``.npz``.

    Returns
    -------
    BandSource
        Rasters are read window by window; ``.mat`` and ``.npz`` are read whole first.

    Raises
    ------
    SceneReadError, SceneError
        As :func:`ssc_edge.io.read_scene`: unreadable, unknown, misaligned or missing bands.
    """
    from . import detect_format, read_scene

    path = Path(path)
    if not path.exists():
        raise SceneReadError(f"{path}: no such file or folder")
    kind = detect_format(path)
    if kind == "safe":
        return RasterBandSource.safe(path)
    if kind in ("band-folder", "geotiff"):
        return RasterBandSource.folder(path)
    return BandSource.from_scene(read_scene(path))


def streams(scene: Path | None, output: Path) -> bool:
    """True when ``scene`` is sharpened into ``output`` window by window (``infer`` and ``batch``): a GeoTIFF
    output and a scene read by window (rasters, SAFE products); ``.mat``/``.npz`` scenes and ``.npz``/``.mat``
    outputs are read and written whole."""
    from . import detect_format

    if scene is None or Path(output).suffix.lower() not in (".tif", ".tiff"):
        return False
    return detect_format(Path(scene)) in ("geotiff", "band-folder", "safe")


def central_scene(source, side: int, *, with_60m: bool = False) -> Scene:
    """The central window of a scene, at most ``side`` x ``side`` 10 m pixels, as an in-memory Scene.

    Parameters
    ----------
    source : BandSource or Scene
        Anything with ``shape`` and ``read(band, tile)`` (or a ``bands`` mapping of whole arrays); a
        :class:`Scene` is wrapped.
    side : int
        Most 10 m pixels a side.
    with_60m : bool
        Also read the 60 m bands (B01, B09) the scene has; the window's origin and size are then
        multiples of 6, so the 60 m grid keeps its phase too. A 60 m band that is all 0 DN in the
        window is left out, as the readers drop all-zero placeholders.

    Returns
    -------
    Scene
        The 10 m and 20 m bands of the window, float32 DN; its origin and size are even, so the 20 m
        grid keeps its phase. Only the window is read (a full tile costs the window's memory).
    """
    if isinstance(source, Scene):
        source = BandSource.from_scene(source)
    # anything else with ``read``, or a scene-like object with only a ``bands`` mapping (whole arrays)
    read = source.read if hasattr(source, "read") else (lambda band, tile: source.bands[band][tile.slices])
    step = 6 if with_60m else 2
    height, width = (min(n, side) // step * step for n in source.shape)
    row = (source.shape[0] - height) // (2 * step) * step
    col = (source.shape[1] - width) // (2 * step) * step
    fine, coarse = Tile(row, col, height, width), Tile(row // 2, col // 2, height // 2, width // 2)
    bands = {b: np.asarray(read(b, fine), np.float32) for b in FINE_BANDS}
    bands |= {b: np.asarray(read(b, coarse), np.float32) for b in COARSE_BANDS}
    if with_60m:
        sixty = Tile(row // 6, col // 6, height // 6, width // 6)
        for band in VERY_COARSE_BANDS:
            if band in getattr(source, "bands", ()):
                values = np.asarray(read(band, sixty), np.float32)
                if np.any(values):
                    bands[band] = values
    name = getattr(source, "name", None) or "scene"
    return Scene(bands=bands, source=getattr(source, "source", None), name=f"{name}-centre")


def describe_source(source: BandSource) -> dict:
    """Summarise a scene as :func:`ssc_edge.io.describe_scene` does, reading rasters strip by strip.

    Memory: one strip of :data:`SCAN_ROWS` rows of one band (a full 10980 x 10980 tile is never
    held whole). Adds ``format`` (``"safe"``, ``"band-folder"``, ``"geotiff"``, ``"mat"``, ``"npz"``
    or ``"in-memory"``) and ``identity`` (:func:`scene_identity`, ``""`` without a source).

    Returns
    -------
    dict
        Plain JSON types; see :func:`ssc_edge.io.describe_scene`.
    """
    from . import describe_scene, detect_format

    kind = detect_format(source.source) if source.source is not None else "in-memory"
    if isinstance(source, ArrayBandSource):
        summary = describe_scene(source.scene)
    else:
        bands = {}
        for band in source.bands:
            low, high, total, count = np.inf, -np.inf, 0.0, 0
            for _, values in source.strips(band):
                low, high = min(low, float(values.min())), max(high, float(values.max()))
                total += float(values.sum(dtype=np.float64))
                count += values.size
            if band in VERY_COARSE_BANDS and low == high == 0.0:
                continue  # an all-zero 60 m placeholder, dropped as the readers do
            gsd = source.fine_pixel_size * GSD[band] / 10
            bands[band] = {"shape": list(source.band_shape(band)), "gsd": gsd, "min": low, "max": high,
                           "mean": total / count}  # fmt: skip
        georef = None
        if source.georef is not None:
            georef = {"transform": list(source.georef.transform), "crs": source.georef.crs}
        summary = {
            "source": str(source.source) if source.source is not None else None,
            "name": source.name,
            "shape": list(source.shape),
            "fine_pixel_size": source.fine_pixel_size,
            "bands": bands,
            "reference": None,
            "georef": georef,
        }
    return {**summary, "format": kind, "identity": source.identity}
