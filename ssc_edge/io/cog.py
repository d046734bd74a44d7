"""Cloud-Optimized GeoTIFF (COG) outputs, made by GDAL's own COG driver from a finished GeoTIFF.

The product is first written (streamed window by window, or from memory) into a plain tiled GeoTIFF
beside the output; :func:`cloud_optimize` copies it into the COG that is then renamed onto the output
(:func:`ssc_edge.io.atomic_output`), in memory bounded by GDAL's block cache. The options (512 px
blocks, DEFLATE level 1 with a predictor, ``OVERVIEWS=AUTO`` averaged over valid pixels) and their
measured costs are explained in ``docs/cog.md`` (``benchmarks/cog_cost.py``).

A streamed product has every full-width strip in memory once, so :class:`OverviewWriter` writes the
first overview (:func:`average_2x2`) as GDAL's external ``.ovr`` while the strips are written, and the
COG driver takes these overviews instead of re-reading the product (``benchmarks/cog_overviews.py``:
2.0 s instead of 5.7 s on 4096^2 x 6 float32). Written by hand because rasterio cannot write overview
bands, and GDAL can only build overviews from a finished file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError, OutputError, SceneReadError
from ..progress import ProgressCallback, report, stage
from .geotiff import not_georeferenced_is_fine, tiled_profile
from .output import temporary_file

__all__ = [
    "COG_BLOCKSIZE",
    "COG_LEVEL",
    "CogResult",
    "OverviewWriter",
    "average_2x2",
    "cloud_optimize",
    "cog_creation_options",
    "overview_factors",
    "scratch_geotiff",
]

logger = logging.getLogger(__name__)

#: Side of the COG's internal tiles, pixels.
COG_BLOCKSIZE = 512

#: DEFLATE level of the COG's tiles.
COG_LEVEL = 1


@dataclass(frozen=True)
class CogResult:
    """What :func:`cloud_optimize` wrote.

    Attributes
    ----------
    path : Path
    seconds : float
        Wall time of the copy, overviews included, s.
    overviews : tuple of int
        Decimation factors of the overviews (``(2, 4, 8)``...), the same for every band.
    bytes : int
        Size of the COG file.
    """

    path: Path
    seconds: float
    overviews: tuple[int, ...]
    bytes: int


def cog_creation_options(
    *, blocksize: int = COG_BLOCKSIZE, level: int = COG_LEVEL, threads: int | None = None
) -> dict[str, str]:
    """GDAL COG driver creation options of ssc-edge products (why these: ``docs/cog.md``).

    Parameters
    ----------
    blocksize : int
        Tile side, pixels: a power of two from 64 to 4096 (GDAL's limits for a COG).
    level : int
        DEFLATE level, 1 (fastest) to 9.
    threads : int, optional
        Compression threads; None: all of this machine's CPUs.

    Raises
    ------
    OptionError
        Out-of-range ``blocksize``, ``level`` or ``threads``.
    """
    if blocksize not in (64, 128, 256, 512, 1024, 2048, 4096):
        raise OptionError(f"COG block size must be a power of two from 64 to 4096 px, got {blocksize}")
    if not 1 <= level <= 9:
        raise OptionError(f"DEFLATE level must be 1 to 9, got {level}")
    if threads is not None and threads < 1:
        raise OptionError(f"COG threads must be positive, got {threads}")
    return {
        "BLOCKSIZE": str(blocksize),
        "COMPRESS": "DEFLATE",
        "LEVEL": str(level),
        "PREDICTOR": "YES",
        "OVERVIEWS": "AUTO",
        "RESAMPLING": "AVERAGE",
        "NUM_THREADS": "ALL_CPUS" if threads is None else str(threads),
        "BIGTIFF": "IF_SAFER",
    }


def cloud_optimize(
    source: Path,
    destination: Path,
    *,
    blocksize: int = COG_BLOCKSIZE,
    level: int = COG_LEVEL,
    threads: int | None = None,
    cache_mb: int = 64,
    progress: ProgressCallback | None = None,
    name: Path | None = None,
) -> CogResult:
    """Copy a finished GeoTIFF into a Cloud-Optimized GeoTIFF with GDAL's COG driver.

    Writes exactly ``destination`` (and GDAL's temporary ``destination.ovr.tmp``); not atomic by itself:
    call it on the temporary file of :func:`ssc_edge.io.atomic_output`. Everything is copied losslessly
    (pixels bit for bit, dtype, CRS, transform, band descriptions, nodata, tags). Ctrl-C stops the wait
    at once (:func:`_run_interruptibly`).

    Parameters
    ----------
    source : Path
        A readable GeoTIFF (any tiling or compression; uncompressed reads fastest).
    destination : Path
        The COG to write (overwritten).
    blocksize, level, threads
        See :func:`cog_creation_options`.
    cache_mb : int
        GDAL's block cache during the copy, MiB (GDAL's default is 5 % of RAM): it bounds the step's memory.
    progress : callable, optional
        ``progress(done, total, message)``: ``0/1`` before the copy, ``1/1`` after it, prefixed ``COG``.
    name : Path, optional
        The file error messages name (default ``destination``): the final output of a temporary file.

    Returns
    -------
    CogResult

    Raises
    ------
    SceneReadError
        ``source`` is missing or not a raster GDAL reads.
    OutputError
        ``destination`` cannot be written (folder missing or read-only, disk full).
    OptionError
        See :func:`cog_creation_options`; ``cache_mb`` below 1.
    """
    import rasterio
    import rasterio.shutil
    from rasterio._err import CPLE_BaseError  # GDAL's own errors (not exported by rasterio.errors)

    source, destination = Path(source), Path(destination)
    options = cog_creation_options(blocksize=blocksize, level=level, threads=threads)
    if cache_mb < 1:
        raise OptionError(f"GDAL cache for the COG step must be at least 1 MiB, got {cache_mb}")
    if not source.is_file():
        raise SceneReadError(f"{source}: no such GeoTIFF to cloud-optimize")
    progress = stage(progress, "COG")
    report(progress, 0, 1, "overviews and layout")

    def copy() -> None:
        # rasterio's Env is per thread: entered in the thread that runs GDAL
        with rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 1024 * 1024), not_georeferenced_is_fine():
            rasterio.shutil.copy(source, destination, driver="COG", **options)

    start = time.perf_counter()
    try:
        _run_interruptibly(copy, leaves=(destination, Path(f"{destination}.ovr.tmp")))
    except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as exc:
        Path(f"{destination}.ovr.tmp").unlink(missing_ok=True)
        shown = destination if name is None else Path(name)
        raise OutputError(f"{shown}: cannot write the Cloud-Optimized GeoTIFF ({root_message(exc)})") from exc
    seconds = time.perf_counter() - start
    with not_georeferenced_is_fine(), rasterio.open(destination) as dataset:
        overviews = tuple(dataset.overviews(1)) if dataset.count else ()
    size = destination.stat().st_size
    report(progress, 1, 1, f"written in {seconds:.1f} s")
    logger.debug("cloud-optimized %s in %.2f s (overviews %s, %d bytes)", destination, seconds, overviews, size)
    return CogResult(path=destination, seconds=seconds, overviews=overviews, bytes=size)


def _run_interruptibly(function: Callable[[], None], *, leaves: tuple[Path, ...]) -> None:
    """Run ``function`` (a GDAL call, which releases the GIL) in a daemon thread and wait for it here.

    Python raises ``KeyboardInterrupt`` only in the main thread between bytecodes: waiting in short
    joins, Ctrl-C stops ``infer`` at once instead of after the whole COG step (a minute on a full tile).
    On any exception here the thread deletes ``leaves`` once GDAL returns; they are also deleted now.
    """
    failure: list[BaseException] = []
    abandoned = threading.Event()

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)
        finally:
            if abandoned.is_set():
                for path in leaves:
                    path.unlink(missing_ok=True)

    thread = threading.Thread(target=target, name="ssc-edge-cog", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except BaseException:
        abandoned.set()
        for path in leaves[1:]:  # the destination is the caller's (a temporary file it removes)
            path.unlink(missing_ok=True)
        raise
    if failure:
        raise failure[0]


def root_message(exc: BaseException) -> str:
    """The first line of the innermost exception of a chain (GDAL's own, under rasterio's 'See previous
    exception')."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return (str(exc) or type(exc).__name__).splitlines()[0]


def overview_factors(shape: tuple[int, int], *, blocksize: int = COG_BLOCKSIZE) -> tuple[int, ...]:
    """The decimation factors of the overviews GDAL's COG driver makes with ``OVERVIEWS=AUTO``.

    Halvings (2, 4, 8, ...) until ``side // factor`` is at most ``blocksize`` on both sides (GDAL counts the
    levels with integer division: 2050 px gives 2 and 4, not 8). ``()`` for an image that fits in one block;
    10980^2 at 512 px: 2, 4, 8, 16, 32.
    """
    height, width = shape
    factors: list[int] = []
    factor = 1
    while max(height // factor, width // factor) > blocksize:
        factor *= 2
        factors.append(factor)
    return tuple(factors)


def average_2x2(values: np.ndarray, nodata: float | int) -> np.ndarray:
    """The first overview of (h, w, C) samples: each 2 x 2 block's mean of its valid pixels (GDAL's AVERAGE).

    Parameters
    ----------
    values : (h, w, C) ndarray, h and w even
        Samples as stored in the file (float32 DN, or uint16 DN).
    nodata : float or int
        The file's nodata: NaN (float32) or 0 (uint16). A block with no valid pixel is nodata; a block
        with one is the mean of its valid pixels (rounded half up for integers).

    Returns
    -------
    (h / 2, w / 2, C) ndarray of ``values.dtype``
    """
    if values.shape[0] % 2 or values.shape[1] % 2:
        raise ValueError(f"2 x 2 blocks need an even height and width, got {values.shape[:2]}")
    valid = ~np.isnan(values) if np.isnan(nodata) else values != nodata
    filled = np.where(valid, values, 0).astype(np.float32, copy=False)
    total = filled[0::2, 0::2] + filled[1::2, 0::2] + filled[0::2, 1::2] + filled[1::2, 1::2]
    count = valid[0::2, 0::2].astype(np.uint8) + valid[1::2, 0::2] + valid[0::2, 1::2] + valid[1::2, 1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    if values.dtype.kind == "f":
        mean[count == 0] = np.nan
        return mean.astype(values.dtype, copy=False)
    mean = np.floor(mean + 0.5)
    mean[count == 0] = nodata
    return mean.astype(values.dtype)


class OverviewWriter:
    """GDAL's external overview file (``SCRATCH.tif.ovr``) of a product written strip by strip.

    :meth:`add` writes the 2 x 2 means (:func:`average_2x2`) of the full-width strips, in row order, into
    the first overview; :meth:`finish` has GDAL build the smaller levels from it. Memory: one strip's means.

    Parameters
    ----------
    scratch : Path
        The plain GeoTIFF being written; the overviews go to ``scratch`` + ``.ovr`` (removed with it by
        :func:`scratch_geotiff`).
    shape : (int, int)
        ``(H, W)`` of the product, both even.
    bands : int
    dtype : str
        ``"float32"`` or ``"uint16"``.
    nodata : float or int
        The product's nodata (NaN or 0).
    blocksize : int
        The COG's block side, which sets the levels (:func:`overview_factors`).
    """

    def __init__(
        self,
        scratch: Path,
        shape: tuple[int, int],
        bands: int,
        dtype: str,
        nodata: float | int,
        *,
        blocksize: int = COG_BLOCKSIZE,
    ) -> None:
        import rasterio

        self.factors = overview_factors(shape, blocksize=blocksize)
        if not self.factors or shape[0] % 2 or shape[1] % 2:
            raise ValueError(f"no streamed overviews for a {shape[0]}x{shape[1]} product (even, over one block)")
        self.path = Path(f"{scratch}.ovr")
        self.nodata = nodata
        self.rows = 0  # product rows received
        self.height = shape[0]
        half = (shape[0] // 2, shape[1] // 2)
        profile = tiled_profile(half, bands, dtype, block=blocksize, nodata=nodata, BIGTIFF="IF_SAFER")
        with not_georeferenced_is_fine():
            self.dataset = rasterio.open(self.path, "w", **profile)

    def add(self, row: int, samples: np.ndarray) -> None:
        """Take the product's rows ``row`` .. ``row + h`` ((h, W, C) samples as written; ``row`` and h even)."""
        if row != self.rows or row % 2 or samples.shape[0] % 2:
            raise ValueError(f"overview strips must follow each other on even rows: got row {row} after {self.rows}")
        mean = average_2x2(samples, self.nodata)
        window = ((row // 2, row // 2 + mean.shape[0]), (0, mean.shape[1]))
        self.dataset.write(np.moveaxis(mean, -1, 0), window=window)
        self.rows += samples.shape[0]

    def finish(self, *, cache_mb: int = 64) -> None:
        """Close the first overview and build the smaller ones inside it (GDAL, AVERAGE)."""
        import rasterio
        from rasterio.enums import Resampling

        self.dataset.close()
        if self.rows != self.height:
            raise RuntimeError(f"overviews of {self.rows} of {self.height} rows")  # a bug, not a user error
        if len(self.factors) > 1:
            with (
                rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 1024 * 1024),
                not_georeferenced_is_fine(),
                rasterio.open(self.path, "r+") as dataset,
            ):
                dataset.build_overviews([f // 2 for f in self.factors[1:]], Resampling.average)

    def close(self) -> None:
        """Close the file if :meth:`finish` was not reached (an error while streaming)."""
        if not self.dataset.closed:
            self.dataset.close()


@contextlib.contextmanager
def scratch_geotiff(beside: Path) -> Iterator[Path]:
    """Yield a temporary ``.tif`` path beside ``beside``; remove it (and :class:`OverviewWriter`'s ``.ovr``)
    on exit, whatever happens. The plain GeoTIFF :func:`cloud_optimize` reads; named by
    :func:`ssc_edge.io.output.temporary_file`, so :func:`~ssc_edge.io.output.remove_stale_files` finds it.
    """
    path = temporary_file(Path(beside), suffix=".plain.tif")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        Path(f"{path}.ovr").unlink(missing_ok=True)  # OverviewWriter's
