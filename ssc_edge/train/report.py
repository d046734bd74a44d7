"""The fit report written beside an exported model: a JSON document and its markdown rendering."""

from __future__ import annotations

import os
import platform
from typing import Any

from ..metrics import QualityReport

__all__ = ["machine_info", "quality_table", "render_markdown", "report_dict"]

_KIND_TEXT = {
    "rr-reference": "sharpened reduced-resolution bands against the reference (never seen in training)",
    "paper-training-set": "TRAINING-SET NUMBERS: the model was trained on this very pair (protocol 'paper')",
    "one-scale-down": "a second model trained two scales down, scored one scale down against the observed 20 m bands",
    "60m-one-scale-down": "a second 60 m model trained two scales of 6 down, scored one scale of 6 down against the "
    "observed 60 m bands (never seen by it)",
    "60m-training-pair": "TRAINING-PAIR NUMBERS: the 60 m model scored on its own ratio-6 training pair (the scene is "
    "too small for a held-out fit two scales of 6 down)",
}


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores available to this process, OS and Python, for reports."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "system": platform.platform(), "python": platform.python_version()}


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
            "loss_history": fit.history,
            "image_loss_history": fit.image_history,
        },
        "config": fit.config.to_dict(),
        "export": {
            "layout": contract.layout,
            "onnxruntime_seconds_per_layout": result.layout_seconds,
            "parity_max_abs_diff_over_range": result.parity,
            "halo": contract.halo,
            "scale": contract.scale,
        },
        "machine": machine_info(),
        "versions": contract.versions,
    }


def quality_table(reports: dict[str, QualityReport]) -> str:
    """Markdown table: one row per estimate, per-band SRE, mean SRE (dB), SAM (deg), ERGAS, mean SSIM."""
    try:
        from ..evaluation import format_quality_table
    except ImportError:
        format_quality_table = None
    if format_quality_table is not None:
        return format_quality_table(reports)
    bands = next(iter(reports.values())).band_names
    head = ["estimate", *(f"SRE {b}" for b in bands), "mean SRE (dB)", "SAM (deg)", "ERGAS", "mean SSIM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in reports.items():
        cells = [
            name,
            *(f"{v:.2f}" for v in r.sre),
            f"{r.mean_sre:.2f}",
            f"{r.sam:.3f}",
            f"{r.ergas:.3f}",
            f"{sum(r.ssim) / len(r.ssim):.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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

{summary["evaluation_description"]}.
{warning}
{quality_table(reports).rstrip()}

## Fit

| epochs | weights kept | best epoch | best loss | fit time (s) | patches | lr | batch | patch/stride | degradation \
| precision |
|---|---|---|---|---|---|---|---|---|---|---|
| {fit["epochs"]} | {fit["kept"]} | {fit["best_epoch"]} | {fit["best_loss"]:.3e} | \
{fit["seconds"]:.1f} | {fit["patches"]} | \
{config["learning_rate"]:g} | {config["batch_size"]} | {config["patch"]}/{config["stride"]} | \
{config["degradation"]} | {config["precision"]} |

Architecture: `{config["model"]}`.

## Export

Layout {export["layout"]} (onnxruntime, fastest of 5 interleaved runs on the scene, s: \
{", ".join(f"{k} {v:.4f}" for k, v in export["onnxruntime_seconds_per_layout"].items())}); halo {export["halo"]} px; \
scale {export["scale"]:.1f} DN; parity max |Keras - ONNX| / range = {export["parity_max_abs_diff_over_range"]:.1e}.

Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["system"]}.
"""
