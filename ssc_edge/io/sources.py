"""The one door in: every scene format opened once, validated, and read window by window; a scene's identity.

:func:`open_band_source` detects a scene's format, checks it (:func:`check_band_grid`, the limits of
:mod:`ssc_edge.io.limits`) and returns a :class:`BandSource`: the object a run passes on from there, with
the format, identity, the precision gate's crop and the stream as its attributes, never detected or opened
again. A :class:`BandSource` serves one band's window at a time, on that band's own grid, as float32 DN
(:func:`ssc_edge.io.read_scene` is the same door, read whole). It is what lets the runtime (and the trainer)
work through a full 10980 x 10980 Sentinel-2 tile in memory bounded by the window, not the scene::

    with open_band_source("S2A_MSIL2A_....SAFE") as source:
        source.format, source.identity    # "safe", the sha256 a fitted model records
        source.shape                       # (H, W) of the 10 m grid
        source.bands                       # ("B02", "B03", ..., "B12"), canonical order
        source.read("B05", Tile(0, 0, 256, 256))   # (256, 256) float32 DN of B05's 20 m grid
        source.crop(2048)                  # the central 2048 x 2048 px as a Scene (the precision gate)

Implementations
---------------
- **Rasters** (:class:`RasterBandSource`, rasterio windowed reads, files kept open): a SAFE product
  (:mod:`ssc_edge.io.safe`: band files and DN conversion), a folder of single-band rasters named by band or a
  multi-band GeoTIFF (:mod:`ssc_edge.io.geotiff`); every grid is checked when opened (:func:`check_band_grid`).
- **Arrays** (:class:`ArrayBandSource`): ``.mat`` and ``.npz`` files (their formats cannot be read in windows,
  so they are read whole) and in-memory :class:`~ssc_edge.scene.Scene` values (:meth:`BandSource.from_scene`).

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

import contextlib
import hashlib
import logging
import zipfile
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, GSD, VERY_COARSE_BANDS
from ..errors import SceneError, SceneReadError
from ..scene import GeoReference, Scene, check_transform
from ..tiling import Tile
from .geotiff import geotiff_band_sources, open_raster
from .limits import ReadBudget, check_array_size, check_regular_file
from .mat import read_mat_scene
from .npz import read_npz_scene
from .safe import _to_reflectance_dn, is_safe_product, looks_like_safe_zip, read_safe_product

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
    """The identity of any scene :func:`open_band_source` opens: 64 hex digits (see module notes).

    Prefer :attr:`BandSource.identity` of the scene already opened; this opens it (a single file is only hashed).
    Raises :class:`SceneReadError` or :class:`SceneError` as :func:`open_band_source`, or for an unreadable file.
    """
    path = Path(path)
    if detect_format(path) in ("safe", "band-folder"):
        with open_band_source(path) as source:
            return source.identity
    return _file_sha256(path)


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
        # a zip named as a SAFE product (or holding a .SAFE folder) that is_safe_product did not accept is a
        # damaged or incomplete SAFE zip: the SAFE reader says what is wrong with it, not the .npz reader
        return "safe" if looks_like_safe_zip(path) else "npz"
    if head[:4] in _TIFF_MAGIC:
        return "geotiff"
    raise SceneReadError(f"{path}: unknown file format (not a MATLAB, NumPy .npz or GeoTIFF file)")


class BandSource(contextlib.AbstractContextManager):
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
    format : str
        ``"safe"``, ``"band-folder"``, ``"geotiff"``, ``"mat"``, ``"npz"`` or ``"in-memory"``: detected once, when
        the scene was opened.
    windowed : bool
        True when windows are read from the files (rasters); False when the scene is held in memory.
    """

    format = "in-memory"
    windowed = False
    #: The sample type each band is stored in (what reading it whole allocates besides its float32 copy).
    _dtypes: Mapping[str, str] = MappingProxyType({})

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

    @abstractmethod
    def _read(self, band: str, tile: Tile) -> np.ndarray:
        """The (h, w) float32 DN of ``tile`` of ``band`` (already checked to lie inside its grid)."""

    def close(self) -> None:
        """Release open files (nothing for arrays)."""

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
        return self._read(band, self._inside(band, tile))

    def valid(self, band: str, tile: Tile) -> np.ndarray:
        """Which pixels of one window of one band carry a measurement (:mod:`ssc_edge.nodata`).

        ``band`` and ``tile`` as for :meth:`read`.

        Returns
        -------
        (tile.height, tile.width) bool ndarray
            False at no-data pixels (the rules of :mod:`ssc_edge.nodata`), which :meth:`read` gives 0 DN.
        """
        return self._valid(band, self._inside(band, tile))

    def _inside(self, band: str, tile: Tile) -> Tile:
        h, w = self.band_shape(band)
        if tile.row < 0 or tile.col < 0 or tile.row + tile.height > h or tile.col + tile.width > w:
            raise SceneError(f"{self.where}: window {tile} lies outside band {band}'s {h}x{w} grid")
        return tile

    def _valid(self, band: str, tile: Tile) -> np.ndarray:
        """The 0 DN rule; raster sources override it with the file's own no-data."""
        return self._read(band, tile) != 0

    def read_band(self, band: str) -> np.ndarray:
        """The whole of one band, (h, w) float32 DN (memory: the band's area)."""
        return self.read(band, Tile(0, 0, *self.band_shape(band)))

    def strips(self, band: str) -> Iterable[tuple[Tile, np.ndarray]]:
        """Full-width strips of :data:`SCAN_ROWS` rows of one band, top to bottom: ``(tile, values)``."""
        for tile in self._strip_tiles(band):
            yield tile, self.read(band, tile)

    def require(self, bands: Iterable[str]) -> None:
        """Raise :class:`SceneError` naming every band of ``bands`` (the model's) the scene lacks."""
        missing = [b for b in bands if b not in self._band_shapes]
        if missing:
            raise SceneError(f"{self.where}: the model needs band(s) {', '.join(missing)}, which the scene lacks")

    def check_has_data(self, bands: Iterable[str]) -> None:
        """Raise :class:`SceneError` if one of ``bands`` holds no data (no pixel :meth:`valid`). Reads strip by
        strip up to the first with data: a normal scene costs one strip per band."""
        for band in bands:
            if not any(np.any(self.valid(band, tile)) for tile in self._strip_tiles(band)):
                rule = self._nodata_text(band)
                raise SceneError(f"{self.where}: band {band} is all no-data (every pixel {rule}); nothing to sharpen")

    def _nodata_text(self, band: str) -> str:
        """How ``band`` marks no-data, for messages."""
        return "0 DN"

    def _strip_tiles(self, band: str) -> Iterable[Tile]:
        h, w = self.band_shape(band)
        for row in range(0, h, SCAN_ROWS):
            yield Tile(row, 0, min(SCAN_ROWS, h - row), w)

    @property
    def identity(self) -> str:
        """The scene's identity (see module notes), hashed once from the files opened; ``""`` without a source."""
        if self._identity is None:
            self._identity = self._hash() if self.source is not None else ""
        return self._identity

    def _hash(self) -> str:
        """A single file's identity: the sha256 of its bytes (raster sources of several files override it)."""
        return _file_sha256(self.source)

    def crop(self, side: int, *, with_60m: bool = False) -> Scene:
        """The central window of at most ``side`` x ``side`` 10 m pixels as a Scene (:func:`central_scene`):
        what the precision gate measures on. Only the window is read."""
        return central_scene(self, side, with_60m=with_60m)

    def to_scene(self) -> Scene:
        """Read every band whole into a validated :class:`Scene` (memory: the scene's area; all-zero 60 m
        placeholders dropped), refused first if the bands exceed the :class:`~ssc_edge.io.limits.ReadBudget`."""
        budget = ReadBudget(self.where)
        for band in self.bands:
            budget.add(self.band_shape(band), self._dtypes.get(band, "float32"), what=f"band {band}", as_float32=True)
        bands = {band: self.read_band(band) for band in self.bands}
        return Scene(bands, fine_pixel_size=self.fine_pixel_size, georef=self.georef, source=self.source,
                     name=self.name)  # fmt: skip

    @classmethod
    def from_scene(cls, scene: Scene) -> ArrayBandSource:
        """Serve an in-memory :class:`Scene` (views of its arrays, no copy)."""
        return ArrayBandSource(scene)


