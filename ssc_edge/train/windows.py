"""The scene window by window: Wald training pairs of windows, bounded patch samples, sample windows.

A scene too large for memory (a 10980 x 10980 Sentinel-2 tile) is read through a *band source*:
anything with ``shape`` (the fine grid's ``(H, W)``, pixels) and ``read(band, tile)`` returning that
band's (h, w) DN window (``tile`` a :class:`~ssc_edge.tiling.Tile` on the band's own grid; the
runtime's ``BandReader``). :func:`scene_source` wraps an in-memory :class:`~ssc_edge.scene.Scene`.

:func:`window_pair` builds the Wald training pair of a region of the training grid by calling
:func:`ssc_edge.wald.training_pair` on a small scene cut from the source with the margin of
:func:`pair_margin`. Every kernel of the pair (degradation, Keys upsampling) has finite support, so
the region's pair equals the same crop of the whole-image pair bit for bit (tested).

No TensorFlow here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import registration, sampling, wald
from ..bands import COARSE_BANDS, FINE_BANDS
from ..errors import SceneError
from ..io.sources import ArrayBandSource
from ..progress import ProgressCallback, report
from ..scene import Scene
from ..tiling import Tile

__all__ = [
    "DEFAULT_PATCH_BUDGET",
    "TRAINING_WINDOW",
    "BandSource",
    "PatchSample",
    "WindowPair",
    "check_training_size",
    "minimum_side",
    "pair_margin",
    "pair_model_for",
    "sample_patches",
    "scene_source",
    "window_pair",
]

logger = logging.getLogger(__name__)

#: Default most training patches per fit (``FitConfig.patch_budget``); chosen with ``benchmarks/patch_budget.py``.
DEFAULT_PATCH_BUDGET = 512
#: Side of the training-grid windows a scene is read in, pixels of the training grid.
TRAINING_WINDOW = 512


class BandSource(Protocol):
    """What the windowed code reads: the fine grid's shape and band windows (the runtime's ``BandReader``)."""

    shape: tuple[int, int]

    def read(self, band: str, tile: Tile) -> np.ndarray: ...


def scene_source(scene: Any) -> BandSource:
    """A band source for ``scene``: a :class:`Scene` is served by :class:`~ssc_edge.io.sources.ArrayBandSource`,
    anything with ``shape`` and ``read`` is returned."""
    if isinstance(scene, Scene):
        return ArrayBandSource(scene)
    if hasattr(scene, "read") and hasattr(scene, "shape"):
        return scene
    raise TypeError(f"not a Scene or band source: {type(scene).__name__}")


def minimum_side(patch: int, levels: int) -> int:
    """Smallest fine-grid side, pixels, that yields one ``patch``-pixel training patch ``levels`` scales down."""
    multiple = 2 ** (levels + 1)
    side = -(-patch // multiple) * multiple
    return max(side * 2**levels, multiple)


def check_training_size(shape: tuple[int, int], patch: int, *, levels: int, where: str = "") -> None:
    """Raise :class:`SceneError` (naming the minimum) if an (H, W) fine grid has no ``levels``-down patch."""
    minimum = minimum_side(patch, levels)
    if min(shape) < minimum:
        raise SceneError(
            f"{where}scene of {shape[0]}x{shape[1]} px is too small: training {levels} scale(s) down "
            f"with {patch}x{patch} patches needs at least {minimum}x{minimum} px"
        )


def pair_margin(config: Any, levels: int, pair: wald.PairModel | None = None) -> int:
    """Margin, pixels of the training grid ``levels`` scales down, that makes a window's pair exact.

    :func:`ssc_edge.wald.pair_margin` (the reach of the pair's kernels, ``pair`` or the nominal ones,
    applied ``levels`` times, plus Keys' cubic upsampling), converted to the training grid and made
    even, so that windows stay aligned with every degraded grid. The cubic spline's prefilter is
    global; its read margin (``runtime.sharpen.COARSE_MARGIN``: 32 px of the 20 m grid, 64 of the
    training grid, on top of 16) makes it exact to float32.
    """
    if config.upsampling != "bicubic":
        return 16 + 64
    fine = wald.pair_margin(pair, levels=levels, upsampling=config.upsampling)
    margin = -(-fine // 2**levels)
    return margin + margin % 2


def pair_model_for(
    scene: Any, config: Any, *, estimate: registration.RegistrationEstimate | None = None
) -> wald.PairModel | None:
    """The training pair's :class:`~ssc_edge.wald.PairModel` for ``scene`` under ``config``, made once per scene.

    ``None`` when the pair needs none (protocol ``paper``; a named degradation with registration
    ``none``: the nominal pair). Otherwise the registration is estimated on the scene's central crop
    (:func:`ssc_edge.registration.estimate_scene_registration`, bounded) unless ``estimate`` is given;
    pass the result to :func:`training_data` for the whole scene or for each window of it.
    """
    if config.protocol == "paper" or (config.degradation != "auto" and config.registration == "none"):
        return None
    if estimate is None:
        estimate = registration.estimate_scene_registration(scene)
    return registration.pair_model(estimate, degradation=config.degradation, registration=config.registration)


@dataclass(frozen=True)
class WindowPair:
    """The training pair of one region of the training grid, and the no-data mask around it.

    Attributes
    ----------
    inputs : (h, w, 10) float32 ndarray
        DN; equal to the same crop of the whole-image :func:`ssc_edge.wald.training_pair` inputs.
    target : (h, w, 6) float32 ndarray
        DN, the same crop of the whole-image target.
    nodata : (h + top + bottom, w + left + right) bool ndarray
        Training-grid pixels under which some band holds 0 DN, over the region plus the margin read.
    offset : (int, int)
        ``(top, left)``: position of the region in ``nodata``.
    """

    inputs: np.ndarray
    target: np.ndarray
    nodata: np.ndarray
    offset: tuple[int, int]


def training_grid(shape: tuple[int, int], levels: int) -> tuple[int, int]:
    """``(h, w)`` of the training grid ``levels`` scales below an (H, W) fine grid (cropped as the pair is)."""
    multiple = 2 ** (levels + 1)
    return tuple((int(n) - int(n) % multiple) // 2**levels for n in shape)  # type: ignore[return-value]


def window_pair(
    source: BandSource, region: Tile, config: Any, *, levels: int = 1, pair: wald.PairModel | None = None
) -> WindowPair | None:
    """The Wald training pair of ``region`` of the training grid, read from ``source`` with the pair's margin.

    Parameters
    ----------
    source : BandSource
    region : Tile
        On the training grid ``levels`` scales down (:func:`training_grid`).
    config : FitConfig
        ``degradation`` and ``upsampling``.
    levels : int
        Scales below the fine grid.
    pair : wald.PairModel, optional
        The pair's kernels and offset (estimated once per scene); None: the nominal pair of
        ``config.degradation``.

    Returns
    -------
    WindowPair or None
        None when every pixel read is no-data (nothing to train or score on).
    """
    read = _read_region(source, region, config, levels, pair)
    if read is None:
        return None
    inputs, target = _region_pair(read, read.bounds, region, config, levels, pair)
    return WindowPair(inputs, target, read.nodata, (region.row - read.bounds[0], region.col - read.bounds[1]))


@dataclass(frozen=True)
class _Read:
    """The bands read for a region with its pair's margin: ``bands`` float32 DN (each on its own grid),
    ``nodata`` on the training grid, ``bounds`` ``(r0, c0, r1, c1)`` of the read, pixels of the training grid."""

    bands: dict[str, np.ndarray]
    nodata: np.ndarray
    bounds: tuple[int, int, int, int]


def _bounds(region: Tile, margin: int, grid: tuple[int, int]) -> tuple[int, int, int, int]:
    """``region`` widened by ``margin`` and clipped to ``grid``, on even training-grid pixels (so on the
    ``2 ** (levels + 1)`` fine-pixel grid of the pair; grid sides are even)."""
    r0, c0 = max(region.row - margin, 0), max(region.col - margin, 0)
    r1 = min(region.row + region.height + margin, grid[0])
    c1 = min(region.col + region.width + margin, grid[1])
    return r0 - r0 % 2, c0 - c0 % 2, min(r1 + r1 % 2, grid[0]), min(c1 + c1 % 2, grid[1])


def _read_region(
    source: BandSource, region: Tile, config: Any, levels: int, pair: wald.PairModel | None
) -> _Read | None:
    """Read every band under ``region`` and the pair's margin; None when all of it is no-data."""
    factor = 2**levels
    r0, c0, r1, c1 = bounds = _bounds(region, pair_margin(config, levels, pair), training_grid(source.shape, levels))
    fine_tile = Tile(r0 * factor, c0 * factor, (r1 - r0) * factor, (c1 - c0) * factor)
    coarse_tile = Tile(fine_tile.row // 2, fine_tile.col // 2, fine_tile.height // 2, fine_tile.width // 2)
    bands = {b: np.asarray(source.read(b, fine_tile), dtype=np.float32) for b in FINE_BANDS}
    bands |= {b: np.asarray(source.read(b, coarse_tile), dtype=np.float32) for b in COARSE_BANDS}
    fine_zero = np.any([bands[b] == 0 for b in FINE_BANDS], axis=0)
    coarse_zero = np.any([bands[b] == 0 for b in COARSE_BANDS], axis=0)
    nodata = sampling.block_any(fine_zero, factor) | sampling.block_any(coarse_zero, factor // 2)
    return None if nodata.all() else _Read(bands, nodata, bounds)


def _region_pair(
    read: _Read, bounds: tuple[int, int, int, int], region: Tile, config: Any, levels: int, pair: wald.PairModel | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs (h, w, 10), target (h, w, 6))`` DN of ``region``: the pair of the part ``bounds`` of ``read``
    (``region`` and its margin, :func:`_bounds`), cropped to ``region``."""
    factor, (r0, c0, r1, c1), (R0, C0) = 2**levels, bounds, read.bounds[:2]
    cut = {}
    for band, array in read.bands.items():
        step = factor if band in FINE_BANDS else factor // 2
        cut[band] = array[(r0 - R0) * step : (r1 - R0) * step, (c0 - C0) * step : (c1 - C0) * step]
    images = wald.training_pair(
        Scene(bands=cut), degradation=config.degradation, upsampling=config.upsampling, levels=levels, model=pair
    )
    crop = Tile(region.row - r0, region.col - c0, region.height, region.width).slices
    return images.inputs[crop], images.target[crop]


@dataclass
class PatchSample:
    """Training patches drawn from a scene.

    Attributes
    ----------
    inputs : (n, p, p, 10) float32 ndarray
        DN, row-major order of the patch origins.
    target : (n, p, p, 6) float32 ndarray
        DN.
    scale : float
        Maximum of the whole training target, DN (the fit's normalisation; over every window read).
    candidates : int
        Valid patches of the scene (no no-data pixel under them or within the margin).
    origins : int
        All patch origins of the training grid.
    windows : int
        Windows the drawn patches came from.
    windows_read : int
        Windows read.
    origins_drawn : (n, 2) int ndarray
        ``(row, col)`` of each drawn patch's origin, pixels of the training grid.
    """

    inputs: np.ndarray
    target: np.ndarray
    scale: float
    candidates: int
    origins: int
    windows: int
    windows_read: int
    origins_drawn: np.ndarray


def sample_patches(
    source: BandSource,
    config: Any,
    *,
    levels: int = 1,
    window: int = TRAINING_WINDOW,
    progress: ProgressCallback | None = None,
    pair: wald.PairModel | None = None,
) -> PatchSample:
    """Draw at most ``config.patch_budget`` valid training patches from a scene, reading it window by window.

    Parameters
    ----------
    source : BandSource
    config : FitConfig
        ``patch``, ``stride``, ``seed``, ``degradation``, ``upsampling``, ``patch_budget``.
    levels : int
        Scales below the fine grid (1 for the fit, 2 for the report's evaluation fit).
    window : int
        Side of the windows read, pixels of the training grid.
    progress : callable, optional
        ``progress(done, total, "windows ...")`` after every window.
    pair : wald.PairModel, optional
        See :func:`window_pair`.

    Returns
    -------
    PatchSample
        All valid patches when there are at most ``config.patch_budget``: with no no-data, the patches of
        :func:`~ssc_edge.train.fit.extract_patches` on the whole-image pair, same order, same values.

    Raises
    ------
    SceneError
        A scene too small for one patch, or without one patch free of no-data.
    """
    budget = int(config.patch_budget)
    patch, stride = int(config.patch), int(config.stride)
    check_training_size(source.shape, patch, levels=levels, where=_where(source))
    grid = training_grid(source.shape, levels)
    n_rows, n_cols = sampling.origin_grid(grid, patch=patch, stride=stride)
    reservoir = sampling.PatchReservoir(sampling.patch_keys(n_rows * n_cols, seed=config.seed), budget)
    pair = pair_model_for(source, config) if pair is None else pair
    margin = pair_margin(config, levels, pair)
    blocks = list(sampling.origin_blocks(grid, patch=patch, stride=stride, window=window))
    scale = 0.0
    for k, block in enumerate(blocks, 1):
        region = Tile(*block.region)
        read = _read_region(source, region, config, levels, pair)
        if read is not None:
            r0, c0 = read.bounds[:2]
            whole = None
            if levels == 1:  # the target one scale down is the observed 20 m bands: its maximum needs no pair
                crop = Tile(region.row - r0, region.col - c0, region.height, region.width).slices
                scale = max(scale, *(float(read.bands[b][crop].max()) for b in COARSE_BANDS))
            else:
                whole = _region_pair(read, read.bounds, region, config, levels, pair)
                scale = max(scale, float(whole[1].max()))
            rows = np.arange(*block.rows) * stride
            cols = np.arange(*block.cols) * stride
            valid = sampling.valid_origins(read.nodata, rows - r0, cols - c0, patch=patch, margin=margin // 2)
            ii, jj = np.nonzero(valid)
            index = (block.rows[0] + ii) * n_cols + (block.cols[0] + jj)
            chosen = reservoir.candidates(index)
            pr, pc = (chosen // n_cols) * stride, (chosen % n_cols) * stride
            few = len(chosen) * (patch + 2 * margin) ** 2 < (read.bounds[2] - r0) * (read.bounds[3] - c0)
            if len(chosen) and whole is None and few:
                # few patches (later windows of a large scene): the pair of each patch and its margin only,
                # equal bit for bit to the window's (finite kernels), at a fraction of the window's cost
                tiles = [Tile(int(r), int(c), patch, patch) for r, c in zip(pr, pc, strict=True)]
                pieces = [_region_pair(read, _bounds(t, margin, grid), t, config, levels, pair) for t in tiles]
                reservoir.add(chosen, np.stack([p[0] for p in pieces]), np.stack([p[1] for p in pieces]))
            elif len(chosen):
                inputs, target = whole or _region_pair(read, read.bounds, region, config, levels, pair)
                pr, pc = pr - region.row, pc - region.col
                reservoir.add(chosen, _patches(inputs, pr, pc, patch), _patches(target, pr, pc, patch))
        report(progress, k, len(blocks), f"windows, {min(reservoir.offered, budget)} patches")
    index, arrays = reservoir.result()
    if len(index) == 0:
        raise SceneError(f"{_where(source)}no {patch}x{patch} training patch free of no-data (0 DN) in any band")
    per = max(1, (window - patch) // stride + 1)
    windows = len(np.unique((index // n_cols) // per * n_cols + (index % n_cols) // per))
    logger.info(
        "drew %d of %d valid patches (%d origins) from %d of %d windows",
        len(index),
        reservoir.offered,
        n_rows * n_cols,
        windows,
        len(blocks),
    )
    origins = np.stack([index // n_cols, index % n_cols], axis=1) * stride
    return PatchSample(arrays[0], arrays[1], scale, reservoir.offered, n_rows * n_cols, windows, len(blocks), origins)


def _patches(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size, C) patches of an (h, w, C) image at origins ``(rows[i], cols[i])``."""
    offsets = np.arange(size)
    return image[(rows[:, None] + offsets)[:, :, None], (cols[:, None] + offsets)[:, None, :]]


def _where(source: Any) -> str:
    name = getattr(source, "source", None)
    return f"{name}: " if name is not None else ""
