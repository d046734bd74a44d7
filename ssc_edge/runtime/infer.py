"""The pipeline: models read once, a scene opened once, one sharpener, one product (``infer`` and ``batch``).

:func:`open_models` reads each model once and checks it is in its place; :func:`build_sharpener` chooses each
model's precision (measuring on the opened scene if it must) and builds the sharpener; :func:`sharpen_scene`
runs it on the opened scene into the product: streamed window by window for rasters written to a GeoTIFF
(:mod:`.stream`), in memory otherwise (:func:`ssc_edge.io.write_result`), with the same numbers.
:func:`sharpen_file` is ``ssc-edge infer``: all three, inside the output guard, and a quicklook.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bands import COARSE_BANDS, FINE_BANDS
from ..errors import ModelError, OptionError
from ..progress import ProgressCallback
from .options import OutputOptions, RunOptions
from .session import ModelFile
from .sharpen import Sharpener, SharpenerLike, check_scene_bands, upsampled_window
from .stream import output_band_names

if TYPE_CHECKING:
    from ..io.sources import BandSource

__all__ = [
    "DEMO_MODEL_NAME",
    "InferResult",
    "build_sharpener",
    "default_model_path",
    "open_models",
    "sharpen_file",
    "sharpen_scene",
]

logger = logging.getLogger(__name__)

#: File name of the shipped demo model.
DEMO_MODEL_NAME = "demo.onnx"
#: The options of a run and of its output when none are given.
DEFAULT_RUN, DEFAULT_OUTPUT = RunOptions(), OutputOptions()


def default_model_path() -> Path:
    """The shipped demo model.

    Looked up as package data first (``ssc_edge/models/demo.onnx``, for wheels that bundle it),
    then in the source checkout's ``models/`` folder beside the package (editable installs, CI).

    Raises
    ------
    ModelError
        If neither exists.
    """
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "models" / DEMO_MODEL_NAME, package.parent / "models" / DEMO_MODEL_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"no MODEL given and the shipped demo model is missing (looked for {candidates[1]}); "
        "pass MODEL.onnx or make one with ssc-edge fit-and-export"
    )


@dataclass(frozen=True)
class InferResult:
    """What :func:`sharpen_file` did.

    Attributes
    ----------
    output : Path
    provider : str
        Short name of the execution provider that ran the model.
    shape : (int, int)
        ``(H, W)`` of the product, 10 m pixels.
    band_names : tuple of str
    tiles : int
    seconds : float
        Wall time of reading, sharpening and writing, s.
    streamed : bool
        True when the scene was streamed window by window.
    quicklook : Path or None
    quality : dict or None
        When the scene carries a reference (an RR file, the synthetic demo scene): mean SRE (dB)
        and SAM (degrees) of the sharpened bands and of bicubic upsampling against it, as
        ``{"SSC-CNN": {"mean_sre": ..., "sam": ...}, "bicubic": {...}}``. None otherwise.
    full_resolution : FullResolutionQuality or None
        The no-reference indexes of the product (:mod:`ssc_edge.quality`), computed window by
        window as it is written, with the model's degradation; None for scenes smaller than the
        32-px windows or models whose outputs are not the six 20 m bands.
    cog_seconds : float or None
        Wall time of the Cloud-Optimized GeoTIFF step of a streamed ``.tif`` (part of ``seconds``), s;
        None for other outputs, ``cog=False`` and in-memory scenes.
    """

    output: Path
    provider: str
    shape: tuple[int, int]
    band_names: tuple[str, ...]
    tiles: int
    seconds: float
    streamed: bool
    quicklook: Path | None = None
    quality: dict | None = None
    full_resolution: Any = None
    precision: str = "fp32"
    precision_reason: str = ""
    cog_seconds: float | None = None


def _reference_quality(scene_value, sharpened: np.ndarray, contract) -> dict | None:
    """Mean SRE and SAM of the result and of bicubic against the scene's reference, if it has one."""
    if scene_value.reference is None or tuple(contract.output_bands) != COARSE_BANDS:
        return None
    from ..evaluation import bicubic_baseline
    from ..metrics import signal_to_reconstruction_error, spectral_angle_mapper
    from ..nodata import scene_valid, valid_pixels

    quality = {}
    valid = scene_valid(scene_value) & valid_pixels(sharpened)  # both scored on the same valid pixels
    for name, estimate in (("SSC-CNN", sharpened), ("bicubic", bicubic_baseline(scene_value))):
        sre = signal_to_reconstruction_error(scene_value.reference, estimate, valid=valid)
        quality[name] = {
            "mean_sre": float(np.mean(sre)),
            "sam": spectral_angle_mapper(scene_value.reference, estimate, valid=valid),
        }
    return quality


