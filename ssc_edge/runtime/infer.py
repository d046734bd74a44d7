"""``ssc-edge infer`` as one library call: model + scene file (or the demo scene) -> product file(s).

GeoTIFF scenes written to a GeoTIFF are streamed window by window (:mod:`.stream`); every other
combination is read into memory (:func:`ssc_edge.io.read_scene`) and written with
:func:`ssc_edge.io.write_result`. Both paths give the same numbers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bands import COARSE_BANDS, FINE_BANDS
from ..errors import ModelError, OptionError
from ..progress import ProgressCallback
from .sharpen import Sharpener, check_scene_bands, upsampled_window
from .stream import output_band_names

__all__ = ["DEMO_MODEL_NAME", "InferResult", "default_model_path", "sharpen_file"]

logger = logging.getLogger(__name__)

#: File name of the shipped demo model.
DEMO_MODEL_NAME = "demo.onnx"


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


def _check_outputs(output: Path, quicklook: Path | None, *, dtype: str, force: bool, inputs=()) -> None:
    from ..io import check_output_path
    from ..io.results import RESULT_DTYPES, RESULT_SUFFIXES
    from .quicklook import check_pillow

    if output.suffix.lower() not in RESULT_SUFFIXES:
        raise OptionError(
            f"{output}: unsupported output format {output.suffix or '(no suffix)'!r}; use {', '.join(RESULT_SUFFIXES)}"
        )
    if dtype not in RESULT_DTYPES:
        raise OptionError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(RESULT_DTYPES)}")
    check_output_path(output, force=force, inputs=inputs)
    if quicklook is not None:
        if quicklook.suffix.lower() != ".png":
            raise OptionError(f"{quicklook}: the quicklook is a PNG; name it .png")
        if quicklook.resolve() == output.resolve():
            raise OptionError(f"{quicklook}: the quicklook cannot overwrite the output")
        check_pillow()
        check_output_path(quicklook, force=force, inputs=inputs)


def scene_mismatch(contract, identity: str, scene: object, *, model: object = "the model") -> str | None:
    """The one-line warning for a model meeting a scene it was not fitted on, or None.

    Parameters
    ----------
    contract : ModelContract
        The model's; ``scene_sha256`` and ``scene_name`` say what it was fitted on.
    identity : str
        :func:`ssc_edge.io.sources.scene_identity` of the scene about to be sharpened.
    scene : object
        Named in the message (the scene's path).
    model : object
        Named in the message (the model's path).

    Returns
    -------
    str or None
        None when ``identity`` equals the model's ``scene_sha256``, or when the model records no
        scene at all (neither ``scene_sha256`` nor ``scene_name``: nothing to compare); otherwise a warning naming
        the scene the model was fitted on and the command that fits one for ``scene``. A model
        may serve neighbouring dates of one tile, so this is a warning, never an error.
    """
    if (identity and identity == contract.scene_sha256) or not (contract.scene_sha256 or contract.scene_name):
        return None
    fitted = contract.scene_name or "an unnamed scene"
    if contract.scene_sha256:
        fitted += f" (scene sha256 {contract.scene_sha256[:12]}...)"
    return (
        f"warning: {model} was fitted on {fitted}, not on {scene}; its quality here is unknown "
        f"(fit one for this scene: ssc-edge fit-and-export {scene} -o MODEL.onnx)"
    )


def sharpen_file(
    model: Path | None,
    scene: Path | None,
    output: Path,
    *,
    provider: str = "auto",
    tile: int = 512,
    batch: int = 1,
    threads: int | None = None,
    dtype: str = "float32",
    with_fine: bool = False,
    quicklook: Path | None = None,
    force: bool = False,
    cog: bool = True,
    demo_size: int = 256,
    progress: ProgressCallback | None = None,
    full_resolution: bool = True,
    precision: str | None = None,
    model_60m: Path | None = None,
    **session_options: Any,
) -> InferResult:
    """Sharpen a scene file with an ONNX model and write the product (and optionally a quicklook PNG).

    Parameters
    ----------
    model : Path or None
        ONNX model; None: the shipped demo model (:func:`default_model_path`).
    scene : Path or None
        Scene file or folder (``.mat``, ``.npz``, GeoTIFF); None: the synthetic demo scene
        (:func:`ssc_edge.demo.demo_scene` of ``demo_size``).
    output : Path
        ``.tif``, ``.npz`` or ``.mat``; checked before any work starts.
    provider, tile, batch, threads
        See :class:`Sharpener`.
    dtype : {"float32", "uint16"}
        Output samples, DN.
    with_fine : bool
        Write the complete 10 m product (the 10 m bands as read, the sharpened bands) in canonical
        band order: 10 bands with the 20 m model, 12 (B01..B12 without B10) with ``model_60m`` too.
    model_60m : Path, optional
        A 60 m model (``NAME_60m.onnx`` from ``fit-and-export --bands all``) run on the same tiles
        as ``model`` (:class:`~ssc_edge.runtime.product.CombinedSharpener`): B01 and B09 are added.
    quicklook : Path, optional
        ``.png``: the centre (up to 512 x 512 px) of the result beside bicubic upsampling.
    force : bool
        Overwrite existing outputs.
    cog : bool
        A ``.tif`` output is a Cloud-Optimized GeoTIFF (:mod:`ssc_edge.io.cog`: 512 px tiles, DEFLATE,
        overviews); False: a plain tiled GeoTIFF without overviews (faster to write).
    progress : callable, optional
        ``progress(done, total, message)`` per batch of tiles, then the COG step as one step.
    full_resolution : bool
        Compute the no-reference indexes (:mod:`ssc_edge.quality`) window by window while writing.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}, optional
        See :class:`Sharpener`; with ``auto`` an unknown bf16 loss is measured on this scene's Wald pair
        (its central 1024 x 1024 pixels one scale down) and cached.

    Returns
    -------
    InferResult
    """
    output = Path(output)
    quicklook = Path(quicklook) if quicklook is not None else None
    _check_outputs(output, quicklook, dtype=dtype, force=force, inputs=(scene, model, model_60m))
    start = time.perf_counter()
    from ..io.sources import streams

    was_streamed = streams(scene, output)
    loaded: dict[str, Any] = {}

    def scene_value_once():
        """The scene in memory, read once (the gate may need it before sharpening)."""
        if "scene" not in loaded:
            from ..io import read_scene

            if scene is None:
                from ..demo import demo_scene

                loaded["scene"] = demo_scene(size=demo_size)
            else:
                loaded["scene"] = read_scene(Path(scene))
        return loaded["scene"]

    from .session import check_model_kind, read_model_contract

    model_path = default_model_path() if model is None else Path(model)
    # each model in its place, before any gate measures it: MODEL sharpens the 20 m bands, --model-60m B01 and B09
    check_model_kind(read_model_contract(model_path), ratio=2, source=model_path)
    if model_60m is not None:
        check_model_kind(read_model_contract(Path(model_60m)), ratio=6, source=model_60m)
    sharpener = Sharpener(
        model_path,
        provider=provider,
        threads=threads,
        tile=tile,
        batch=batch,
        precision=precision,
        gate_scene=(lambda: _source_gate_scene(Path(scene))) if was_streamed else scene_value_once,
        **session_options,
    )
    primary = sharpener.contract  # what the quicklook shows: the first model's bands
    if model_60m is not None:
        from .product import CombinedSharpener

        # the 60 m model takes the same --precision; its gate is measured on its own ratio-6 Wald pair
        # (precision.wald_gate_pair), from a central crop read with the 60 m bands
        options = {"provider": provider, "threads": threads, "tile": tile, "batch": batch, **session_options}
        gate_60m = (lambda: _source_gate_scene(Path(scene), with_60m=True)) if was_streamed else scene_value_once
        sixty = Sharpener(Path(model_60m), precision=precision, gate_scene=gate_60m, **options)
        sharpener = CombinedSharpener([sharpener, sixty])
    contract = sharpener.contract
    names = output_band_names(contract.output_bands, with_fine=with_fine)
    hook = _quality_hook(contract) if full_resolution else None

    def warn_if_another_scene(*_: object) -> None:
        """Once the scene passed its checks: the one warning line when the model was fitted on another scene."""
        if scene is not None:
            from ..io.sources import scene_identity

            identity = scene_identity(Path(scene))
            for one in getattr(sharpener, "sharpeners", (sharpener,)):
                warning = scene_mismatch(one.contract, identity, scene, model=one.model_path)
                if warning is not None:
                    logger.warning("%s", warning)

    if was_streamed:
        import rasterio

        from ..io.sources import open_band_source
        from .stream import sharpen_stream

        # GDAL's block cache is bounded before any band file is opened (its default is 5 % of RAM)
        with rasterio.Env(GDAL_CACHEMAX=64 * 1024 * 1024), open_band_source(Path(scene)) as source:
            streamed = sharpen_stream(
                sharpener, source, output, dtype=dtype, with_fine=with_fine, force=force, progress=progress,
                on_checked=warn_if_another_scene, on_core=hook, cog=cog,
            )  # fmt: skip
            shape, tiles, cog_seconds = streamed.shape, streamed.tiles, streamed.cog_seconds
            quality = None
            crops = _source_crops(source, output, names, primary) if quicklook is not None else None
    else:
        from ..io import write_result

        scene_value = scene_value_once()
        check_scene_bands(scene_value.bands, scene_value.shape, contract, source=scene or scene_value.name)
        warn_if_another_scene()
        sharpened = sharpener.sharpen(scene_value, progress=progress, on_core=hook)
        shape, tiles = scene_value.shape, len(sharpener.plan(scene_value.shape))
        product = memory_product(sharpened, contract.output_bands, names, scene_value)
        write_result(output, product, band_names=names, georef=scene_value.georef, dtype=dtype, force=force, cog=cog)
        cog_seconds = None
        quality = _reference_quality(scene_value, sharpened, contract)
        crops = (
            _memory_crops(scene_value, sharpened[..., : len(primary.output_bands)], primary)
            if quicklook is not None
            else None
        )
    if quicklook is not None and crops is not None:
        from .quicklook import write_quicklook

        write_quicklook(
            quicklook,
            crops[0],
            crops[1],
            band_names=primary.output_bands,
            label=f"SSC-CNN ({sharpener.provider})",
            force=force,
        )
    seconds = time.perf_counter() - start
    return InferResult(
        output,
        sharpener.provider,
        tuple(shape),
        names,
        tiles,
        seconds,
        streamed=was_streamed,
        quicklook=quicklook,
        quality=quality,
        full_resolution=hook.result() if hook is not None else None,
        precision=sharpener.precision,
        precision_reason=sharpener.precision_reason,
        cog_seconds=cog_seconds,
    )


def memory_product(sharpened: np.ndarray, output_bands, names, scene_value) -> np.ndarray:
    """The product of a scene sharpened in memory, with the bands ``names`` in file order.

    Parameters
    ----------
    sharpened : (H, W, C) float32 ndarray
        The sharpener's output, DN, bands ``output_bands``.
    output_bands : sequence of str
    names : sequence of str
        :func:`~ssc_edge.runtime.stream.output_band_names` of ``output_bands``: ``output_bands`` itself, or
        (``--with-fine``) every band of the product in canonical order.
    scene_value : Scene
        Its 10 m bands are copied in as read, NaN (nodata, :mod:`ssc_edge.nodata`) where 0 DN.

    Returns
    -------
    (H, W, len(names)) ndarray
        ``sharpened`` itself when ``names`` is ``output_bands``.
    """
    if tuple(names) == tuple(output_bands):
        return sharpened
    planes = {b: sharpened[..., i] for i, b in enumerate(output_bands)}
    planes.update({b: np.where(scene_value.bands[b] != 0, scene_value.bands[b], np.nan) for b in FINE_BANDS})
    return np.stack([planes[b] for b in names], axis=-1)


def _source_gate_scene(scene: Path, *, with_60m: bool = False):
    """The central 2048 x 2048 px of a streamed scene (read by window): what the precision gate measures on
    (``with_60m``: with B01 and B09, for a 60 m model)."""
    from ..io.sources import central_scene, open_band_source
    from .precision import GATE_SIZE

    with open_band_source(scene) as source:
        return central_scene(source, 2 * GATE_SIZE, with_60m=with_60m)


def _quality_hook(contract):
    """The full-resolution quality hook for a model whose outputs are the six 20 m bands, with its degradation."""
    if tuple(contract.output_bands) != COARSE_BANDS:
        return None
    from ..quality import QualityHook, model_degradation

    return QualityHook(degradation=model_degradation(contract.training, contract.registration))


def _memory_crops(scene_value, sharpened: np.ndarray, contract) -> tuple[np.ndarray, np.ndarray]:
    from .quicklook import centre_window

    window = centre_window(scene_value.shape)
    bands = dict(scene_value.bands)
    up = upsampled_window(
        lambda b, w: bands[b][w.slices],
        window,
        scene_value.shape,
        list(contract.output_bands),
        method="bicubic",
        ratio=contract.ratio,
    )
    return sharpened[window.slices], up


def _source_crops(source, output: Path, names, contract) -> tuple[np.ndarray, np.ndarray]:
    """The quicklook's centre crop of the written product and the bicubic upsampling of the same window."""
    import rasterio
    from rasterio.windows import Window

    from .quicklook import centre_window

    with rasterio.open(output) as product:
        window = centre_window((product.height, product.width))
        rw = Window(window.col, window.row, window.width, window.height)
        indexes = [names.index(b) + 1 for b in contract.output_bands]
        sharpened = np.moveaxis(product.read(indexes, window=rw), 0, -1).astype(np.float32)
    up = upsampled_window(
        source.read, window, source.shape, list(contract.output_bands), method="bicubic", ratio=contract.ratio
    )
    return sharpened, up
