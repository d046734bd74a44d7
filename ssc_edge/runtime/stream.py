"""GeoTIFF in, GeoTIFF out, window by window: memory bounded by the tile, not the scene.

The scene is a folder of GeoTIFFs or a multi-band GeoTIFF as read by
:func:`ssc_edge.io.geotiff.geotiff_band_sources`. Each tile window of the 10 m bands is read with
rasterio, the 20 m bands around it with the upsampling margin (so the Keys upsampling of the
window is exact), the network runs, and the core is buffered into strips of whole 256-row output
blocks that are written as they complete. The output goes to a temporary file beside the target
and is renamed only when complete. The numbers are those of the in-memory
:meth:`Sharpener.sharpen <ssc_edge.runtime.Sharpener.sharpen>` (same window inputs, same engine).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bands import ALL_BANDS, FINE_BANDS
from ..errors import OptionError, OutputError, SceneError, SceneReadError
from ..io import atomic_output, check_output_path
from ..io.geotiff import geotiff_band_sources
from ..io.results import RESULT_DTYPES, to_dtype
from ..progress import ProgressCallback
from ..scene import GeoReference
from .sharpen import Sharpener
from .tiling import Tile

__all__ = ["StreamResult", "sharpen_geotiff", "output_band_names"]

logger = logging.getLogger(__name__)

#: Rows and columns of the output's internal GeoTIFF blocks; strips are flushed in whole blocks.
BLOCK = 256


@dataclass(frozen=True)
class StreamResult:
    """What :func:`sharpen_geotiff` wrote.

    Attributes
    ----------
    path : Path
    shape : (int, int)
        ``(H, W)`` of the 10 m grid, pixels.
    band_names : tuple of str
        Band descriptions of the output, in file order.
    tiles : int
        Windows run through the network.
    georef : GeoReference or None
    """

    path: Path
    shape: tuple[int, int]
    band_names: tuple[str, ...]
    tiles: int
    georef: GeoReference | None


def output_band_names(output_bands: tuple[str, ...], *, with_fine: bool) -> tuple[str, ...]:
    """Bands of the product: the sharpened ones, plus the 10 m bands in canonical order with ``with_fine``."""
    if not with_fine:
        return tuple(output_bands)
    wanted = set(output_bands) | set(FINE_BANDS)
    return tuple(b for b in ALL_BANDS if b in wanted)


class _StripWriter:
    """Collects row-major cores into one full-width buffer; writes whole blocks of ``BLOCK`` rows.

    The buffer holds ``tile + BLOCK`` rows of the output width (B bands, float32): the rows not yet
    written (fewer than ``BLOCK``) plus the tile row being filled. Memory therefore grows with the
    scene *width* (at most 10980 px for a Sentinel-2 tile: 768 x 10980 x 6 x 4 B = 202 MB for a
    512 px tile), never with its area.
    """

    def __init__(self, dataset, shape: tuple[int, int], bands: int, dtype: str, *, tile: int) -> None:
        self.dataset, self.shape, self.dtype = dataset, shape, dtype
        self.buffer = np.empty((min(tile + BLOCK, shape[0]), shape[1], bands), dtype=np.float32)
        self.row = 0  # output row of buffer[0]
        self.filled = 0  # rows of the buffer covered by finished tile rows
        self.strip_row = -1
        self.strip_end = 0

    def add(self, core: Tile, values: np.ndarray) -> None:
        if core.row != self.strip_row:
            self._commit()
            self.strip_row, self.strip_end = core.row, core.row + core.height - self.row
        top = core.row - self.row
        self.buffer[top : top + core.height, core.col : core.col + core.width] = values

    def _commit(self, *, final: bool = False) -> None:
        if self.strip_row >= 0:
            self.filled = self.strip_end
        rows = self.filled if final else self.filled // BLOCK * BLOCK
        for start in range(0, rows, BLOCK):
            chunk = to_dtype(self.buffer[start : min(start + BLOCK, rows)], self.dtype)
            window = ((self.row + start, self.row + start + len(chunk)), (0, self.shape[1]))
            self.dataset.write(np.moveaxis(chunk, -1, 0), window=window)
        left = self.filled - rows
        self.buffer[:left] = self.buffer[rows : rows + left]
        self.row += rows
        self.filled = left

    def close(self) -> None:
        self._commit(final=True)
        if self.row != self.shape[0]:
            raise RuntimeError(f"wrote {self.row} of {self.shape[0]} rows")  # a bug, not a user error


def _root_message(exc: BaseException) -> str:
    """The first message in an exception chain (GDAL's own, under rasterio's 'See previous exception')."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@contextlib.contextmanager
def _quiet_gdal_errors():
    """Hold back rasterio's log records of GDAL errors while writing: each failure also raises, and the
    exception (an ``OutputError`` naming the file) is the one message a user should see."""
    rasterio_logger = logging.getLogger("rasterio")
    level = rasterio_logger.level
    rasterio_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        rasterio_logger.setLevel(level)


def _open_sources(stack: contextlib.ExitStack, sources: dict[str, tuple[Path, int]], bands):
    import rasterio

    datasets = {}
    for band in bands:
        file, _ = sources[band]
        if file not in datasets:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    datasets[file] = stack.enter_context(rasterio.open(file))
            except (rasterio.errors.RasterioError, OSError) as exc:
                raise SceneReadError(f"{file}: cannot read GeoTIFF ({str(exc).splitlines()[0]})") from None
    return datasets