def _check_outputs(output: Path, quicklook: Path | None) -> None:
    """The output's format and the quicklook's; the files themselves are the output guard's."""
    from ..io.results import RESULT_SUFFIXES
    from .quicklook import check_pillow

    if output.suffix.lower() not in RESULT_SUFFIXES:
        raise OptionError(
            f"{output}: unsupported output format {output.suffix or '(no suffix)'!r}; use {', '.join(RESULT_SUFFIXES)}"
        )
    if quicklook is not None:
        if quicklook.suffix.lower() != ".png":
            raise OptionError(f"{quicklook}: the quicklook is a PNG; name it .png")
        check_pillow()


def scene_mismatch(contract, source: BandSource, *, model: object = "the model") -> str | None:
    """The one-line warning for a model (``contract``, named ``model``) meeting an opened scene (``source``) it was
    not fitted on, naming the scene it was fitted on and the command that fits one for this one; None when the
    scene's :attr:`~ssc_edge.io.sources.BandSource.identity` (hashed only then) is the model's ``scene_sha256``, or
    the model records no scene. A model may serve neighbouring dates of one tile: a warning, never an error.
    """
    if not (contract.scene_sha256 or contract.scene_name):
        return None
    if contract.scene_sha256 and contract.scene_sha256 == source.identity:  # the scene's files hashed only here
        return None
    scene = source.source
    fitted = contract.scene_name or "an unnamed scene"
    if contract.scene_sha256:
        fitted += f" (scene sha256 {contract.scene_sha256[:12]}...)"
    return (
        f"warning: {model} was fitted on {fitted}, not on {scene}; its quality here is unknown "
        f"(fit one for this scene: ssc-edge fit-and-export {shlex.quote(str(scene))} -o MODEL.onnx)"
    )


def build_sharpener(models: Sequence[ModelFile], run: RunOptions, source: BandSource | None = None) -> SharpenerLike:
    """The sharpener of one model, or of a 20 m and a 60 m model on one plan, each in its chosen precision.

    Parameters
    ----------
    models : sequence of ModelFile
        The 20 m model, then optionally the 60 m model (``NAME_60m.onnx``), each read once
        (:func:`~ssc_edge.runtime.session.open_model`) and checked to be in its place.
    run : RunOptions
    source : BandSource, optional
        The opened scene: ``--precision auto`` measures an unknown bf16 loss on the Wald pair of its centre
        (only then is the crop read; the 60 m model's read with B01 and B09). Sessions stay with the models.

    Returns
    -------
    Sharpener or CombinedSharpener
    """
    from .precision import GATE_SIZE

    sharpeners = []
    for model in models:
        with_60m = model.contract.ratio == 6
        gate_scene = None if source is None else (lambda w=with_60m: source.crop(2 * GATE_SIZE, with_60m=w))
        sharpeners.append(Sharpener(model, gate_scene=gate_scene, **run.sharpener_options()))
    if len(sharpeners) == 1:
        return sharpeners[0]
    from .product import CombinedSharpener

    return CombinedSharpener(sharpeners)


def open_models(model: Path | None, model_60m: Path | None = None) -> tuple[ModelFile, ...]:
    """Read the 20 m model (None: the shipped demo model) and the optional 60 m model once; each in its place.

    Raises
    ------
    ModelError
        As :func:`~ssc_edge.runtime.session.open_model`; a 60 m model given as MODEL or a 20 m one as
        ``--model-60m`` (:func:`~ssc_edge.runtime.session.check_model_kind`).
    """
    from .session import check_model_kind, open_model

    models = [open_model(default_model_path() if model is None else Path(model))]
    if model_60m is not None:
        models.append(open_model(Path(model_60m)))
    for one, ratio in zip(models, (2, 6), strict=False):
        check_model_kind(one.contract, ratio=ratio, source=one.path)
    return tuple(models)


