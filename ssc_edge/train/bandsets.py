"""``fit-and-export --bands 60m|20m|all``: the 60 m model (B01, B09) beside the 20 m one.

The 60 m model is the same network (:func:`~ssc_edge.train.model.build_ssc_cnn` with 12 input and 2 output
channels) fitted zero-shot at ratio 6 on :func:`ssc_edge.bandset.ratio_training_pair`: every band degraded by 6, the
60 m bands upsampled back, target = the observed 60 m bands, as DSen2 trains its 60 m network (Lanaras et al. 2018,
ISPRS J. Photogramm. 146, 305-319). It is exported as a second ONNX file, ``NAME_60m.onnx`` (contract ``ratio`` 6,
its own halo and scale); ``infer NAME.onnx --model-60m NAME_60m.onnx`` runs both on one tile plan.

Memory and time are bounded on any scene size: the 60 m model is fitted on the central :data:`SIXTY_SIDE` x
:data:`SIXTY_SIDE` 10 m pixels of a larger scene (read through the band source, never the whole scene), and on at
most ``config.patch_budget`` patches of it (a seeded uniform sample of those whose target holds no 0 DN), as the
20 m fit bounds its sample. Its evaluation: :func:`evaluate_60m`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..bands import VERY_COARSE_BANDS
from ..bandset import (
    BAND_SETS,
    SIXTY_INPUT_BANDS,
    RatioPairModel,
    ratio_training_pair,
    require_60m_bands,
    usable_60m_bands,
)
from ..errors import OptionError, SceneError
from ..io import check_outputs, output_guard
from ..io.sources import BandSource, central_scene
from ..metrics import quality_report
from ..progress import ProgressCallback, stage
from ..registration import RegistrationEstimate, estimate_scene_registration, sixty_pair_model
from ..sampling import PatchReservoir, origin_grid, patch_keys
from ..scene import Scene
from .export import (
    ExportResult,
    _fit_and_export,
    build_contract,
    export_onnx,
    fit_and_export,
    opened_scene,
    output_paths,
    write_model_files,
    written_paths,
)
from .fit import Evaluation, FitConfig, FitResult, extract_patches, fit_model, fit_patches, predict
from .report import report_dict

__all__ = [
    "SIXTY_RATIO",
    "SIXTY_SIDE",
    "sixty_scene",
    "sixty_output_path",
    "resolve_band_sets",
    "fit_60m",
    "sixty_pair_for",
    "evaluate_60m",
    "fit_and_export_bands",
]

logger = logging.getLogger(__name__)

#: Resolution ratio of the 60 m bands to the 10 m grid.
SIXTY_RATIO = 6
#: Side, 10 m pixels, of the central window the 60 m model is fitted on when the scene is larger (a multiple of
#: 36: the window's ratio-6 training grid, 360 px, and two scales of 6 down, 60 px, for the held-out report fit).
SIXTY_SIDE = 2160


def sixty_output_path(output: Path) -> Path:
    """``NAME.onnx`` -> ``NAME_60m.onnx``, where ``--bands all`` writes the 60 m model."""
    output = Path(output)
    return output.with_name(f"{output.stem}_60m{output.suffix}")


def resolve_band_sets(scene: Scene, bands: str, config: FitConfig) -> tuple[str, ...]:
    """Which models to fit for ``bands`` (a :data:`~ssc_edge.bandset.BAND_SETS` name): ``("20m",)``, ``("60m",)``
    or ``("20m", "60m")``.

    ``"all"`` on a scene without usable 60 m bands (missing, or all-zero placeholders the readers drop, as in the
    Reykjavik file), or too small for one ratio-6 training patch, falls back to ``("20m",)`` and logs a note;
    ``"60m"`` there raises :class:`~ssc_edge.errors.SceneError`.
    """
    if bands == "20m":
        return ("20m",)
    if bands == "60m":
        require_60m_bands(scene)
        if min(scene.shape) < _minimum_side(config):
            raise SceneError(
                f"{_where(scene)}: scene of {scene.shape[0]}x{scene.shape[1]} px is too small for the 60 m model: "
                f"training one scale of 6 down with {config.patch}x{config.patch} patches needs at least "
                f"{_minimum_side(config)} px a side"
            )
        return ("60m",)
    where = _where(scene)
    if not usable_60m_bands(scene):
        logger.warning("note: %s has no usable 60 m bands (B01/B09 missing or zero placeholders): 20 m only", where)
        return ("20m",)
    if min(scene.shape) < _minimum_side(config):
        logger.info("%s is too small for the 60 m model (%d px a side): 20 m only", where, _minimum_side(config))
        return ("20m",)
    return ("20m", "60m")


def sixty_pair_for(
    scene: Scene, config: FitConfig, *, estimate20: RegistrationEstimate | None = None
) -> tuple[RatioPairModel, dict]:
    """The ratio-6 training pair's model for ``scene`` under ``config``, and its metadata section.

    ``degradation`` or ``registration`` ``"auto"``: the 60 m bands' and the 20 m bands' registration and relative
    blur are estimated on the scene's central crop (:func:`ssc_edge.registration.estimate_scene_registration` at
    ratios 6 and 2) and turned into per-band kernels and offsets by :func:`ssc_edge.registration.sixty_pair_model`.
    Else the nominal kernels at ratio 6, nominal grids. ``estimate20``: the 20 m model's estimate, not made again.

    Returns
    -------
    (RatioPairModel, dict)
        The model, and ``{"estimate": 60 m estimate, "estimate_20m": ..., "pair_model": ...}`` for the model
        metadata and the report (empty for a nominal pair).
    """
    if "auto" not in (config.degradation, config.registration):
        return sixty_pair_model(None, None, degradation=config.degradation, registration="none"), {}
    estimate60 = estimate_scene_registration(scene, ratio=SIXTY_RATIO)
    estimate20 = estimate20 or estimate_scene_registration(scene)
    for line in estimate60.lines():
        logger.info("registration (60 m): %s", line)
    if not estimate60.stable:
        logger.warning(
            "note: %s: the 60 m bands' registration estimate is not stable (the crop's quadrants differ by up to "
            "%.2f px): the 60 m training pair uses the nominal MTF kernels and grid",
            _where(scene),
            estimate60.spread,
        )
    model = sixty_pair_model(estimate60, estimate20, degradation=config.degradation, registration=config.registration)
    metadata = {"estimate": estimate60.to_dict(), "estimate_20m": estimate20.to_dict(), "pair_model": model.to_dict()}
    return model, metadata


def _pair(scene: Scene, config: FitConfig, levels: int, model: RatioPairModel):
    pair = ratio_training_pair(scene, VERY_COARSE_BANDS, upsampling=config.upsampling, levels=levels, model=model)
    return pair.inputs, pair.target


def _where(scene: Scene) -> str | Path:
    """The scene's file for messages, or its name."""
    return scene.source if scene.source is not None else scene.name