def sharpen_geotiff(
    sharpener: Sharpener,
    scene_path: Path,
    output_path: Path,
    *,
    dtype: str = "float32",
    with_fine: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
    gdal_cache_mb: int = 64,
    on_core=None,
) -> StreamResult:
    """Sharpen a GeoTIFF scene into a GeoTIFF, reading and writing window by window.

    Parameters
    ----------
    sharpener : Sharpener
    scene_path : Path
        Folder of band GeoTIFFs or a multi-band GeoTIFF (see :mod:`ssc_edge.io.geotiff`).
    output_path : Path
        ``.tif``/``.tiff`` to write: tiled (256 x 256), DEFLATE, BigTIFF when needed, the 10 m
        grid's transform and CRS, band descriptions ``B05 ... B12``.
    dtype : {"float32", "uint16"}
        Output samples, DN (uint16: rounded half to even and clipped).
    with_fine : bool
        Also write the four 10 m bands: the complete 10-band 10 m product in canonical order.
    force : bool
        Overwrite ``output_path``.
    progress : callable, optional
        ``progress(done, total, message)`` per batch of tiles.
    gdal_cache_mb : int
        GDAL block cache while streaming, MiB (GDAL's default is 5 % of RAM).
    on_core : callable, optional
        ``on_core(core, values, read_band, shape)`` for each sharpened core (see ``Sharpener.sharpen``).

    Returns
    -------
    StreamResult

    Raises
    ------
    SceneReadError, SceneError
        Unreadable files; bands missing, misaligned or non-finite (named with their file).
    OutputError
        Output exists, folder not writable, disk full; nothing is left at ``output_path``.
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    scene_path, output_path = Path(scene_path), Path(output_path)
    if output_path.suffix.lower() not in (".tif", ".tiff"):
        raise OptionError(f"{output_path}: streamed output must be a GeoTIFF (.tif)")
    if dtype not in RESULT_DTYPES:
        raise OptionError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(RESULT_DTYPES)}")
    contract = sharpener.contract
    sources = geotiff_band_sources(scene_path)
    needed = tuple(dict.fromkeys((*contract.input_bands, *(FINE_BANDS if with_fine else ()))))
    missing = [b for b in needed if b not in sources]
    if missing:
        raise SceneError(f"{scene_path}: the model needs band(s) {', '.join(missing)}, which the scene lacks")
    check_output_path(output_path, force=force)
    names = output_band_names(contract.output_bands, with_fine=with_fine)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb) * 1024 * 1024))
        datasets = _open_sources(stack, sources, needed)
        reference = datasets[sources[FINE_BANDS[0]][0]]
        shape = (reference.height, reference.width)
        for band in needed:
            file, _ = sources[band]
            ds = datasets[file]
            expected = shape if band in FINE_BANDS else (shape[0] // 2, shape[1] // 2)
            if (ds.height, ds.width) != expected or (band not in FINE_BANDS and shape[0] % 2 + shape[1] % 2):
                raise SceneError(
                    f"{file}: band {band} is {ds.height}x{ds.width}, expected {expected[0]}x{expected[1]} "
                    f"({'the 10 m size' if band in FINE_BANDS else 'half the 10 m size'} {shape[0]}x{shape[1]})"
                )
        sharpener.check_size(shape, source=scene_path)
        georef = None
        if reference.crs is not None:
            t = reference.transform
            georef = GeoReference((t.a, t.b, t.c, t.d, t.e, t.f), reference.crs.to_wkt())

        def read(band: str, window: Tile) -> np.ndarray:
            file, index = sources[band]
            data = datasets[file].read(index, window=Window(window.col, window.row, window.width, window.height))
            if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
                raise SceneError(
                    f"{file}: band {band} has non-finite values (NaN or inf) near row {window.row}, "
                    f"column {window.col} ({band} grid); fill or mask them before sharpening"
                )
            return data.astype(np.float32, copy=False)

        profile = {
            "driver": "GTiff",
            "height": shape[0],
            "width": shape[1],
            "count": len(names),
            "dtype": dtype,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "predictor": 3 if dtype == "float32" else 2,
            "interleave": "band",
            "BIGTIFF": "IF_SAFER",
        }
        if georef is not None:
            profile.update(crs=reference.crs, transform=Affine(*georef.transform))
        fine_positions = [i for i, b in enumerate(names) if b in FINE_BANDS]
        sharp_positions = [names.index(b) for b in contract.output_bands]
        stack.enter_context(_quiet_gdal_errors())
        with atomic_output(output_path) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(tmp, "w", **profile) as out:
                    for index, name in enumerate(names, start=1):
                        out.set_band_description(index, name)
                    writer = _StripWriter(out, shape, len(names), dtype, tile=sharpener.tile)

                    def write(core: Tile, values: np.ndarray) -> None:
                        if on_core is not None:
                            on_core(core, values, read, shape)
                        if not with_fine:
                            writer.add(core, values)
                            return
                        full = np.empty((*core.shape, len(names)), dtype=np.float32)
                        full[..., sharp_positions] = values
                        for position in fine_positions:
                            full[..., position] = read(names[position], core)
                        writer.add(core, full)

                    try:
                        tiles = sharpener.sharpen_windows(shape, read, write, progress=progress)
                        writer.close()
                    except rasterio.errors.RasterioIOError as exc:
                        raise OutputError(f"{output_path}: cannot write GeoTIFF ({_root_message(exc)})") from exc
    logger.debug("wrote %s (%dx%dx%d %s, %d tiles)", output_path, *shape, len(names), dtype, tiles)
    return StreamResult(path=output_path, shape=shape, band_names=names, tiles=tiles, georef=georef)