def sharpen_scene(
    sharpener: SharpenerLike,
    source: BandSource,
    output: Path,
    *,
    out: OutputOptions = DEFAULT_OUTPUT,
    progress: ProgressCallback | None = None,
    warn: Callable[[str], None] | None = None,
) -> InferResult:
    """The pipeline ``infer`` and ``batch`` share: one opened scene through one sharpener into one product.

    A scene read by window (rasters, SAFE) into a ``.tif`` is streamed
    (:func:`~ssc_edge.runtime.stream.sharpen_stream`); every other combination is sharpened in memory and
    written with :func:`ssc_edge.io.write_result`. Both give the same numbers. The output must already be
    guarded (:func:`ssc_edge.io.output.output_guard`).

    Parameters
    ----------
    sharpener : SharpenerLike
        :func:`build_sharpener`'s.
    source : BandSource
        The scene, opened once (:func:`ssc_edge.io.sources.open_band_source`); left open.
    output : Path
        ``.tif``, ``.npz`` or ``.mat``.
    out : OutputOptions
    progress : callable, optional
        ``progress(done, total, message)`` per batch of tiles, then the COG step as one step.
    warn : callable, optional
        Receives the warning line of each model fitted on another scene, once the scene passed its checks
        and before the first window runs (default: logged).

    Returns
    -------
    InferResult
        With the no-reference indexes of the 20 m model's bands (``out.quality``) and, for a scene with a
        reference, the reference scores; no quicklook.
    """
    from ..io.sources import streams

    start = time.perf_counter()
    contract = sharpener.contract
    names = output_band_names(contract.output_bands, with_fine=out.with_fine)
    hook, on_core = _quality_hook(sharpener) if out.quality else (None, None)

    def warn_if_another_scene(*_: object) -> None:
        """Once the scene passed its checks: the one warning line per model fitted on another scene."""
        if source.source is not None:
            for one in sharpener.sharpeners:
                warning = scene_mismatch(one.contract, source, model=one.model_path)
                if warning is not None:
                    (warn or logger.warning)(warning)

    quality, cog_seconds, streamed = None, None, sharpener.windowed and streams(source, output)
    if streamed:
        from .stream import sharpen_stream

        result = sharpen_stream(sharpener, source, output, dtype=out.dtype, with_fine=out.with_fine,
                                force=out.force, progress=progress, on_checked=warn_if_another_scene,
                                on_core=on_core, cog=out.cog)  # fmt: skip
        shape, tiles, cog_seconds = result.shape, result.tiles, result.cog_seconds
    else:
        from ..io import write_result

        scene = source.to_scene()
        check_scene_bands(scene.bands, scene.shape, contract, source=source.where)
        warn_if_another_scene()
        sharpened = sharpener.sharpen(scene, progress=progress, on_core=on_core)
        shape, tiles = scene.shape, len(sharpener.plan(scene.shape))
        product = memory_product(sharpened, contract.output_bands, names, scene)
        write_result(output, product, band_names=names, georef=scene.georef, dtype=out.dtype, force=out.force,
                     cog=out.cog)  # fmt: skip
        quality = _reference_quality(scene, sharpened[..., : len(COARSE_BANDS)], sharpener.sharpeners[0].contract)
    return InferResult(output, sharpener.provider, tuple(shape), names, tiles, time.perf_counter() - start,
                       streamed=streamed, quality=quality, full_resolution=hook.result() if hook is not None else None,
                       precision=sharpener.precision, precision_reason=sharpener.precision_reason,
                       cog_seconds=cog_seconds)  # fmt: skip