def _minimum_side(config: FitConfig) -> int:
    """Smallest 10 m side, pixels, whose ratio-6 training image (cropped to a multiple of 36) holds one patch."""
    return SIXTY_RATIO**2 * -(-config.patch // SIXTY_RATIO)


def fit_60m(
    scene: Scene,
    config: FitConfig,
    *,
    progress: ProgressCallback | None = None,
    pair: RatioPairModel | None = None,
) -> FitResult:
    """Fit the 60 m model on the scene's ratio-6 training pair (``levels=1``).

    ``pair``: the pair's model (:func:`sixty_pair_for`); made here when not given.
    """
    if config.protocol != "heldout":
        raise OptionError("the 60 m model is fitted with protocol 'heldout' only (RR files carry no 60 m reference)")
    pair = pair or sixty_pair_for(scene, config)[0]
    inputs, target = _pair(scene, config, 1, pair)
    n_rows, n_cols = origin_grid(target.shape[:2], patch=config.patch, stride=config.stride)
    if n_rows * n_cols <= config.patch_budget:
        return fit_model(inputs, target, config, progress=progress)
    scale = float(np.max(target))
    if not scale > 0:
        raise SceneError("the 60 m training target is all zeros; cannot normalise it")
    # the sample as the 20 m fit draws it (sampling.PatchReservoir): the valid patches with the smallest seeded keys
    y = extract_patches(np.asarray(target, np.float32), size=config.patch, stride=config.stride)
    valid = np.flatnonzero(~np.any(y == 0, axis=(1, 2, 3)))  # 0 DN in an observed 60 m band: no-data
    if len(valid) == 0:
        raise SceneError("no 60 m training patch free of no-data (0 DN)")
    reservoir = PatchReservoir(patch_keys(n_rows * n_cols, seed=config.seed), config.patch_budget)
    offered = reservoir.candidates(valid)
    reservoir.add(offered, y[offered])
    chosen, (y,) = reservoir.result()
    x = extract_patches(np.asarray(inputs, np.float32), size=config.patch, stride=config.stride)[chosen]
    logger.info("60 m fit: %d of %d valid patches (%d origins)", len(chosen), len(valid), n_rows * n_cols)
    result = fit_patches(x / np.float32(scale), y / np.float32(scale), scale, config, progress=progress)
    return replace(result, candidates=len(valid))


def sixty_scene(scene: Scene | BandSource, side: int = SIXTY_SIDE) -> Scene:
    """The scene the 60 m model is fitted on: the scene itself when at most ``side`` px a side and in memory,
    else its central ``side`` x ``side`` window with the 60 m bands (:func:`ssc_edge.io.sources.central_scene`;
    a band source is read only there)."""
    if isinstance(scene, Scene) and max(scene.shape) <= side:
        return scene
    crop = central_scene(scene, side, with_60m=True)
    logger.info("60 m model: fitted on the central %dx%d px of the %dx%d px scene", *crop.shape, *scene.shape)
    return replace(crop, name=getattr(scene, "name", None) or crop.name)  # the report names the scene


def evaluate_60m(
    scene: Scene,
    fit: FitResult,
    *,
    progress: ProgressCallback | None = None,
    pair: RatioPairModel,
) -> Evaluation:
    """Quality of the 60 m model against the observed 60 m bands, and of bicubic on the same input.

    When the scene is at least ``36 * patch`` px a side, a second model is fitted two scales of 6 down and scored
    one scale down (kind ``"60m-one-scale-down"``). Else the fitted model is scored on its own training pair (kind
    ``"60m-training-pair"``, ``training_set_numbers`` true). ``pair``: the training pair's model, as :func:`fit_60m`.
    """
    config = fit.config
    heldout = min(scene.shape) >= SIXTY_RATIO**2 * config.patch
    inputs, reference = _pair(scene, config, 1, pair)
    if heldout:
        held_out = stage(progress, "60 m held-out fit (two scales of 6 down, scores the report)")
        second = fit_model(*_pair(scene, config, 2, pair), config, progress=held_out)
        model, scale, kind, extra = second.model, second.scale, "60m-one-scale-down", second.seconds
    else:
        model, scale, kind, extra = fit.model, fit.scale, "60m-training-pair", 0.0
    return Evaluation(
        model=quality_report(reference, predict(model, inputs, scale), band_names=VERY_COARSE_BANDS),
        bicubic=quality_report(reference, inputs[..., : len(VERY_COARSE_BANDS)], band_names=VERY_COARSE_BANDS),
        kind=kind,
        training_set_numbers=not heldout,
        fit_seconds=extra,
    )


def _fit_and_export_60m(
    scene: Scene,
    config: FitConfig,
    paths: dict[str, Path],
    sha: str,
    estimate20: RegistrationEstimate | None,
    *,
    write_keras: bool,
    progress: ProgressCallback | None,
) -> ExportResult:
    """Fit, evaluate and write the 60 m model (``sha``: the scene's identity; ``estimate20``: the 20 m model's
    registration estimate, if made)."""
    pair, registration = sixty_pair_for(scene, config, estimate20=estimate20)  # once: fit and report
    fit = fit_60m(scene, config, progress=stage(progress, "60 m model"), pair=pair)
    evaluation = evaluate_60m(scene, fit, progress=progress, pair=pair)
    sample = _pair(scene, fit.config, 1, pair)[0][None] / np.float32(fit.scale)
    proto, layout, timings, parity = export_onnx(fit.model, sample)
    bands = {"ratio": SIXTY_RATIO, "input_bands": SIXTY_INPUT_BANDS, "output_bands": VERY_COARSE_BANDS}
    contract = build_contract(
        fit, evaluation, layout=layout, scene_sha256=sha, scene_name=scene.name, registration=registration, **bands
    )
    result = ExportResult(dict(paths), fit, evaluation, contract, timings, parity)
    # the precision gate on its ratio-6 Wald pair (runtime.precision.wald_gate_pair)
    write_model_files(result, proto, report_dict(result), gate_scene=scene, write_keras=write_keras)
    return result


def fit_and_export_bands(
    scene: Path | Scene | int | None,
    output: Path,
    config: FitConfig | None = None,
    *,
    bands: str = "20m",
    force: bool = False,
    write_keras: bool = True,
    progress: ProgressCallback | None = None,
    evaluation: str = "auto",
    score_before_stage: bool = False,
) -> dict[str, ExportResult]:
    """Fit and export the 20 m model, the 60 m model, or both (``bands`` = ``"20m"``, ``"60m"``, ``"all"``).

    Parameters
    ----------
    scene, config, force, write_keras, progress, evaluation, score_before_stage
        As :func:`~ssc_edge.train.export.fit_and_export`.
    output : Path
        ``NAME.onnx``. ``"20m"``: the 20 m model there; ``"60m"``: the 60 m model there; ``"all"``: the 20 m model
        there and the 60 m model at ``NAME_60m.onnx`` (:func:`sixty_output_path`); each with ``.keras``, ``.json``
        and ``.md``.
    bands : {"20m", "all", "60m"}
        Default "20m". See :func:`resolve_band_sets` (``"all"`` falls back to 20 m on scenes without usable 60 m bands).

    Returns
    -------
    dict
        ``{"20m": ExportResult, "60m": ExportResult}``, the keys of the models written.

    Raises
    ------
    SceneError
        ``"60m"`` on a scene without usable 60 m bands; a scene too small for a training patch.
    OutputError
        Before any training, if an output exists (without ``force``) or cannot be written.
    """
    config = config or FitConfig()
    if bands not in BAND_SETS:
        raise OptionError(f"--bands must be one of {', '.join(BAND_SETS)}, got {bands!r}")
    options = {
        "write_keras": write_keras,
        "progress": progress,
        "evaluation": evaluation,
        "score_before_stage": score_before_stage,
    }
    if bands == "20m":  # the 20 m fit alone reads the scene window by window (bounded memory)
        return {"20m": fit_and_export(scene, output, config, force=force, **options)}
    results: dict[str, ExportResult] = {}
    with opened_scene(scene) as (opened, sha, name):  # opened once: the 20 m fit and the 60 m model's window
        clock = time.perf_counter()
        scene_obj = sixty_scene(opened)
        paths20 = output_paths(output)
        # an output error first, before any note on the band sets
        check_outputs(written_paths(paths20, write_keras=write_keras), inputs=[scene], force=force)
        sets = resolve_band_sets(scene_obj, bands, config)
        paths60 = output_paths(output if sets == ("60m",) else sixty_output_path(output))
        claimed = [
            *(written_paths(paths20, write_keras=write_keras) if "20m" in sets else []),
            *(written_paths(paths60, write_keras=write_keras) if "60m" in sets else []),
        ]
        with output_guard(claimed, inputs=[scene], force=force):  # every output claimed before any training
            if "20m" in sets:
                results["20m"] = _fit_and_export(opened, sha, name, scene, paths20, config, clock, **options)
            if "60m" in sets:
                made = results["20m"].contract.registration.get("estimate") if "20m" in results else None
                estimate20 = RegistrationEstimate.from_dict(made) if made else None  # the 20 m model's, not made twice
                results["60m"] = _fit_and_export_60m(
                    scene_obj, config, paths60, sha, estimate20, write_keras=write_keras, progress=progress
                )
    return results
