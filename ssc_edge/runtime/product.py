"""Several models on one tile plan: the 20 m and the 60 m model together make the 12-band product.

:class:`CombinedSharpener` runs each :class:`~ssc_edge.runtime.sharpen.Sharpener` on the same
windows, planned with the largest halo of the models, and hands over one core holding every
model's output bands. A core that is exact for the largest halo is exact for every smaller one, so
the combined result equals each model's own whole-image result bit for bit (CPU provider). It is a
:class:`~ssc_edge.runtime.sharpen.SharpenerLike`, so the product is streamed window by window like a
single model's.

Why a second model file rather than a second output of one model: the 60 m model is trained at
ratio 6 on another pair (DSen2 trains its 60 m network separately too), it has its own halo and
scale, the 20 m model stays exactly as before, and a scene without usable 60 m bands still gets
its 20 m model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..nodata import ValidReader, nonzero_valid
from ..progress import ProgressCallback
from ..tiling import PlannedTile, Tile, check_tile_size
from .sharpen import BandReader, CoreWriter, Sharpener, SharpenerLike, run_pipeline

__all__ = ["CombinedContract", "CombinedSharpener"]


@dataclass(frozen=True)
class CombinedContract:
    """What several models need and give together.

    Attributes
    ----------
    input_bands : tuple of str
        Every band any model reads, first-seen order.
    output_bands : tuple of str
        The models' output bands, in model order (e.g. ``B05 ... B12, B01, B09``).
    halo : int
        The largest halo, 10 m pixels.
    ratio : int
        The largest ratio (6 with a 60 m model): the 10 m size must be a multiple of it.
    """

    input_bands: tuple[str, ...]
    output_bands: tuple[str, ...]
    halo: int
    ratio: int

    @property
    def channels_out(self) -> int:
        return len(self.output_bands)


class CombinedSharpener(SharpenerLike):
    """Run several :class:`Sharpener` models on one tile plan (see the module docstring).

    Parameters
    ----------
    sharpeners : sequence of Sharpener
        Models with disjoint output bands (the 20 m model and the 60 m model); the first one's
        tile side is used.

    Raises
    ------
    OptionError
        Fewer than two models, or two models writing the same band.
    """

    def __init__(self, sharpeners: Sequence[Sharpener]) -> None:
        if len(sharpeners) < 2:
            raise OptionError("a combined sharpener needs at least two models")
        outputs = [b for s in sharpeners for b in s.contract.output_bands]
        if len(set(outputs)) != len(outputs):
            raise OptionError(f"models write the same band twice ({', '.join(outputs)})")
        self.sharpeners = tuple(sharpeners)
        self.tile = sharpeners[0].tile
        inputs = tuple(dict.fromkeys(b for s in sharpeners for b in s.contract.input_bands))
        self.contract = CombinedContract(
            inputs,
            tuple(outputs),
            max(s.contract.halo for s in sharpeners),
            max(s.contract.ratio for s in sharpeners),
        )
        check_tile_size(self.tile, self.contract.halo)

    @property
    def provider(self) -> str:
        return "+".join(dict.fromkeys(s.provider for s in self.sharpeners))

    @property
    def precision(self) -> str | None:
        """What the networks compute in (see :class:`Sharpener`): one precision, or each model's joined by
        ``+`` in model order when they differ (``bf16+fp32``: each model's gate decides for itself)."""
        return "+".join(dict.fromkeys(str(s.precision) for s in self.sharpeners))

    @property
    def precision_reason(self) -> str | None:
        """Each model's reason, named by its grid (``20 m model: ...; 60 m model: ...``)."""
        return "; ".join(f"{10 * s.contract.ratio} m model: {s.precision_reason}" for s in self.sharpeners)

    @property
    def model_path(self) -> Path:
        return self.sharpeners[0].model_path

    def check_size(self, shape: tuple[int, int], *, source: object = "scene") -> None:
        """Raise :class:`SceneError` unless every model can run on an (H, W) 10 m grid."""
        for sharpener in self.sharpeners:
            sharpener.check_size(shape, source=source)

    def sharpen_windows(
        self,
        shape: tuple[int, int],
        read_band: BandReader,
        write_core: CoreWriter,
        *,
        tiles: Sequence[PlannedTile] | None = None,
        progress: ProgressCallback | None = None,
        read_valid: ValidReader | None = None,
    ) -> int:
        """As :meth:`Sharpener.sharpen_windows`; each core carries ``contract.output_bands``.

        No-data (:mod:`ssc_edge.nodata`): each model fills its own input and marks its own output
        bands NaN where a band *it* reads is no-data, so a pixel where only a 60 m band is no-data
        keeps its sharpened 20 m bands.

        One I/O pipeline for all models (:func:`~ssc_edge.runtime.sharpen.run_pipeline`, the first model's
        ``prefetch``): each window is read once ahead of the networks (every model's input built from it)
        and its combined core written behind them, so reading and writing overlap both networks.
        """
        self.check_size(shape)
        plan = self.plan(shape) if tiles is None else tuple(tiles)
        step = max(s.batch for s in self.sharpeners)
        groups = [plan[start : start + step] for start in range(0, len(plan), step)]

        def build(group: Sequence[PlannedTile]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
            # the models share most input bands and windows (the 10 m bands, the 20 m bands with the same
            # margin): each (band, window) is read once per group
            cache: dict[tuple[str, Tile], np.ndarray] = {}
            masks: dict[tuple[str, Tile], np.ndarray] = {}

            def read_once(band: str, window: Tile) -> np.ndarray:
                if (band, window) not in cache:
                    cache[band, window] = read_band(band, window)
                return cache[band, window]

            def valid_once(band: str, window: Tile) -> np.ndarray:
                if (band, window) not in masks:  # by default the 0 DN rule on the values read once
                    masks[band, window] = (read_valid or nonzero_valid(read_once))(band, window)
                return masks[band, window]

            return [s.masked_inputs(group, read_once, shape, read_valid=valid_once) for s in self.sharpeners]

        def run(group: Sequence[PlannedTile], built: list[tuple[np.ndarray, list[np.ndarray]]]) -> list[np.ndarray]:
            parts = [s.masked_cores(group, *b) for s, b in zip(self.sharpeners, built, strict=True)]
            return [np.concatenate(cores, axis=-1) for cores in zip(*parts, strict=True)]

        run_pipeline(
            groups, build, run, write_core, prefetch=self.sharpeners[0].prefetch, progress=progress, label=self.provider
        )
        return len(plan)