class ArrayBandSource(BandSource):
    """Windows of an in-memory :class:`Scene` (``.mat``/``.npz`` files are read whole into one)."""

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

    def to_scene(self) -> Scene:
        return self.scene


#: How a band of each ratio to the 10 m grid must relate to its size, for messages.
_SIZE_RULE = {1: "the 10 m size", 2: "half the 10 m size", 6: "a sixth of the 10 m size"}

#: (rows, cols), affine transform (or None), CRS (or None) of one band file's grid.
Grid = tuple[tuple[int, int], Any, Any]


def check_band_grid(where: str, band: str, grid: Grid, fine: str, fine_grid: Grid) -> None:
    """One band's grid against the 10 m grid: the one check every raster scene (SAFE, folder, GeoTIFF) passes.

    Parameters
    ----------
    where : str
        The band's file, named in errors.
    band : str
        Canonical band name; its ratio to the 10 m grid is ``GSD[band] / 10`` (1, 2 or 6).
    grid, fine_grid : (shape, transform, crs)
        ``shape`` (rows, cols) in pixels of the band's own grid; ``transform`` its affine transform (6 numbers,
        rasterio order, CRS units); ``crs`` the file's CRS (rasterio ``CRS``, compared by meaning) or None.
    fine : str
        The 10 m band ``fine_grid`` belongs to.

    Raises
    ------
    SceneError
        The size is not the 10 m size divided by the ratio (for 60 m bands: to within half a 60 m pixel); one
        band georeferenced and the other not, or in another CRS; a transform :func:`~ssc_edge.scene.check_transform`
        refuses (NaN, 0, 1e300, rotated); or an edge of the band's extent more than half of the band's pixel from
        the 10 m grid's.
    """
    (h, w), transform, crs = grid
    (height, width), fine_transform, fine_crs = fine_grid
    ratio = int(GSD[band] // 10)
    slack = ratio // 2 - 1 if ratio > 2 else 0  # a 60 m grid: within half a 60 m pixel of a sixth; others exact
    if abs(ratio * h - height) > slack or abs(ratio * w - width) > slack:
        what = f"{GSD[band]} m band {band} is {h}x{w}"
        if ratio == 1:
            raise SceneError(f"{where}: {what}, but {fine} is {height}x{width}")
        even = " (the 10 m size must be even)" if ratio == 2 and (height % 2 or width % 2) else ""
        raise SceneError(f"{where}: {what}, not {_SIZE_RULE[ratio]} {height}x{width}{even}")
    if crs is None and fine_crs is None:
        return  # a scene without georeferencing: grids compared by size only
    if crs is None or fine_crs is None:
        has, lacks = (fine, band) if crs is None else (band, fine)
        raise SceneError(f"{where}: band {lacks} has no CRS while {has} has one; every band needs the same CRS")
    if crs != fine_crs:
        raise SceneError(f"{where}: band {band} is in another CRS than {fine} ({crs} against {fine_crs})")
    a, _, c, _, e, f = check_transform(tuple(transform)[:6], where=f"{where}: band {band}")
    fa, _, fc, _, fe, ff = check_transform(tuple(fine_transform)[:6], where=f"{where}: band {fine}")
    edges = (c - fc, f - ff, c + a * w - (fc + fa * width), f + e * h - (ff + fe * height))
    worst = max(abs(v) for v in edges)
    if worst >= a / 2:
        raise SceneError(
            f"{where}: band {band} grid {tuple(transform)[:6]} is not aligned with the 10 m grid "
            f"{tuple(fine_transform)[:6]}: its extent differs by {worst:g} CRS units, half a pixel or more"
        )


#: ``convert(samples, band, tile) -> (float32 DN, valid)``: a band file's samples (of ``tile``) to the scene's DN
#: (0 at no-data) and the (h, w) bool mask of pixels that carry a measurement.
Converter = Callable[[np.ndarray, str, Tile], tuple[np.ndarray, np.ndarray]]

#: Validity masks a raster source keeps from its last reads, so that ``valid`` after ``read`` of the
#: same window costs no second decode.
_KEPT_MASKS = 32


class RasterBandSource(BandSource):
    """Windows of band files read with rasterio (SAFE products, band folders, multi-band GeoTIFFs).

    Use :meth:`safe` or :meth:`folder` (or :func:`open_band_source`) rather than the constructor, which takes
    the scene's ``path`` (named in errors), ``files`` (band -> GDAL path of its file, 1-based band index in it),
    a :data:`Converter` and the scene's ``name``.
    """

    def __init__(self, path: Path, files: Mapping[str, tuple[str, int]], convert: Converter, *, name: str) -> None:
        self._files = dict(files)
        self._convert = convert
        self._datasets: dict[str, Any] = {}
        self._masks: OrderedDict[tuple[str, Tile], np.ndarray] = OrderedDict()
        path = Path(path)
        try:
            grids: dict[str, tuple[tuple[int, int], Any, Any]] = {}
            self._dtypes: dict[str, str] = {}
            for band, (file, index) in self._files.items():
                if file not in self._datasets:  # one dataset per file (a multi-band GeoTIFF holds several bands)
                    self._datasets[file] = open_raster(file)
                ds = self._datasets[file]
                if index > ds.count:
                    raise SceneReadError(f"{file}: holds {ds.count} band(s), not band {index} ({band})")
                # windows are read one at a time, but a grid this large cannot be a Sentinel-2 product: a crafted
                # header (a sparse file) would otherwise start a run of millions of windows
                check_array_size((ds.height, ds.width), ds.dtypes[index - 1], where=f"{file}: band {band}")
                grids[band] = ((ds.height, ds.width), ds.transform, ds.crs)
                self._dtypes[band] = ds.dtypes[index - 1]
            fine = next((b for b in FINE_BANDS if b in grids), None)
            if fine is None:
                raise SceneError(f"{path}: missing band {FINE_BANDS[0]} (needs {', '.join(FINE_BANDS + COARSE_BANDS)})")
            shape, fine_transform, fine_crs = grids[fine]
            for band, grid in grids.items():
                check_band_grid(self._files[band][0], band, grid, fine, grids[fine])
            georef = None
            fine_pixel_size = 10.0
            if fine_crs is not None:
                georef = GeoReference(tuple(fine_transform)[:6], fine_crs.to_wkt())
                if fine_crs.is_projected and fine_crs.linear_units in ("metre", "meter"):
                    fine_pixel_size = fine_transform.a
            # GDAL's /vsizip/ reader does not check a member's CRC-32 (a damaged deflate stream reads as pixels):
            # every member used is read once here through zipfile, which does, and its sha256 kept for the identity
            self._digests = {
                file: _gdal_file_sha256(file, path) for file, _ in self._files.values() if file.startswith("/vsizip/")
            }
        except BaseException:
            self.close()
            raise
        super().__init__(shape=shape, band_shapes={b: g[0] for b, g in grids.items()}, georef=georef, source=path,
                         name=name, fine_pixel_size=fine_pixel_size)  # fmt: skip

    windowed = True

    def to_scene(self) -> Scene:
        scene = super().to_scene()
        counts = {b: n for b, n in getattr(self, "nodata_pixels", {}).items() if n and b in scene.bands}
        if counts:
            shares = ", ".join(f"{b} {100 * n / np.prod(self.band_shape(b)):.2f}%" for b, n in counts.items())
            logger.warning("%s: nodata pixels (read as 0 DN, left no-data in the product) in %s", self.where, shares)
        return scene

    def _hash(self) -> str:
        """A SAFE product's or band folder's identity: over the files of the bands ssc-edge uses."""
        if self.format == "geotiff":
            return _file_sha256(self.source)
        by_file: dict[str, str] = {}
        for band, (file, _) in self._files.items():
            if band in IDENTITY_BANDS and file not in by_file:
                by_file[file] = self._digests.get(file) or _gdal_file_sha256(file, self.source)
        text = "".join(f"{b} {by_file[self._files[b][0]]}\n" for b in IDENTITY_BANDS if b in self._files)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

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
        source.format = "geotiff" if path.is_file() else "band-folder"
        return source

    @classmethod
    def safe(cls, path: Path) -> RasterBandSource:
        """A SAFE product: band files and DN conversion from its metadata (:mod:`ssc_edge.io.safe`)."""
        path = Path(path)
        product = read_safe_product(path)
        nodata_pixels = dict.fromkeys(product.band_files, 0)

        def convert(data: np.ndarray, band: str, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
            values, count = _to_reflectance_dn(data, product, band)
            nodata_pixels[band] += count
            return values, data != product.nodata  # the raw DN, before the offset (ssc_edge.nodata)

        source = cls(path, {b: (f, 1) for b, f in product.band_files.items()}, convert, name=product.name)
        source.format = "safe"
        source.product = product
        source.nodata_pixels = nodata_pixels
        return source


def open_band_source(path: Path) -> BandSource:
    """Open any scene once, validated: the one door every format comes in through.

    Parameters
    ----------
    path : Path
        A SAFE product (``.SAFE`` folder, ``.zip``, metadata XML), a band folder (JP2, GeoTIFF, ...; an L2A
        granule's ``IMG_DATA`` with its ``R10m``/``R20m``/``R60m`` folders), a multi-band GeoTIFF, a ``.mat``
        or an ``.npz``.

    Returns
    -------
    BandSource
        Its :attr:`~BandSource.format` is the format detected here. Rasters are read window by window
        (:attr:`~BandSource.windowed`); ``.mat`` and ``.npz`` are read whole now.

    Raises
    ------
    SceneReadError, SceneError
        Checked here, before any pixel is read: a path that is not a regular file or folder, an unknown
        format, what a file declares over the limits (:mod:`ssc_edge.io.limits`: summed over the file), missing
        bands, grids of the wrong size, georeferencing that is not one CRS, north-up, finite and aligned to
        within half a pixel (:func:`check_band_grid`).
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "safe":
        return RasterBandSource.safe(path)
    if kind in ("band-folder", "geotiff"):
        return RasterBandSource.folder(path)  # sets the same format: a folder or a GeoTIFF file
    source = ArrayBandSource(read_mat_scene(path) if kind == "mat" else read_npz_scene(path))
    source.format = kind
    return source


def streams(source: BandSource, output: Path) -> bool:
    """True when the opened scene is sharpened into ``output`` window by window (``infer`` and ``batch``): a
    GeoTIFF output of a :attr:`BandSource.windowed` scene; other scenes and outputs are read and written whole."""
    return source.windowed and Path(output).suffix.lower() in (".tif", ".tiff")


def central_scene(source, side: int, *, with_60m: bool = False) -> Scene:
    """The central window of a scene, at most ``side`` x ``side`` 10 m pixels, as an in-memory Scene.

    Parameters
    ----------
    source : BandSource or Scene
        Anything with ``shape`` and ``read(band, tile)``; a :class:`Scene` is wrapped.
    side : int
        Most 10 m pixels a side.
    with_60m : bool
        Also read the 60 m bands (B01, B09) the scene has; the window's origin and size are then
        multiples of 6, so the 60 m grid keeps its phase too. A 60 m band that is all 0 DN in the
        window is left out (by :class:`Scene`, as every all-zero 60 m placeholder).

    Returns
    -------
    Scene
        The 10 m and 20 m bands of the window, float32 DN; its origin and size are even, so the 20 m
        grid keeps its phase. Only the window is read (a full tile costs the window's memory).
    """
    if isinstance(source, Scene):
        source = BandSource.from_scene(source)
    read = source.read
    step = 6 if with_60m else 2
    height, width = (min(n, side) // step * step for n in source.shape)
    row = (source.shape[0] - height) // (2 * step) * step
    col = (source.shape[1] - width) // (2 * step) * step
    fine, coarse = Tile(row, col, height, width), Tile(row // 2, col // 2, height // 2, width // 2)
    bands = {b: np.asarray(read(b, fine), np.float32) for b in FINE_BANDS}
    bands |= {b: np.asarray(read(b, coarse), np.float32) for b in COARSE_BANDS}
    if with_60m:
        sixty = Tile(row // 6, col // 6, height // 6, width // 6)
        # a 60 m band all 0 DN in the window is a placeholder there, and Scene leaves it out
        bands |= {b: np.asarray(read(b, sixty), np.float32) for b in VERY_COARSE_BANDS if b in source.bands}
    name = getattr(source, "name", None) or "scene"
    return Scene(bands=bands, source=getattr(source, "source", None), name=f"{name}-centre")


def describe_source(source: BandSource) -> dict:
    """Summarise an opened scene (what ``ssc-edge info`` prints), reading it strip by strip.

    Memory: one strip of :data:`SCAN_ROWS` rows of one band (a full 10980 x 10980 tile is never held whole).
    The statistics leave no-data out (:meth:`BandSource.valid`: a SAFE product's ``NODATA``, a raster's
    nodata tag, NaN or mask, else 0 DN).

    Returns
    -------
    dict
        Plain JSON types: ``source``, ``name``, ``shape`` (H, W of the fine grid, pixels),
        ``fine_pixel_size`` (m), ``bands``: ``{name: {"shape", "gsd" (m), "min", "max", "mean" (DN, of the
        valid pixels; None when there is none), "nodata" (pixels)}}`` in canonical band order (an all no-data
        60 m placeholder left out), ``reference``: ``{"shape", "min", "max", "mean"}`` or None, ``georef``:
        ``{"transform", "crs"}`` or None, ``format`` (:attr:`BandSource.format`) and ``identity``
        (:attr:`BandSource.identity`, ``""`` without a source).
    """
    bands = {}
    for band in source.bands:
        low, high, total, count, nodata = np.inf, -np.inf, 0.0, 0, 0
        for tile, values in source.strips(band):
            valid = values[source.valid(band, tile)]
            nodata += values.size - valid.size
            if valid.size:
                low, high = min(low, float(valid.min())), max(high, float(valid.max()))
                total += float(valid.sum(dtype=np.float64))
                count += valid.size
        if band in VERY_COARSE_BANDS and count == 0:
            continue  # an all-zero 60 m placeholder, dropped as the readers do
        stats = {"min": low, "max": high, "mean": total / count} if count else dict.fromkeys(("min", "max", "mean"))
        gsd = source.fine_pixel_size * GSD[band] / 10
        bands[band] = {"shape": list(source.band_shape(band)), "gsd": gsd, **stats, "nodata": nodata}
    georef = None if source.georef is None else {"transform": list(source.georef.transform), "crs": source.georef.crs}
    reference = source.scene.reference if isinstance(source, ArrayBandSource) else None
    if reference is not None:  # an RR file's true 20 m bands, float32 (float64 sums)
        reference = {"shape": list(reference.shape), "min": float(reference.min()), "max": float(reference.max()),
                     "mean": float(reference.mean(dtype=np.float64))}  # fmt: skip
    return {
        "source": str(source.source) if source.source is not None else None,
        "name": source.name,
        "shape": list(source.shape),
        "fine_pixel_size": source.fine_pixel_size,
        "bands": bands,
        "reference": reference,
        "georef": georef,
        "format": source.format,
        "identity": source.identity,
    }
