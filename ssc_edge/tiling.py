"""Overlap tiling: plan tiles with the model's halo, clip them at the scene edge, stitch their cores.

A convolutional network whose output pixel depends only on input pixels at most ``halo`` pixels
away (the contract's ``halo``) gives, on a window of the input, exactly the whole-image result
at every window pixel that is at least ``halo`` pixels from a window edge *inside* the scene. At
the scene edge the window is clipped to the scene (never padded), so the network pads it there
exactly as it pads the whole image. Each window therefore contributes its *core*: the window
less ``halo`` pixels on every side that is not a scene edge.

Every window of a plan has the same shape, so providers that compile per shape build one engine
and every window can be batched with every other. Along each axis the plan uses the *fewest*
windows of at most ``tile`` pixels whose cores can cover it (:func:`axis_windows`), all of one
size, spread evenly from edge to edge, never padded: the redundant network work (pixels run
through the network beyond the scene's own) stays small. At the default tile 512 and halo 6 a
2048 x 2048 scene runs 5 x 5 windows of 420 px (5.1 % redundant, where windows of the full 512 px
with the last one shifted back would run 25 windows and 56 % redundant), and a 10980 x 10980 tile
runs 22 x 22 windows of 511 px (4.8 %).

A plan can also be cut into :class:`RowBand` values, bands of whole tile rows
(:func:`split_row_bands`), to share one scene between workers: each worker runs the network on
exactly the windows the whole plan would, so the stitched bands (:func:`stitch_row_bands`) equal
the single-process result bit for bit.

All functions here are pure; :class:`Tile` is a frozen value like ``rasterio.windows.Window``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import OptionError, check_positive

__all__ = [
    "axis_windows",
    "Tile",
    "PlannedTile",
    "RowBand",
    "plan_tiles",
    "coarse_window",
    "stitch",
    "check_tile_size",
    "split_row_bands",
    "stitch_row_bands",
]


@dataclass(frozen=True)
class Tile:
    """A rectangle of a pixel grid: top-left ``(row, col)`` and size ``(height, width)``, pixels."""

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices selecting this tile from an (H, W[, C]) array."""
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, pixels."""
        return self.height, self.width

    def relative_to(self, outer: Tile) -> Tile:
        """This tile in the coordinates of ``outer`` (which must contain it)."""
        return Tile(self.row - outer.row, self.col - outer.col, self.height, self.width)


class PlannedTile(NamedTuple):
    """One unit of tiled work: the ``window`` fed to the network and the ``core`` kept from its output."""

    window: Tile
    core: Tile


@dataclass(frozen=True)
class RowBand:
    """Whole tile rows of a plan: what one worker sharpens when a scene is split across workers.

    Attributes
    ----------
    tiles : tuple of PlannedTile
        The planned tiles of these tile rows, row-major, in the coordinates of the whole grid.
    window : Tile
        The fine-grid rows the tiles' windows read, full width: the band's cores plus the
        model's halo above and below (except at the scene's top and bottom edges).
    core : Tile
        The fine-grid rows the tiles' cores cover, full width. The cores of consecutive bands
        of one split abut and cover the grid exactly once.
    """

    tiles: tuple[PlannedTile, ...]
    window: Tile
    core: Tile


def check_tile_size(tile: int, halo: int) -> None:
    """Raise :class:`OptionError` unless ``tile >= 2 * halo + 1`` (a core of at least one pixel)."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)):
        raise OptionError(f"tile size must be an integer number of pixels, got {tile!r}")
    if tile < 2 * halo + 1:
        raise OptionError(
            f"tile size {tile} px is too small for the model's halo of {halo} px; "
            f"use at least 2 x halo + 1 = {2 * halo + 1} (512 is a good default)"
        )


