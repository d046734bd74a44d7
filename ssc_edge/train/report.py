"""The fit report written beside an exported model: a JSON document and its markdown rendering."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from .. import wald
from ..errors import SceneError
from ..evaluation import bicubic_baseline, format_quality_table
from ..io.sources import central_scene
from ..metrics import QualityReport
from ..nodata import fill_nearest, measured
from ..quality import FullResolutionQuality, format_full_resolution_table, full_resolution_quality, pair_degradation
from ..registration import RegistrationEstimate
from ..runtime.hardware import cpu_name
from .fit import predict_tiled
from .windows import scene_source

__all__ = ["full_resolution_summary", "machine_info", "render_markdown", "report_dict"]

_KIND_TEXT = {
    "rr-reference": "sharpened reduced-resolution bands against the reference (never seen in training)",
    "paper-training-set": "TRAINING-SET NUMBERS: the model was trained on this very pair (protocol 'paper')",
    "one-scale-down": "a second model trained two scales down, scored one scale down against the observed 20 m bands",
    "spatial-holdout": "the model itself on its training pair one scale down, scored against the observed 20 m bands "
    "on windows whose network input touches none of its training patches (a spatial hold-out: it does not test the "
    "transfer to the finer scale)",
    "60m-one-scale-down": "a second 60 m model trained two scales of 6 down, scored one scale of 6 down against the "
    "observed 60 m bands (never seen by it)",
    "60m-training-pair": "TRAINING-PAIR NUMBERS: the 60 m model scored on its own ratio-6 training pair (the scene is "
    "too small for a held-out fit two scales of 6 down)",
}


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores available to this process, OS and Python, for reports."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_name(), "cores": cores, "system": platform.platform(), "python": platform.python_version()}


def _registration_text(registration: dict, config: dict) -> str:
    """The markdown lines on the training pair's kernels and offset (empty for the nominal pair)."""
    if not registration:
        return ""
    lines = [
        f"\nTraining pair: degradation `{config.get('degradation')}`, registration `{config.get('registration')}`."
    ]
    estimate = registration.get("estimate")
    if estimate:
        table = RegistrationEstimate.from_dict(estimate).lines()
        lines += ["Estimated from the scene (10 m pixels):", "```", *table, "```"]
    pair = registration.get("pair_model")
    if pair:
        lines.append(f"Pair model: `{pair}`.")
    return "\n".join(lines) + "\n"


def report_dict(result) -> dict[str, Any]:
    """The JSON report of an :class:`~ssc_edge.train.export.ExportResult` (plain types only)."""
    fit, evaluation, contract = result.fit, result.evaluation, result.contract
    return {
        "model": result.paths["onnx"].name,
        "scene": contract.scene_name,
        "scene_sha256": contract.scene_sha256,
        "protocol": contract.protocol,
        "training_set_numbers": evaluation.training_set_numbers,
        "evaluation": evaluation.to_dict(),
        "evaluation_description": _KIND_TEXT[evaluation.kind],
        "fit": {
            "seconds": round(fit.seconds, 2),
            "epochs": fit.config.epochs,
            "best_epoch": fit.best_epoch,
            "kept": fit.weights_kept,
            "best_loss": fit.best_loss,
            "final_loss": fit.history[-1],
            "patches": fit.patches,
            "patch_candidates": fit.candidates,
            "patch_windows": fit.windows,
            "patch_budget": fit.config.patch_budget,
            "loss_history": fit.history,
            "image_loss_history": fit.image_history,
            "full_resolution_stage": fit.stage,
        },
        "config": fit.config.to_dict(),
        "registration": contract.registration,
        "export": {
            "layout": contract.layout,
            "onnxruntime_seconds_per_layout": result.layout_seconds,
            "parity_max_abs_diff_over_range": result.parity,
            "halo": contract.halo,
            "scale": contract.scale,
            "sample_window": list(result.sample_window),
        },
        "phases_seconds": {k: round(v, 2) for k, v in result.phases.items()},
        "machine": machine_info(),
        "versions": contract.versions,
    }


def _sample_text(export: dict[str, Any]) -> str:
    """The window the layout timing and the parity check ran on."""
    window = export.get("sample_window") or []
    if len(window) != 4:
        return "the training pair's input (the scene one scale down)"
    row, col, height, width = window
    return f"the {height}x{width} window of the scene at row {row}, column {col}"


def _patch_text(fit: dict[str, Any]) -> str:
    """One sentence: how many training patches were drawn, of how many, from how many windows."""
    candidates = fit.get("patch_candidates", fit["patches"])
    drawn = "all" if fit["patches"] >= candidates else "a uniform random sample"
    return (
        f"Patches: {fit['patches']} drawn ({drawn}) of {candidates} free of no-data, from "
        f"{fit.get('patch_windows', 1)} window(s) of the scene; budget {fit.get('patch_budget')}."
    )


def _stage_text(fit: dict[str, Any]) -> str:
    """One sentence on the full-resolution stage: its steps, kernel, time and its guard's two scores."""
    stage = fit.get("full_resolution_stage")
    if not stage:
        return "No full-resolution stage."
    before, after = stage["one_scale_down_sre"]
    verdict = "kept" if stage["kept"] else "undone (it broke the fit one scale down)"
    return (
        f"Full-resolution stage: {stage['iterations']} steps, {stage['kernel']} kernel, {stage['seconds']:.1f} s, "
        f"{verdict}; on its crop's training pair one scale down the model scored {before:.2f} dB before it and "
        f"{after:.2f} dB after (the stage aims at the full scale and may cost a few tenths of a dB there)."
    )