def sharpen_file(
    model: Path | None,
    scene: Path | None,
    output: Path,
    *,
    run: RunOptions = DEFAULT_RUN,
    out: OutputOptions = DEFAULT_OUTPUT,
    model_60m: Path | None = None,
    quicklook: Path | None = None,
    demo_size: int = 256,
    progress: ProgressCallback | None = None,
) -> InferResult:
    """``ssc-edge infer``: sharpen a scene file with an ONNX model and write the product (and a quicklook PNG).

    Parameters
    ----------
    model : Path or None
        ONNX model; None: the shipped demo model (:func:`default_model_path`).
    scene : Path or None
        Scene file or folder (SAFE, band folder, GeoTIFF, ``.mat``, ``.npz``); None: the synthetic demo scene
        (:func:`ssc_edge.demo.demo_scene` of ``demo_size`` pixels a side).
    output : Path
        ``.tif``, ``.npz`` or ``.mat``; checked and claimed before any work starts.
    run : RunOptions
        Provider, precision, threads, tile, batch (with ``auto``, an unknown bf16 loss is measured on this
        scene's Wald pair, its central 2048 x 2048 pixels one scale down, and cached).
    out : OutputOptions
        dtype, ``with_fine`` (10 bands, or 12 with ``model_60m``), COG, quality indexes, ``force``.
    model_60m : Path, optional
        A 60 m model (``NAME_60m.onnx`` from ``fit-and-export --bands all``) run on the same tiles as
        ``model`` (:class:`~ssc_edge.runtime.product.CombinedSharpener`): B01 and B09 are added.
    quicklook : Path, optional
        ``.png``: the centre (up to 512 x 512 px) of the result beside bicubic upsampling.
    demo_size : int
        Side of the demo scene, pixels.
    progress : callable, optional
        ``progress(done, total, message)`` per batch of tiles, then the COG step as one step.
    """
    from ..io.output import output_guard

    output = Path(output)
    quicklook = Path(quicklook) if quicklook is not None else None
    _check_outputs(output, quicklook)
    # the outputs checked and claimed until renamed into place: no output is an input, a second writer is refused
    with output_guard((output, quicklook), inputs=(scene, model, model_60m), force=out.force):
        models = open_models(model, model_60m)
        with _open_scene(scene, demo_size) as source:
            sharpener = build_sharpener(models, run, source)
            result = sharpen_scene(sharpener, source, output, out=out, progress=progress)
            if quicklook is not None:
                from .quicklook import write_quicklook

                primary = sharpener.sharpeners[0].contract  # the 20 m model's bands
                sharpened, up = _quicklook_crops(source, output, result.band_names, primary)
                write_quicklook(quicklook, sharpened, up, band_names=primary.output_bands,
                                label=f"SSC-CNN ({sharpener.provider})", force=out.force)  # fmt: skip
    return replace(result, quicklook=quicklook)


def _open_scene(scene: Path | None, demo_size: int) -> BandSource:
    """The scene opened once (:func:`ssc_edge.io.sources.open_band_source`), or the synthetic demo scene."""
    from ..io.sources import BandSource, open_band_source

    if scene is not None:
        return open_band_source(Path(scene))
    from ..demo import demo_scene

    return BandSource.from_scene(demo_scene(size=demo_size))


def memory_product(sharpened: np.ndarray, output_bands, names, scene_value) -> np.ndarray:
    """The (H, W, len(names)) product of a scene sharpened in memory, DN, bands ``names`` in file order.

    ``sharpened`` is the sharpener's (H, W, C) float32 output in ``output_bands`` order (returned as it is when
    ``names`` is ``output_bands``, :func:`~ssc_edge.runtime.stream.output_band_names`); with ``--with-fine`` the
    10 m bands of ``scene_value`` are copied in as read, NaN (nodata, :mod:`ssc_edge.nodata`) where 0 DN.
    """
    if tuple(names) == tuple(output_bands):
        return sharpened
    planes = {b: sharpened[..., i] for i, b in enumerate(output_bands)}
    planes.update({b: np.where(scene_value.bands[b] != 0, scene_value.bands[b], np.nan) for b in FINE_BANDS})
    return np.stack([planes[b] for b in names], axis=-1)


def _quality_hook(sharpener: SharpenerLike):
    """``(hook, on_core)``: the no-reference indexes of the 20 m model's six bands (the first of each core, with a
    60 m model too), with its degradation; ``(None, None)`` for a model whose outputs are not the six 20 m bands."""
    contract = sharpener.sharpeners[0].contract
    if tuple(contract.output_bands) != COARSE_BANDS:
        return None, None
    from ..quality import QualityHook, model_degradation

    hook = QualityHook(degradation=model_degradation(contract.training, contract.registration))
    count = len(COARSE_BANDS)
    return hook, lambda core, values, read_band, shape: hook(core, values[..., :count], read_band, shape)


def _quicklook_crops(source: BandSource, output: Path, names, contract) -> tuple[np.ndarray, np.ndarray]:
    """The centre (up to 512 px) of the written product's bands of ``contract``, and bicubic of the same window."""
    from .quicklook import centre_window

    window = centre_window(source.shape)
    indexes = [names.index(b) for b in contract.output_bands]
    if output.suffix.lower() in (".tif", ".tiff"):
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(output) as product:
            rw = Window(window.col, window.row, window.width, window.height)
            sharpened = np.moveaxis(product.read([i + 1 for i in indexes], window=rw), 0, -1).astype(np.float32)
    else:
        from ..io.results import read_estimate

        sharpened = read_estimate(output)[window.slices][..., indexes]
    up = upsampled_window(source.read, window, source.shape, list(contract.output_bands), method="bicubic",
                          ratio=contract.ratio)  # fmt: skip
    return sharpened, up