def axis_windows(n: int, tile: int, halo: int) -> tuple[int, int]:
    """The fewest equal windows of at most ``tile`` pixels that cover an axis of ``n`` pixels.

    With ``k`` windows of ``s`` pixels the cores (windows less ``halo`` on every inner side) cover
    ``k * s - 2 * halo * (k - 1)`` pixels, so ``k`` windows suffice when
    ``s = ceil((n + 2 * halo * (k - 1)) / k) <= tile``. The smallest such ``k`` (and its ``s``) is the
    plan with the least redundant network work along this axis.

    Returns
    -------
    (k, s) : (int, int)
        Window count and window size, pixels (``s == n`` when ``n <= tile``).
    """
    if n <= tile:
        return 1, n
    k = max(2, -(-n // tile))
    while True:
        size = -(-(n + 2 * halo * (k - 1)) // k)
        if size <= tile:
            return k, size
        k += 1


def _axis_spans(n: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """``(window_start, window_stop, core_start, core_stop)`` along one axis of length ``n``.

    :func:`axis_windows` gives the count and size; the window starts are spread evenly over
    ``0 .. n - size`` (consecutive starts differ by at most ``size - 2 * halo``, so neighbours overlap
    by at least ``2 * halo``), and each core boundary sits midway in the overlap, at least ``halo``
    pixels inside both windows.
    """
    k, size = axis_windows(n, tile, halo)
    if k == 1:
        return [(0, n, 0, n)]
    starts = [i * (n - size) // (k - 1) for i in range(k)]
    bounds = [0]
    for left, right in itertools.pairwise(starts):
        low, high = right + halo, left + size - halo  # the boundary must keep `halo` px inside both windows
        bounds.append((low + high) // 2)
    bounds.append(n)
    return [(start, start + size, bounds[i], bounds[i + 1]) for i, start in enumerate(starts)]


def plan_tiles(shape: Sequence[int], *, tile: int, halo: int) -> tuple[PlannedTile, ...]:
    """Plan overlapping windows whose cores cover an (H, W) grid exactly once.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the fine grid, pixels.
    tile : int
        Window side, pixels (the network's input size); at least ``2 * halo + 1``.
    halo : int
        Receptive radius of the network, pixels.

    Returns
    -------
    tuple of PlannedTile
        Row-major. Every window has one shape, at most ``(tile, tile)`` (see :func:`axis_windows`),
        and lies inside the grid; the cores tile the grid without gaps or overlap, and each core
        is at least ``halo`` pixels from its window's edges except along scene edges.

    Raises
    ------
    OptionError
        ``tile < 2 * halo + 1`` or an empty grid.
    """
    check_tile_size(tile, halo)
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise OptionError(f"cannot tile an empty grid of {height}x{width} px")
    rows, cols = _axis_spans(height, tile, halo), _axis_spans(width, tile, halo)
    return tuple(
        PlannedTile(Tile(r0, c0, r1 - r0, c1 - c0), Tile(cr0, cc0, cr1 - cr0, cc1 - cc0))
        for r0, r1, cr0, cr1 in rows
        for c0, c1, cc0, cc1 in cols
    )


def coarse_window(window: Tile, *, ratio: int, margin: int, coarse_shape: Sequence[int]) -> Tile:
    """The coarse-grid window needed to upsample ``window`` of the fine grid exactly.

    Coarse pixel ``i`` covers fine pixels ``ratio*i .. ratio*i + ratio - 1``; the result covers every
    coarse pixel under ``window`` plus ``margin`` coarse pixels on each side (the support of the
    upsampling kernel: 2 for Keys cubic), clipped to the ``(h, w)`` coarse grid ``coarse_shape``.
    """
    r0 = max(window.row // ratio - margin, 0)
    c0 = max(window.col // ratio - margin, 0)
    r1 = min(math.ceil((window.row + window.height) / ratio) + margin, int(coarse_shape[0]))
    c1 = min(math.ceil((window.col + window.width) / ratio) + margin, int(coarse_shape[1]))
    return Tile(r0, c0, r1 - r0, c1 - c0)


def stitch(
    outputs: Iterable[np.ndarray], plan: Sequence[PlannedTile], shape: Sequence[int], *, dtype=np.float32
) -> np.ndarray:
    """Assemble the cores of per-window outputs into one (H, W, C) image.

    Parameters
    ----------
    outputs : iterable of (h, w, C) ndarray
        The network output of each window of ``plan``, in plan order, window-shaped.
    plan : sequence of PlannedTile
        From :func:`plan_tiles`.
    shape : (int, int)
        ``(H, W)`` of the grid.

    Returns
    -------
    (H, W, C) ndarray of ``dtype``
    """
    out = None
    for output, (window, core) in zip(outputs, plan, strict=True):
        if output.shape[:2] != window.shape:
            raise OptionError(f"output of shape {output.shape[:2]} does not match its window {window.shape}")
        if out is None:
            out = np.empty((int(shape[0]), int(shape[1]), output.shape[2]), dtype=dtype)
        out[core.slices] = output[core.relative_to(window).slices]
    if out is None:
        raise OptionError("nothing to stitch: the tile plan is empty")
    return out


def split_row_bands(plan: Sequence[PlannedTile], count: int) -> tuple[RowBand, ...]:
    """Cut a row-major tile plan into at most ``count`` bands of whole tile rows.

    Parameters
    ----------
    plan : sequence of PlannedTile
        From :func:`plan_tiles` (row-major: the tiles of one tile row share ``window.row``).
    count : int
        Bands wanted, >= 1. A plan with fewer tile rows gives one band per tile row.

    Returns
    -------
    tuple of RowBand
        Top to bottom; tile rows are shared out as evenly as possible (band sizes differ by at
        most one tile row, the larger bands first). Together the bands hold every tile of
        ``plan`` once, in plan order.

    Raises
    ------
    OptionError
        ``count`` < 1 or an empty plan.
    """
    check_positive(count, "row bands")
    if not plan:
        raise OptionError("cannot split an empty tile plan")
    rows = [list(row) for _, row in itertools.groupby(plan, key=lambda planned: planned.window.row)]
    n = min(int(count), len(rows))
    size, extra = divmod(len(rows), n)
    bands, start = [], 0
    for k in range(n):
        stop = start + size + (k < extra)
        tiles = tuple(t for row in rows[start:stop] for t in row)
        first, last = tiles[0], tiles[-1]
        width = max(t.window.col + t.window.width for t in tiles)
        window = Tile(first.window.row, 0, last.window.row + last.window.height - first.window.row, width)
        core = Tile(first.core.row, 0, last.core.row + last.core.height - first.core.row, width)
        bands.append(RowBand(tiles, window, core))
        start = stop
    return tuple(bands)


def stitch_row_bands(
    outputs: Iterable[np.ndarray], bands: Sequence[RowBand], shape: Sequence[int], *, dtype=np.float32
) -> np.ndarray:
    """Assemble the per-band outputs of a split scene into one (H, W, C) image.

    Parameters
    ----------
    outputs : iterable of (h, W, C) ndarray
        The sharpened core rows of each band of ``bands``, in band order (``h = band.core.height``).
    bands : sequence of RowBand
        From :func:`split_row_bands`.
    shape : (int, int)
        ``(H, W)`` of the grid.

    Returns
    -------
    (H, W, C) ndarray of ``dtype``

    Raises
    ------
    OptionError
        An output whose shape is not its band's core, or bands whose cores do not cover the grid.
    """
    height, width = (int(n) for n in shape)
    out = None
    covered = 0
    for output, band in zip(outputs, bands, strict=True):
        if output.shape[:2] != band.core.shape or band.core.width != width:
            raise OptionError(f"output of shape {output.shape[:2]} does not match its band's core {band.core.shape}")
        if band.core.row != covered:
            raise OptionError(f"row band starting at row {band.core.row} does not follow the band ending at {covered}")
        if out is None:
            out = np.empty((height, width, output.shape[2]), dtype=dtype)
        out[band.core.slices] = output
        covered = band.core.row + band.core.height
    if out is None or covered != height:
        raise OptionError(f"the row bands cover {covered} of {height} rows")
    return out
