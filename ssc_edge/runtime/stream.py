"""Any scene in, GeoTIFF out, window by window: memory bounded by the tile, not the scene.

The scene is any :class:`~ssc_edge.io.sources.BandSource`: a SAFE product (folder or zip), a
folder of band rasters (JP2 as in a granule's ``IMG_DATA``, GeoTIFF) or a multi-band GeoTIFF, read
window by window with rasterio (``.mat``/``.npz`` are read whole first). Each tile window of the
10 m bands is read, the 20 m bands around it with the upsampling margin (so the Keys upsampling
of the window is exact), the network runs, and the core is buffered into strips of whole 256-row output
blocks that are written as they complete. The output goes to a temporary file beside the target
and is renamed only when complete. The numbers are those of the in-memory
:meth:`Sharpener.sharpen <ssc_edge.runtime.Sharpener.sharpen>` (same window inputs, same engine).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bands import ALL_BANDS, FINE_BANDS
from ..errors import OptionError, OutputError
from ..io import atomic_output, check_outputs
from ..io.cog import OverviewWriter, cloud_optimize, overview_factors, root_message, scratch_geotiff
from ..io.geotiff import tiled_profile
from ..io.results import to_dtype
from ..io.sources import BandSource
from ..nodata import output_nodata
from ..progress import ProgressCallback
from ..scene import GeoReference
from ..tiling import Tile
from .sharpen import Sharpener

__all__ = ["StreamResult", "sharpen_stream", "output_band_names"]

logger = logging.getLogger(__name__)

#: Rows and columns of the output's internal GeoTIFF blocks; strips are flushed in whole blocks.
BLOCK = 256
#: GDAL block cache while streaming and during the COG step, MiB (GDAL's default is 5 % of RAM).
GDAL_CACHE_MB = 64


@dataclass(frozen=True)
class StreamResult:
    """What :func:`sharpen_stream` wrote.

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
    cog_seconds : float or None
        Wall time of the Cloud-Optimized GeoTIFF step (:func:`~ssc_edge.io.cog.cloud_optimize`), s;
        None when the output is a plain GeoTIFF (``cog=False``).
    """

    path: Path
    shape: tuple[int, int]
    band_names: tuple[str, ...]
    tiles: int
    georef: GeoReference | None
    cog_seconds: float | None = None


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

    def __init__(self, dataset, shape: tuple[int, int], bands: int, dtype: str, *, tile: int, overviews=None) -> None:
        self.dataset, self.shape, self.dtype = dataset, shape, dtype
        self.overviews = overviews  # an ssc_edge.io.cog.OverviewWriter: the strips' 2 x 2 means, as written
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
            if self.overviews is not None:
                self.overviews.add(self.row + start, chunk)
        left = self.filled - rows
        self.buffer[:left] = self.buffer[rows : rows + left]
        self.row += rows
        self.filled = left

    def close(self) -> None:
        self._commit(final=True)
        if self.row != self.shape[0]:
            raise RuntimeError(f"wrote {self.row} of {self.shape[0]} rows")  # a bug, not a user error
        self.buffer = None  # up to ~200 MB on a full tile, freed before the COG step re-reads the file


def _log_nodata(source: BandSource, nodata_pixels: int, dtype: str) -> None:
    """Warn once which share of the 10 m pixels is no-data in the output (a band the model reads has none)."""
    if nodata_pixels:
        share = 100 * nodata_pixels / (source.shape[0] * source.shape[1])
        value = "NaN" if dtype == "float32" else output_nodata(dtype)
        logger.warning("%s: %.2f%% of the 10 m pixels are no-data; they are nodata (%s) in the output",
                       source.where, share, value)  # fmt: skip


def sharpen_stream(
    sharpener: Sharpener,
    source: BandSource,
    output_path: Path,
    *,
    dtype: str = "float32",
    with_fine: bool = False,
    force: bool = False,
    cog: bool = True,
    progress: ProgressCallback | None = None,
    on_checked: Callable[[BandSource], None] | None = None,
    on_core=None,
) -> StreamResult:
    """Sharpen a scene into a GeoTIFF, reading and writing window by window.

    Parameters
    ----------
    sharpener : Sharpener
    source : BandSource
        The scene, opened once (:func:`~ssc_edge.io.sources.open_band_source`); left open.
    output_path : Path
        ``.tif``/``.tiff`` to write: tiled (256 x 256), DEFLATE, BigTIFF when needed, the 10 m
        grid's transform and CRS, band descriptions ``B05 ... B12``.
    dtype, with_fine, force, cog
        As :class:`~ssc_edge.runtime.options.OutputOptions` (uint16: rounded half to even and clipped; the COG
        is made from an uncompressed scratch GeoTIFF beside the output).
    progress : callable, optional
        ``progress(done, total, message)`` per batch of tiles, then the COG step as one (``COG: ...``).
    on_checked : callable, optional
        ``on_checked(source)``, called once the scene passed every check (bands present, size,
        data) and before the first window runs: ``infer`` prints its warnings there, so that bad
        input stays a single error line.
    on_core : callable, optional
        ``on_core(core, values, read_band, shape)`` for each sharpened core (see ``Sharpener.sharpen``).

    Raises
    ------
    SceneReadError, SceneError
        Unreadable files; bands missing, misaligned, non-finite or all no-data (named with their file).
    OutputError
        Output exists, folder not writable, disk full; nothing is left at ``output_path``.
    """
    import rasterio
    from rasterio._err import CPLE_BaseError  # GDAL's own errors (not exported by rasterio.errors)

    output_path = Path(output_path)
    if output_path.suffix.lower() not in (".tif", ".tiff"):
        raise OptionError(f"{output_path}: streamed output must be a GeoTIFF (.tif)")
    contract = sharpener.contract
    needed = tuple(dict.fromkeys((*contract.input_bands, *(FINE_BANDS if with_fine else ()))))
    names = output_band_names(contract.output_bands, with_fine=with_fine)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB << 20))
        source.require(needed)
        check_outputs([output_path], force=force)
        shape = source.shape
        sharpener.check_size(shape, source=source.where)
        source.check_has_data(needed)
        if on_checked is not None:
            on_checked(source)
        georef = source.georef
        read = source.read

        # level 1, not GDAL's 6: on sharpened float32 windows 2.2x faster to write at the same size (+0.2 %); the
        # write shares the CPU with the network (benchmarks/RESULTS.md, "A Zen 4 CPU"). With a COG the COG step
        # re-reads this file: uncompressed gives the lowest total time (docs/cog.md)
        compression = {} if cog else {"compress": "deflate", "zlevel": 1, "predictor": 3 if dtype == "float32" else 2}
        profile = tiled_profile(
            shape, len(names), dtype, block=BLOCK, georef=georef, BIGTIFF="IF_SAFER",
            nodata=output_nodata(dtype), **compression,  # nodata: NaN (float32) or 0 (uint16), see ssc_edge.nodata
        )  # fmt: skip
        fine_positions = [i for i, b in enumerate(names) if b in FINE_BANDS]
        sharp_positions = [names.index(b) for b in contract.output_bands]
        # rasterio's log records of GDAL errors held back while writing: each failure also raises, and the
        # exception (an OutputError naming the file) is the one message a user should see
        rasterio_logger = logging.getLogger("rasterio")
        stack.callback(rasterio_logger.setLevel, rasterio_logger.level)
        rasterio_logger.setLevel(logging.CRITICAL)
        cog_seconds = None
        with (
            atomic_output(output_path) as tmp,
            scratch_geotiff(output_path) if cog else contextlib.nullcontext(tmp) as plain,
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(plain, "w", **profile) as out, contextlib.ExitStack() as open_overviews:
                    for index, name in enumerate(names, start=1):
                        out.set_band_description(index, name)
                    overviews = None
                    if cog and overview_factors(shape):  # the COG's overviews, made from the strips as written
                        overviews = OverviewWriter(plain, shape, len(names), dtype, output_nodata(dtype))
                        open_overviews.callback(overviews.close)
                    writer = _StripWriter(out, shape, len(names), dtype, tile=sharpener.tile, overviews=overviews)

                    nodata_pixels = [0]

                    def write(core: Tile, values: np.ndarray) -> None:
                        nodata_pixels[0] += int(np.count_nonzero(np.isnan(values[..., 0])))
                        if on_core is not None:
                            on_core(core, values, read, shape)
                        if not with_fine:
                            writer.add(core, values)
                            return
                        full = np.empty((*core.shape, len(names)), dtype=np.float32)
                        full[..., sharp_positions] = values
                        for position in fine_positions:
                            band = names[position]  # a 10 m band as read; nodata where it has none
                            full[..., position] = np.where(source.valid(band, core), read(band, core), np.nan)
                        writer.add(core, full)

                    try:
                        tiles = sharpener.sharpen_windows(
                            shape, read, write, progress=progress, read_valid=source.valid
                        )
                        writer.close()
                        if overviews is not None:
                            overviews.finish(cache_mb=GDAL_CACHE_MB)
                    except (rasterio.errors.RasterioIOError, CPLE_BaseError) as exc:  # the latter: building overviews
                        raise OutputError(f"{output_path}: cannot write GeoTIFF ({root_message(exc)})") from exc
            if cog:
                cog_seconds = cloud_optimize(
                    plain, tmp, cache_mb=GDAL_CACHE_MB, progress=progress, name=output_path
                ).seconds
    logger.debug("wrote %s (%dx%dx%d %s, %d tiles)", output_path, *shape, len(names), dtype, tiles)
    _log_nodata(source, nodata_pixels[0], dtype)
    return StreamResult(
        path=output_path, shape=shape, band_names=names, tiles=tiles, georef=georef, cog_seconds=cog_seconds
    )
