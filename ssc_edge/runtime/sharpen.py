"""Tiled sharpening with an ssc-edge ONNX model: :class:`Sharpener`.

Every preprocessing choice comes from the model's metadata (:class:`~ssc_edge.contract.ModelContract`):
the band order of the input, the normalisation ``scale``, the upsampling method of the 20 m bands,
the ``halo`` that sets the tile overlap, and the tensor layout. The scene is cut into windows
(:func:`~ssc_edge.tiling.plan_tiles`); each window's input is built from that window of
the 10 m bands and the 20 m bands around it (with the upsampling kernel's margin), so a window's
input equals the same crop of the whole-image input, and on the CPU provider the tiled result
equals whole-image inference bit for bit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..bands import COARSE_BANDS, FINE_BANDS, GSD
from ..contract import check_scene_size
from ..errors import ModelError, SceneError, SscEdgeError, check_positive
from ..nodata import ValidReader, fill_margin, mask_invalid, nonzero_valid, read_filled
from ..progress import ProgressCallback, report
from ..scene import Scene
from ..tiling import PlannedTile, Tile, check_tile_size, coarse_window, plan_tiles
from ..wald import upsample
from . import precision as gate
from .hardware import detected_flags
from .options import DEFAULT_TILE
from .providers import STATIC_SHAPE_PROVIDERS, available_providers
from .session import LoadedModel, ModelFile, open_model

__all__ = [
    "Sharpener",
    "SharpenerLike",
    "run_pipeline",
    "BandReader",
    "CoreWriter",
    "window_input",
    "upsampled_window",
    "check_scene_bands",
    "choose_precision",
    "gate_measure",
    "gate_metadata",
    "COARSE_MARGIN",
]

logger = logging.getLogger(__name__)

#: Reads one band's window: ``read(band, window)`` -> (h, w) DN array; ``window`` is on that band's grid.
BandReader = Callable[[str, Tile], np.ndarray]
#: Receives one core of the result: ``write(core, values)``, ``values`` (h, w, C_out) float32 DN.
CoreWriter = Callable[[Tile, np.ndarray], None]
#: ``on_core(core, values, read_band, shape)``: observes each sharpened core (quality accumulators).
CoreHook = Callable[[Tile, np.ndarray, BandReader, tuple[int, int]], None]

#: Coarse pixels read beyond a window on each side, per upsampling method. Keys cubic has a
#: support of 2 coarse pixels (exact); the cubic B-spline's prefilter is global but decays as
#: 0.268^n, so 32 pixels put the window's error below 1e-18 of the signal (exact in float32).
COARSE_MARGIN = {"bicubic": 2, "spline": 32}


def _is_fine(band: str) -> bool:
    return GSD[band] == 10


def upsampled_window(
    read_band: BandReader, window: Tile, fine_shape: tuple[int, int], bands, *, method: str, ratio: int = 2
) -> np.ndarray:
    """Upsample coarse ``bands`` (names, DN from ``read_band``) to one ``window`` of the ``(H, W)`` fine grid
    ``fine_shape``, reading only the pixels of their ``(H / ratio, W / ratio)`` grid around it (the margin of
    :data:`COARSE_MARGIN` for the :func:`ssc_edge.wald.upsample` ``method``).

    Returns the (h, w, len(bands)) float32 DN window: the same crop of ``upsample`` of the whole coarse image
    (bit for bit for ``"bicubic"``).
    """
    coarse_shape = (fine_shape[0] // ratio, fine_shape[1] // ratio)
    cwin = coarse_window(window, ratio=ratio, margin=COARSE_MARGIN[method], coarse_shape=coarse_shape)
    stack = np.stack([read_band(b, cwin) for b in bands], axis=-1)
    up = upsample(stack, ratio=ratio, method=method)
    r0, c0 = window.row - ratio * cwin.row, window.col - ratio * cwin.col
    return up[r0 : r0 + window.height, c0 : c0 + window.width].astype(np.float32)


def window_input(read_band: BandReader, window: Tile, fine_shape: tuple[int, int], contract) -> np.ndarray:
    """The normalised network input of one window (:func:`window_input_masked` by the 0 DN rule, without its mask)."""
    return window_input_masked(read_band, window, fine_shape, contract)[0]


def window_input_masked(
    read_band: BandReader,
    window: Tile,
    fine_shape: tuple[int, int],
    contract,
    *,
    read_valid: ValidReader | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Build the normalised network input of one window of the fine grid, no-data filled, and its validity.

    Parameters
    ----------
    read_band, window, fine_shape
        As :func:`upsampled_window` (a 20 m grid is ``(H / 2, W / 2)``, a 60 m one ``(H / 6, W / 6)``).
    contract : ModelContract
    read_valid : ValidReader, optional
        Which band pixels carry a measurement (:mod:`ssc_edge.nodata`); default: those not 0 DN.

    Returns
    -------
    inputs : (h, w, C_in) float32 ndarray
        ``contract.input_bands`` order: 20 m and 60 m bands upsampled with ``contract.upsampling``
        to the window (each by its own ratio, 2 or 6), 10 m bands as read; divided by
        ``contract.scale``. No-data pixels of each grid are first filled from the nearest valid
        pixel (:func:`ssc_edge.nodata.read_filled`), so the input equals the same crop of the
        whole-image input wherever it can reach a valid output pixel.
    valid : (h, w) bool ndarray
        True where every band the model reads is valid (a coarse band at the coarse pixel
        covering the 10 m pixel).
    """
    read_valid = read_valid if read_valid is not None else nonzero_valid(read_band)
    margin = COARSE_MARGIN[contract.upsampling]
    h, w = window.shape
    planes: dict[str, np.ndarray] = {}
    valid = np.ones((h, w), dtype=bool)
    for ratio in sorted({GSD[b] // 10 for b in contract.input_bands if not _is_fine(b)}):
        # each band by its own ratio: the 60 m model reads 20 m bands (x2) and 60 m bands (x6)
        names = [b for b in contract.input_bands if GSD[b] // 10 == ratio]
        coarse_shape = (fine_shape[0] // ratio, fine_shape[1] // ratio)
        cwin = coarse_window(window, ratio=ratio, margin=margin, coarse_shape=coarse_shape)
        reach = -(-contract.halo // ratio) + margin + 1
        stack, coarse_valid = read_filled(read_band, read_valid, names, cwin, coarse_shape, margin=fill_margin(reach))
        r0, c0 = window.row - ratio * cwin.row, window.col - ratio * cwin.col
        up = upsample(stack, ratio=ratio, method=contract.upsampling)[r0 : r0 + h, c0 : c0 + w].astype(np.float32)
        planes.update({b: up[..., i] for i, b in enumerate(names)})
        if not coarse_valid.all():
            valid &= np.repeat(np.repeat(coarse_valid, ratio, axis=0), ratio, axis=1)[r0 : r0 + h, c0 : c0 + w]
    names = [b for b in contract.input_bands if _is_fine(b)]
    if names:
        stack, fine_valid = read_filled(
            read_band, read_valid, names, window, fine_shape, margin=fill_margin(contract.halo)
        )
        planes.update({b: stack[..., i] for i, b in enumerate(names)})
        valid &= fine_valid
    stacked = np.stack([planes[b] for b in contract.input_bands], axis=-1)
    return stacked / np.float32(contract.scale), valid


def check_scene_bands(bands: Mapping[str, Any], shape: tuple[int, int], contract, *, source: object = "scene") -> None:
    """Raise :class:`SceneError` if ``bands`` (name -> DN array) lack a band of ``contract.input_bands`` or the
    ``(H, W)`` fine grid ``shape`` is smaller than the receptive field; ``source`` (the file) is named in it."""
    missing = [b for b in contract.input_bands if b not in bands]
    if missing:
        raise SceneError(f"{source}: the model needs band(s) {', '.join(missing)}, which the scene lacks")
    check_scene_size(shape, contract, source=source)


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise SceneError(f"{what} has {bad} non-finite values (NaN or inf); fill or mask them before sharpening")


def run_pipeline(
    groups: Sequence[Sequence[PlannedTile]],
    build: Callable[[Sequence[PlannedTile]], Any],
    run: Callable[[Sequence[PlannedTile], Any], list[np.ndarray]],
    write_core: CoreWriter,
    *,
    prefetch: int = 2,
    progress: ProgressCallback | None = None,
    label: str = "",
) -> None:
    """The tiled engine's loop: read ahead and write behind in one I/O thread, the network in this one.

    Parameters
    ----------
    groups : sequence of sequences of PlannedTile
        Windows in plan order, one group per network call.
    build : callable
        ``build(group) -> inputs``: reads the group's windows (the I/O thread when ``prefetch`` > 0).
    run : callable
        ``run(group, inputs) -> cores``: the network(s), one (h, w, C_out) float32 core per window (this thread).
    write_core : CoreWriter
        Called once per window, in plan order (the I/O thread when ``prefetch`` > 0).
    prefetch : int
        Groups read ahead and written behind at most (0: read, run and write one after the other here). ``build``
        and ``write_core`` run in one thread, in plan order, so a source or writer need not be thread-safe.
    """
    timings = {"read": 0.0, "network": 0.0, "write": 0.0, "wall": 0.0}
    started = time.perf_counter()
    total = sum(len(g) for g in groups)

    def timed_build(group: Sequence[PlannedTile]) -> Any:
        clock = time.perf_counter()
        inputs = build(group)
        timings["read"] += time.perf_counter() - clock
        return inputs

    def write(group: Sequence[PlannedTile], cores: list[np.ndarray]) -> None:
        clock = time.perf_counter()
        for planned, core in zip(group, cores, strict=True):
            write_core(planned.core, core)
        timings["write"] += time.perf_counter() - clock

    depth = max(int(prefetch), 0)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssc-edge-io") as io:
        pending: deque = deque()
        ahead = deque(io.submit(timed_build, g) for g in groups[:depth])
        done = 0
        for k, group in enumerate(groups):
            inputs = ahead.popleft().result() if depth else timed_build(group)
            if depth and k + depth < len(groups):
                ahead.append(io.submit(timed_build, groups[k + depth]))
            clock = time.perf_counter()
            cores = run(group, inputs)
            timings["network"] += time.perf_counter() - clock
            if depth:
                pending.append(io.submit(write, group, cores))
                while pending and (pending[0].done() or len(pending) > depth):  # bounded memory
                    pending.popleft().result()  # raises a write error here
            else:
                write(group, cores)
            done += len(group)
            report(progress, done, total, label)
        while pending:
            pending.popleft().result()
    timings["wall"] = time.perf_counter() - started
    logger.debug("%d tiles in %.1f s: network %.1f s, read and input %.1f s, write %.1f s (overlapped with the "
                 "network)", total, timings["wall"], timings["network"], timings["read"], timings["write"])  # fmt: skip


class SharpenerLike:
    """What the pipeline (:func:`~ssc_edge.runtime.infer.sharpen_scene`) needs of a sharpener: one model's
    :class:`Sharpener`, several models on one plan (:class:`~ssc_edge.runtime.product.CombinedSharpener`) or
    a scene shared out in row bands (:class:`~ssc_edge.runtime.split.RowBandSharpener`). The tile plan, the
    size check and the in-memory run are the same for all of them and live here."""

    #: Bands read and written, halo and ratio (a ModelContract, or the models' together).
    contract: Any
    tile: int
    provider: str
    precision: str | None
    precision_reason: str | None
    #: Each model's own :class:`Sharpener`, the 20 m model first.
    sharpeners: tuple[Sharpener, ...]
    #: False for a sharpener that needs the whole scene in memory (row bands shared out between workers).
    windowed = True

    def check_size(self, shape: tuple[int, int], *, source: object = "scene") -> None:
        """Raise :class:`SceneError` if an (H, W) fine grid is smaller than the receptive field."""
        check_scene_size(shape, self.contract, source=source)

    def plan(self, shape: tuple[int, int]) -> tuple[PlannedTile, ...]:
        """The tile plan for an (H, W) fine grid with the contract's halo (:func:`~ssc_edge.tiling.plan_tiles`)."""
        return plan_tiles(shape, tile=self.tile, halo=self.contract.halo)

    def sharpen_windows(self, shape: tuple[int, int], read_band: BandReader, write_core: CoreWriter, *,
                        tiles: Sequence[PlannedTile] | None = None, progress: ProgressCallback | None = None,
                        read_valid: ValidReader | None = None) -> int:  # fmt: skip
        """See :meth:`Sharpener.sharpen_windows`."""
        raise NotImplementedError(f"{type(self).__name__} sharpens whole scenes only (sharpen)")

    def sharpen(
        self, scene: Scene, *, progress: ProgressCallback | None = None, on_core: CoreHook | None = None
    ) -> np.ndarray:
        """Sharpen a :class:`~ssc_edge.scene.Scene` held in memory.

        ``on_core(core, values, read_band, shape)``, if given, also receives every core as it is
        written, with the band reader and the (H, W) grid (e.g. a :class:`ssc_edge.quality.RowAssembler`).

        Returns
        -------
        (H, W, C_out) float32 ndarray
            The sharpened bands in ``contract.output_bands`` order on the scene's fine grid, DN.
        """
        return sharpen_in_memory(self, scene.bands, scene.shape, progress=progress, on_core=on_core,
                                 source=scene.source or scene.name)  # fmt: skip


class Sharpener(SharpenerLike):
    """Sharpen Sentinel-2 20 m bands to 10 m with an ssc-edge ONNX model, tile by tile.

    Parameters
    ----------
    model : Path or ModelFile
        ONNX model carrying the ssc-edge contract in its metadata; a path is read once
        (:func:`~ssc_edge.runtime.session.open_model`), a :class:`~ssc_edge.runtime.session.ModelFile` shares
        its bytes and sessions with every sharpener built from it.
    provider, threads, tile, batch, prefetch, precision
        As :class:`~ssc_edge.runtime.options.RunOptions` (``precision`` None, the default: the model as stored;
        ``auto``: bf16 where it is native and this model's bf16 loss is within 0.1 dB, else fp32). Each window
        keeps a core of ``tile - 2 * halo`` pixels; a batch of 1 keeps memory lowest on the CPU.
    gate_scene : Scene or callable, optional
        For ``auto``: the scene to be sharpened (or a function returning it, called only if needed), on
        whose Wald pair the bf16 loss is measured once and cached when neither the model's metadata nor the
        cache has it. Without it an unknown loss means fp32.
    **session_options
        Passed to :func:`~ssc_edge.runtime.providers.make_session` (``fp16``, ``cache_dir``,
        ``optimization``, ``memory_pattern``: off by default here, which nearly halves peak memory).

    Attributes
    ----------
    provider : str
        Short name of the provider that runs the model.
    precision : str
        What the network computes in (``fp32``, ``bf16``, ``fp16``, ``int8``).
    precision_reason : str
        Why (``auto``'s decision, or ``"asked for"``).
    contract : ModelContract
    last_skipped : int
        Windows of the last :meth:`sharpen_windows` whose core was entirely no-data: written as
        no-data without running the network.

    Raises
    ------
    ModelError, ProviderError, OptionError
        Unusable model, unavailable provider, tile too small for the halo or batch < 1.

    Examples
    --------
    >>> sharpener = Sharpener("models/demo.onnx", provider="cpu")  # doctest: +SKIP
    >>> sharpened = sharpener.sharpen(scene)  # (H, W, 6) float32 DN, B05 B06 B07 B8A B11 B12
    """

    def __init__(
        self,
        model: Path | ModelFile,
        *,
        provider: str = "auto",
        threads: int | None = None,
        tile: int = DEFAULT_TILE,
        batch: int = 1,
        prefetch: int = 2,
        precision: str | None = None,
        gate_scene: Scene | Callable[[], Scene | None] | None = None,
        **session_options: Any,
    ) -> None:
        check_positive(batch, "batch")
        model = model if isinstance(model, ModelFile) else open_model(model)
        check_tile_size(tile, model.contract.halo)
        session_options.setdefault("memory_pattern", False)  # halves peak memory on the CPU, same speed
        choice = choose_precision(model, precision, provider=provider, threads=threads, tile=tile,
                                  gate_scene=gate_scene, **session_options)  # fmt: skip
        self._model = model.load(provider=choice.provider, threads=threads, precision=choice.precision,
                                 **session_options)  # fmt: skip
        self.precision_reason = choice.reason
        self.tile = int(tile)
        self.batch = int(batch)
        self.prefetch = int(prefetch)
        self.last_skipped = 0
        self._threads = threads
        self._session_options = session_options

    @property
    def provider(self) -> str:
        return self._model.provider

    @property
    def precision(self) -> str:
        return self._model.precision

    @property
    def contract(self):
        return self._model.contract

    @property
    def model_path(self) -> Path:
        return self._model.path

    @property
    def sharpeners(self) -> tuple[Sharpener, ...]:
        """``(self,)``: this one model (see :class:`SharpenerLike`)."""
        return (self,)

    @property
    def model(self) -> ModelFile:
        """The model file, read once; its sessions are shared by every sharpener built from it."""
        return self._model.model

    def _model_for(self, shape: tuple[int, int, int]) -> LoadedModel:
        """The session for one input shape: the shared dynamic one, or a static one for providers that want it."""
        if self.provider not in STATIC_SHAPE_PROVIDERS:
            return self._model
        (n, h, w), c = shape, self.contract.channels_in
        layout = (n, h, w, c) if self.contract.layout == "NHWC" else (n, c, h, w)
        return self.model.load(provider=self.provider, threads=self._threads, precision=self.precision,
                               input_shape=layout, dimension_names={"batch": n, "height": h, "width": w},
                               **self._session_options)  # fmt: skip

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
        """The tiled engine: read each window, run the network in batches, hand over each core.

        Parameters
        ----------
        shape : (int, int)
            ``(H, W)`` of the fine grid, pixels.
        read_band : BandReader
            Source of band windows, DN (fine bands on the fine grid, 20 m bands on theirs).
        write_core : CoreWriter
            Called once per tile, in row-major order, with the core's (h, w, C_out) float32 DN.
        tiles : sequence of PlannedTile, optional
            Run only these tiles of :meth:`plan` (a :class:`~ssc_edge.tiling.RowBand`'s
            when a scene is split across workers); default: the whole plan.
        progress : callable, optional
            ``progress(done, total, message)`` after every batch of tiles.
        read_valid : ValidReader, optional
            Which band pixels carry a measurement (a source's ``valid``); default: those not 0 DN.
            No-data input is filled before the network and no-data output pixels are NaN
            (:mod:`ssc_edge.nodata`).

        Returns
        -------
        int
            Number of tiles.
        """
        self.check_size(shape)
        plan = self.plan(shape) if tiles is None else tuple(tiles)
        groups = [plan[start : start + self.batch] for start in range(0, len(plan), self.batch)]
        self.last_skipped = 0
        run_pipeline(
            groups,
            lambda group: self.masked_inputs(group, read_band, shape, read_valid=read_valid),
            lambda group, built: self.masked_cores(group, *built),
            write_core,
            prefetch=self.prefetch,
            progress=progress,
            label=self.provider,
        )
        if self.last_skipped:
            logger.debug("%d of %d windows entirely no-data: not read, network not run", self.last_skipped, len(plan))
        return len(plan)

    def masked_inputs(
        self,
        group: Sequence[PlannedTile],
        read_band: BandReader,
        shape: tuple[int, int],
        *,
        read_valid: ValidReader | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The (n, h, w, C_in) inputs of a group (no-data filled) and each window's (h, w) validity
        (:func:`window_input_masked`)."""
        read_valid = read_valid if read_valid is not None else nonzero_valid(read_band)
        built = [
            self._no_data_window(p)
            if self._core_is_no_data(p, read_valid)
            else window_input_masked(read_band, p.window, shape, self.contract, read_valid=read_valid)
            for p in group
        ]
        return np.stack([x for x, _ in built]), [valid for _, valid in built]

    def _core_is_no_data(self, planned: PlannedTile, read_valid: ValidReader) -> bool:
        """True when the first 10 m input band has no valid pixel in the window's core: every output band is then
        no-data there (a pixel is valid only where every input band is), so the window is neither read nor run.
        One band's read of the core decides (swath-edge and crop no-data is alike in every band); models without a
        10 m input band always read the window."""
        fine = [b for b in self.contract.input_bands if _is_fine(b)]
        return bool(fine) and not np.any(read_valid(fine[0], planned.core))

    def _no_data_window(self, planned: PlannedTile) -> tuple[np.ndarray, np.ndarray]:
        """The placeholder input (zeros, never run) and all-False validity of a no-data window."""
        h, w = planned.window.shape
        return np.zeros((h, w, self.contract.channels_in), dtype=np.float32), np.zeros((h, w), dtype=bool)

    def masked_cores(
        self, group: Sequence[PlannedTile], inputs: np.ndarray, valids: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """:meth:`network_cores`, with NaN (the float32 nodata) at core pixels that are not valid; a core without
        a valid pixel is all NaN without running the network, and counted in :attr:`last_skipped`."""
        core_valid = [valid[p.core.relative_to(p.window).slices] for p, valid in zip(group, valids, strict=True)]
        live = [i for i, valid in enumerate(core_valid) if valid.any()]
        if len(live) == len(group):
            ran = self.network_cores(group, inputs)
        else:
            ran = self.network_cores([group[i] for i in live], inputs[live]) if live else []
            self.last_skipped += len(group) - len(live)
        by_index = dict(zip(live, ran, strict=True))
        return [
            mask_invalid(by_index[i], valid)
            if i in by_index
            else np.full((*p.core.shape, self.contract.channels_out), np.nan, dtype=np.float32)
            for i, (p, valid) in enumerate(zip(group, core_valid, strict=True))
        ]

    def network_cores(self, group: Sequence[PlannedTile], inputs: np.ndarray) -> list[np.ndarray]:
        """Run the network on the (n, h, w, C_in) ``inputs`` of ``group``, ``batch`` windows at a time.

        Returns each window's core, (h, w, C_out) float32 DN, in ``group`` order.

        Raises
        ------
        ModelError
            The model produced a non-finite value in a core.
        """
        scale = np.float32(self.contract.scale)
        cores = []
        for start in range(0, len(group), self.batch):
            chunk, x = group[start : start + self.batch], inputs[start : start + self.batch]
            n = x.shape[0]
            if self.provider in STATIC_SHAPE_PROVIDERS and n < self.batch:  # one shape: repeat the last window
                x = np.concatenate([x, np.repeat(x[-1:], self.batch - n, axis=0)])
            outputs = self._model_for(x.shape[:3]).run(x)[:n]
            for planned, output in zip(chunk, outputs, strict=True):
                core = output[planned.core.relative_to(planned.window).slices] * scale
                if not np.all(np.isfinite(core)):
                    raise ModelError(f"{self.model_path}: the model produced non-finite values in tile {planned.core}")
                cores.append(core)
        return cores

    def sharpen_array(
        self, fine: np.ndarray, coarse: np.ndarray, *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Sharpen arrays of the standard bands.

        Parameters
        ----------
        fine : (H, W, 4) ndarray
            10 m bands ``B02 B03 B04 B08``, DN.
        coarse : (H/2, W/2, 6) ndarray
            20 m bands ``B05 B06 B07 B8A B11 B12``, DN.
        progress : callable, optional

        Returns
        -------
        (H, W, C_out) float32 ndarray
            The sharpened bands in ``contract.output_bands`` order (``B05 ... B12``), DN.

        Raises
        ------
        SceneError
            Wrong shapes, NaN or inf in the input, a scene smaller than the receptive field, or a
            model that needs bands other than these ten.
        """
        fine, coarse = np.asarray(fine), np.asarray(coarse)
        if fine.ndim != 3 or fine.shape[2] != len(FINE_BANDS):
            raise SceneError(f"fine must be (H, W, {len(FINE_BANDS)}) ({' '.join(FINE_BANDS)}), got {fine.shape}")
        if coarse.ndim != 3 or coarse.shape[2] != len(COARSE_BANDS):
            raise SceneError(
                f"coarse must be (H/2, W/2, {len(COARSE_BANDS)}) ({' '.join(COARSE_BANDS)}), got {coarse.shape}"
            )
        if fine.shape[:2] != (2 * coarse.shape[0], 2 * coarse.shape[1]):
            raise SceneError(
                f"20 m bands are {coarse.shape[0]}x{coarse.shape[1]}, not half the 10 m size "
                f"{fine.shape[0]}x{fine.shape[1]}"
            )
        _check_finite(fine, "10 m input")
        _check_finite(coarse, "20 m input")
        bands = {b: fine[..., i] for i, b in enumerate(FINE_BANDS)}
        bands.update({b: coarse[..., i] for i, b in enumerate(COARSE_BANDS)})
        return sharpen_in_memory(self, bands, fine.shape[:2], progress=progress, source="input")


def sharpen_in_memory(
    sharpener: SharpenerLike,
    bands: Mapping[str, np.ndarray],
    shape: tuple[int, int],
    *,
    progress: ProgressCallback | None = None,
    on_core: CoreHook | None = None,
    source: object = "scene",
) -> np.ndarray:
    """Run a sharpener's windows over whole in-memory bands into one array, once every model's bands and size
    are checked (:func:`check_scene_bands`; ``source`` is named in the errors).

    Returns the (H, W, C_out) float32 DN image in ``sharpener.contract.output_bands`` order; ``on_core``, if
    given, also receives every core as it is written, with the band reader and the grid.
    """
    shape = (int(shape[0]), int(shape[1]))
    for model in sharpener.sharpeners:
        check_scene_bands(bands, shape, model.contract, source=source)
    out = np.empty((*shape, sharpener.contract.channels_out), dtype=np.float32)

    def read(band: str, window: Tile) -> np.ndarray:
        return bands[band][window.slices]

    def write(core: Tile, values: np.ndarray) -> None:
        out[core.slices] = values
        if on_core is not None:
            on_core(core, values, read, shape)

    sharpener.sharpen_windows(shape, read, write, progress=progress)
    return out


def choose_precision(
    model: ModelFile,
    requested: str | None,
    *,
    provider: str = "auto",
    threads: int | None = None,
    tile: int = DEFAULT_TILE,
    gate_scene: Scene | Callable[[], Scene | None] | None = None,
    **session_options: Any,
) -> gate.Choice:
    """Resolve ``--precision`` for one model before its :class:`Sharpener` is built (:func:`.precision.choose`).

    None keeps the model's own precision. For ``auto`` an unknown bf16 loss is measured on ``gate_scene``'s
    Wald pair with sessions of ``model`` (:meth:`ModelFile.load`), which the sharpener built next reuses.
    """
    if requested in (None, "fp32", "fp16", "int8"):
        return gate.Choice(requested, provider, "asked for" if requested else "the model's own precision")

    def verdict_for(precision: str, where: str) -> gate.Verdict | None:
        measure = gate_measure(model, precision, where, tile=tile, threads=threads, **session_options)
        return gate.find_verdict(model, precision, where, measure=measure, scene=gate_scene)

    choice = gate.choose(requested, model_precision=model.contract.precision,
                         model_loss_db=model.contract.quality_loss_db, provider=provider,
                         available=available_providers(), openvino=gate.openvino_runs(), flags=detected_flags(),
                         verdict_for=verdict_for)  # fmt: skip
    logger.debug("%s: precision %s: %s", model.path, choice.precision, choice.reason)
    return choice


def gate_measure(
    model: ModelFile,
    precision: str,
    provider: str,
    *,
    tile: int = DEFAULT_TILE,
    threads: int | None = None,
    **session_options: Any,
) -> gate.GateMeasure:
    """The gate's measurement of ``precision`` on ``provider`` (:data:`~.precision.GateMeasure`): the model tiled
    as production runs it, in fp32 on the CPU and in ``precision``, with sessions ``model`` keeps."""

    def run(precision: str, where: str) -> Callable[[Scene], np.ndarray]:
        return Sharpener(model, provider=where, precision=precision, tile=tile, threads=threads,
                         **session_options).sharpen  # fmt: skip

    return lambda pair, reference: gate.gate_loss(run("fp32", "cpu"), run(precision, provider), pair, reference)


def gate_metadata(model_path: Path, scene: Scene, *, flags: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The gate of every reduced precision this machine runs natively, measured on ``scene``, for the metadata.

    ``scene`` is the held-out pair: a scene with a reference (an RR file), else its Wald pair one scale
    down is used (:func:`~.precision.wald_gate_pair`). Returns ``{"bf16/openvino": {"loss_db", "target",
    "hardware"}}`` (empty when the machine runs no reduced precision natively, or on ``flags``: CPU flags,
    default this CPU's); the exporter stores it under :data:`~ssc_edge.runtime.session.GATE_KEY`.
    """
    flags = detected_flags() if flags is None else frozenset(flags)
    where, why = gate.bf16_provider("auto", available_providers(), openvino=gate.openvino_runs(), flags=flags)
    if not where:
        logger.info("precision gate not measured at export: %s", why)
        return {}
    model = open_model(model_path)
    try:
        if scene.reference is not None and model.contract.ratio == 2:  # an RR file's reference: the 20 m bands
            (pair, reference), target = (gate.central_crop(scene), None), "reference"
        else:
            (pair, reference), target = gate.wald_gate_pair(scene, model.contract), "wald-reduced-scale"
        loss = round(gate_measure(model, "bf16", where)(pair, reference), 4)
    except SscEdgeError as exc:  # never lose a finished fit to the gate: infer measures it later
        logger.warning("precision gate not measured at export: %s", exc)
        return {}
    return {f"bf16/{where}": {"loss_db": loss, "target": target, "hardware": gate.hardware_key(where)}}
