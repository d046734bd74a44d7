"""One scene across several workers: bands of whole tile rows, sharpened apart, stitched bit for bit.

The scene's tile plan is cut into :class:`~ssc_edge.tiling.RowBand` values, each sent as a
:class:`RowBandInput` with the rows of every input band its windows read. A worker runs the network on exactly
the windows the whole plan would (:func:`sharpen_row_band`), so on the CPU provider the stitched result equals
``Sharpener.sharpen`` of the whole scene bit for bit. Where the bands run (a loop, a process pool, Ray actors)
is the caller's choice: :func:`sharpen_in_row_bands` takes a ``run`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..bands import GSD
from ..contract import ModelContract
from ..errors import SceneError
from ..nodata import fill_margin
from ..scene import Scene
from ..tiling import RowBand, Tile, coarse_window, plan_tiles, split_row_bands, stitch_row_bands
from .sharpen import COARSE_MARGIN, Sharpener, SharpenerLike, check_scene_bands

__all__ = ["RowBandInput", "RowBandSharpener", "row_band_inputs", "sharpen_row_band", "sharpen_in_row_bands"]

#: Sharpens a sequence of row bands (anywhere) and returns their outputs in the same order.
RowBandRunner = Callable[[Sequence["RowBandInput"]], Iterable[np.ndarray]]


@dataclass(frozen=True, eq=False)
class RowBandInput:
    """Everything a worker needs to sharpen one row band of a scene (picklable, no file access).

    Attributes
    ----------
    band : RowBand
        The tiles to run, in the coordinates of the whole fine grid.
    shape : (int, int)
        ``(H, W)`` of the whole fine grid, pixels.
    fine_row : int
        Fine-grid row of the first row held for the 10 m bands (``band.window.row``, less the no-data
        fill margin, :func:`ssc_edge.nodata.fill_margin`).
    coarse_row : int
        20 m-grid row of the first row held for the 20 m bands (with the upsampling and fill margins).
    bands : mapping of str to (h, w) ndarray
        Full-width row crops of the model's input bands, DN: 10 m bands from ``fine_row``, 20 m
        bands from ``coarse_row``.
    """

    band: RowBand
    shape: tuple[int, int]
    fine_row: int
    coarse_row: int
    bands: Mapping[str, np.ndarray]


def row_band_inputs(
    bands: Mapping[str, np.ndarray], shape: Sequence[int], contract: ModelContract, *, count: int, tile: int
) -> tuple[RowBandInput, ...]:
    """Cut a scene's input bands (name -> DN array; 10 m (H, W), 20 m (H/2, W/2)) on an ``(H, W)`` fine grid
    ``shape`` into the :class:`RowBandInput` of each of ``count`` row bands (fewer when the plan of ``tile``-px
    windows with ``contract.halo`` has fewer tile rows), top to bottom; the crops are views of ``bands``.
    """
    shape = (int(shape[0]), int(shape[1]))
    coarse_shape = (shape[0] // contract.ratio, shape[1] // contract.ratio)
    margin = COARSE_MARGIN[contract.upsampling]
    parts = []
    # rows beyond the windows that the no-data fill of a window may read (ssc_edge.nodata)
    fine_fill = fill_margin(contract.halo)
    coarse_fill = fill_margin(-(-contract.halo // contract.ratio) + margin + 1)
    for band in split_row_bands(plan_tiles(shape, tile=tile, halo=contract.halo), count):
        rows = coarse_window(band.window, ratio=contract.ratio, margin=margin, coarse_shape=coarse_shape)
        fine_top, fine_bottom = max(0, band.window.row - fine_fill), band.window.row + band.window.height + fine_fill
        coarse_top, coarse_bottom = max(0, rows.row - coarse_fill), rows.row + rows.height + coarse_fill
        crops = {
            name: bands[name][fine_top:fine_bottom] if GSD[name] == 10 else bands[name][coarse_top:coarse_bottom]
            for name in contract.input_bands
        }
        parts.append(RowBandInput(band, shape, fine_top, coarse_top, crops))
    return tuple(parts)


def sharpen_row_band(sharpener: Sharpener, part: RowBandInput) -> np.ndarray:
    """Sharpen one row band: the network on each of its windows, the cores kept.

    Parameters
    ----------
    sharpener : Sharpener
        Must have the model and tile size the band was planned with.
    part : RowBandInput

    Returns
    -------
    (part.band.core.height, W, C_out) float32 ndarray
        The sharpened core rows, DN, ``contract.output_bands`` order.

    Raises
    ------
    SceneError
        A window reads outside the rows ``part`` holds (the band was planned with another tile
        size or model).
    """
    band = part.band
    out = np.empty((band.core.height, part.shape[1], sharpener.contract.channels_out), dtype=np.float32)

    def read(name: str, window: Tile) -> np.ndarray:
        array = part.bands[name]
        first = part.fine_row if GSD[name] == 10 else part.coarse_row
        if window.row < first or window.row + window.height > first + array.shape[0]:
            raise SceneError(
                f"row band {band.core.row}..{band.core.row + band.core.height} holds rows {first}.."
                f"{first + array.shape[0]} of {name}, not {window.row}..{window.row + window.height}; "
                "plan it with the sharpener's tile size and model"
            )
        return array[window.row - first : window.row - first + window.height, window.col : window.col + window.width]

    def write(core: Tile, values: np.ndarray) -> None:
        out[Tile(core.row - band.core.row, core.col, core.height, core.width).slices] = values

    sharpener.sharpen_windows(part.shape, read, write, tiles=band.tiles)
    return out


def sharpen_in_row_bands(
    scene: Scene, contract: ModelContract, *, count: int, tile: int, run: RowBandRunner
) -> np.ndarray:
    """Sharpen a scene split into row bands, each by ``run`` (on other workers), and stitch them.

    ``contract``, ``count`` and ``tile`` as :func:`row_band_inputs`, with the model and tile side of the workers'
    sharpeners. ``run(parts) -> outputs`` sharpens each :class:`RowBandInput` (with :func:`sharpen_row_band` on
    such a sharpener) and returns the outputs in order: ``lambda parts: [sharpen_row_band(s, p) for p in parts]``
    runs them here.

    Returns
    -------
    (H, W, C_out) float32 ndarray
        DN, ``contract.output_bands`` order; on the CPU provider equal to ``Sharpener.sharpen(scene)``
        bit for bit.

    Raises
    ------
    SceneError
        The model needs a band the scene lacks, or the scene is smaller than its receptive field.
    """
    check_scene_bands(scene.bands, scene.shape, contract, source=scene.source or scene.name)
    parts = row_band_inputs(scene.bands, scene.shape, contract, count=count, tile=tile)
    return stitch_row_bands(run(parts), [p.band for p in parts], scene.shape)


class RowBandSharpener(SharpenerLike):
    """:func:`sharpen_in_row_bands` as the pipeline's sharpener (:class:`~ssc_edge.runtime.sharpen.SharpenerLike`).

    The scene is sharpened in memory (``windowed`` is False: never streamed) and handed to ``on_core`` as one
    core covering the whole grid. ``contract`` (the workers' model's), ``count``, ``tile`` and ``run`` as
    :func:`sharpen_in_row_bands`; ``provider`` and ``precision`` are what the workers run on and in (reported).
    """

    windowed = False

    def __init__(self, contract: ModelContract, model_path, *, count: int, tile: int, run: RowBandRunner,
                 provider: str = "row bands", precision: str | None = None) -> None:  # fmt: skip
        self.contract, self.model_path, self.tile = contract, model_path, int(tile)
        self.provider, self.precision, self.precision_reason = provider, precision, "the workers' own"
        self._count, self._run = int(count), run

    @property
    def sharpeners(self) -> tuple[RowBandSharpener, ...]:
        return (self,)

    def sharpen(self, scene: Scene, *, progress=None, on_core=None) -> np.ndarray:
        """The stitched row bands, (H, W, C_out) float32 DN; ``on_core`` gets them as one core."""
        image = sharpen_in_row_bands(scene, self.contract, count=self._count, tile=self.tile, run=self._run)
        if on_core is not None:
            shape = (int(scene.shape[0]), int(scene.shape[1]))
            on_core(Tile(0, 0, *shape), image, lambda band, window: scene.bands[band][window.slices], shape)
        return image