def _evaluation_extent(evaluation: dict[str, Any]) -> str:
    """Where the scores come from: the whole grid, or a sample of windows."""
    pixels, windows = evaluation.get("pixels", 0), evaluation.get("windows", 1)
    text = (
        f"a random sample of {pixels} px in whole windows free of no-data ({windows} window(s) looked at)"
        if evaluation.get("sampled")
        else f"the whole image, {pixels} px, scored from {windows} window(s)"
    )
    if evaluation.get("kind") == "one-scale-down":
        text += f"; the second fit drew {evaluation.get('patches', 0)} patches"
    if evaluation.get("before_stage"):
        before = QualityReport.from_dict(evaluation["before_stage"]).mean_sre
        text += (
            f". Before the full-resolution stage the model scored {before:.2f} dB mean SRE on these windows: the "
            "stage aims at the full scale and may cost a few tenths of a dB one scale down"
        )
    return text


#: Side of the central window, 10 m pixels, on which the report scores the full-scale output (memory stays bounded
#: on a full tile).
FULL_RESOLUTION_WINDOW = 512


def full_resolution_summary(scene, fit, *, pair=None) -> dict[str, Any] | None:
    """No-reference indexes (:mod:`ssc_edge.quality`) of the model's full-scale output and of bicubic.

    The model sharpens the scene at its own scale (what ``infer`` would write), on the central window of at most
    :data:`FULL_RESOLUTION_WINDOW` pixels a side (the whole scene when smaller; read through the band source, so a
    full tile is never loaded), and both products are scored against the scene's observed bands with the
    degradation the fit used: the estimated pair (``pair``, :func:`ssc_edge.quality.pair_degradation`) or the named
    method. None when the window is smaller than the 32-px quality windows.
    """
    crop = central_scene(scene_source(scene), FULL_RESOLUTION_WINDOW)
    fine, coarse = crop.fine(), crop.coarse()  # no-data filled as infer fills it, so the halo near it is infer's
    inputs = wald.model_input(
        fill_nearest(fine, measured(fine)), fill_nearest(coarse, measured(coarse)), upsampling=fit.config.upsampling
    )
    # on 256 px windows: Keras on the whole 512 x 512 window alone raised a full tile's peak RSS over 4 GB
    products = {"SSC-CNN": predict_tiled(fit.model, inputs, fit.scale), "bicubic": bicubic_baseline(crop)}
    degradation = pair_degradation(pair) if pair is not None else fit.config.degradation
    try:
        results = {
            name: full_resolution_quality(np.asarray(p), crop.fine(), crop.coarse(), degradation=degradation)
            for name, p in products.items()
        }
    except SceneError:
        return None
    return {
        "degradation": "estimated pair" if pair is not None else degradation,
        "window": [*crop.shape],
        "results": {name: r.to_dict() for name, r in results.items()},
    }


def _full_resolution_section(summary: dict[str, Any]) -> str:
    section = summary.get("full_resolution")
    if not section:
        return ""
    results = {name: FullResolutionQuality.from_dict(r) for name, r in section["results"].items()}
    height, width = section.get("window") or (0, 0)
    return f"""
## Full-resolution quality (no reference)

The model's output at the scene's own scale (what `infer` writes) against the observed bands, \
on the central {height}x{width} px of the scene, {section["degradation"]} degradation \
(`ssc_edge.quality`: Wald consistency, Khan's D_lambda(K), QNR, HQNR, D_rho).

{format_full_resolution_table(results)}
"""


def render_markdown(summary: dict[str, Any]) -> str:
    """Markdown rendering of :func:`report_dict`."""
    evaluation = summary["evaluation"]
    reports = {
        "SSC-CNN": QualityReport.from_dict(evaluation["model"]),
        "bicubic": QualityReport.from_dict(evaluation["bicubic"]),
    }
    fit, export, machine, config = summary["fit"], summary["export"], summary["machine"], summary["config"]
    why = "protocol `paper`" if evaluation["kind"] == "paper-training-set" else "the model's own training pair"
    warning = f"\n**These are training-set numbers** ({why}).\n" if summary["training_set_numbers"] else ""
    return f"""# {summary["model"]}

Scene `{summary["scene"]}` (sha256 `{summary["scene_sha256"] or "n/a: generated"}`), protocol `{summary["protocol"]}`.

## Reduced-resolution quality

{summary["evaluation_description"]}; {_evaluation_extent(evaluation)}.
{warning}
{format_quality_table(reports).rstrip()}
{_full_resolution_section(summary)}
## Fit

| epochs | weights kept | best epoch | best loss | fit time (s) | patches | lr | batch | patch/stride | degradation \
| precision |
|---|---|---|---|---|---|---|---|---|---|---|
| {fit["epochs"]} | {fit["kept"]} | {fit["best_epoch"]} | {fit["best_loss"]:.3e} | \
{fit["seconds"]:.1f} | {fit["patches"]} | \
{config["learning_rate"]:g} | {config["batch_size"]} | {config["patch"]}/{config["stride"]} | \
{config["degradation"]} | {config["precision"]} |

{_patch_text(fit)} {_stage_text(fit)}

Architecture: `{config["model"]}`.
{_registration_text(summary.get("registration") or {}, config)}

## Export

Layout {export["layout"]} (onnxruntime, fastest of 5 interleaved runs on {_sample_text(export)}, s: \
{", ".join(f"{k} {v:.4f}" for k, v in export["onnxruntime_seconds_per_layout"].items())}); halo {export["halo"]} px; \
scale {export["scale"]:.1f} DN; parity max |Keras - ONNX| / range = {export["parity_max_abs_diff_over_range"]:.1e}.

Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["system"]}.
"""
