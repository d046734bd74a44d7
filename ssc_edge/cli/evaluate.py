"""``ssc-edge evaluate``: score a sharpened estimate, or plain upsampling, against an RR scene's reference.

Forms::

    ssc-edge evaluate ESTIMATE --reference SCENE [--method bicubic]   # the estimate (and the baseline)
    ssc-edge evaluate --method bicubic SCENE                          # the upsampling baseline only
    ssc-edge evaluate ESTIMATE --scene SCENE [--method bicubic]       # no reference: full-resolution indexes
    ssc-edge evaluate --method bicubic --scene SCENE
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from ..evaluation import bicubic_baseline, evaluate_estimate, evaluate_full_resolution, format_quality_table
from ..io import check_outputs, read_estimate, read_scene
from ..quality import format_full_resolution_table
from ..wald import DEGRADATION_METHODS, UPSAMPLING_METHODS
from ._common import Force, write_json


def _resolve(estimate: Path | None, reference: Path | None, method: str | None) -> tuple[Path | None, Path]:
    """(estimate file or None, scene file) from the two command forms."""
    if method is not None and method not in UPSAMPLING_METHODS:
        raise OptionError(f"unknown upsampling method {method!r}; choose one of {', '.join(UPSAMPLING_METHODS)}")
    if reference is not None:
        if estimate is None and method is None:
            raise OptionError("nothing to evaluate: give an ESTIMATE file or --method METHOD")
        return estimate, reference
    if method is not None and estimate is not None:
        return None, estimate  # `evaluate --method bicubic SCENE`
    raise OptionError("evaluate needs ESTIMATE --reference SCENE, or --method METHOD SCENE")


def _scores(estimate: Path | None, scene, method: str | None, score) -> dict:
    """``score(image)`` of the estimate (named by its file's stem) and of plain upsampling by ``method``."""
    results = {}
    if estimate is not None:
        results[estimate.stem] = score(read_estimate(estimate))
    if method is not None:
        results[method] = score(bicubic_baseline(scene, method=method))
    return results


def _full_resolution(
    estimate: Path | None, scene_path: Path, method: str | None, degradation: str, json_path: Path | None
) -> None:
    """``evaluate [ESTIMATE] --scene SCENE``: the no-reference indexes, printed and optionally as JSON."""
    if degradation not in DEGRADATION_METHODS:
        raise OptionError(f"unknown degradation {degradation!r}; choose one of {', '.join(DEGRADATION_METHODS)}")
    if estimate is None and method is None:
        raise OptionError("nothing to evaluate: give an ESTIMATE file or --method METHOD with --scene")
    scene = read_scene(scene_path)
    results = _scores(
        estimate, scene, method, lambda image: evaluate_full_resolution(image, scene, degradation=degradation)
    )
    typer.echo(f"Full-resolution quality without a reference ({degradation} degradation):\n")
    typer.echo(format_full_resolution_table(results))
    write_json(json_path, {"scene": str(scene_path), "estimate": str(estimate) if estimate is not None else None,
                            "degradation": degradation,
                            "full_resolution": {name: r.to_dict() for name, r in results.items()}})  # fmt: skip


def evaluate_command(
    estimate: Annotated[
        Path | None,
        typer.Argument(
            help="Sharpened estimate (.tif, .npz, .mat, .npy; H x W x 6 DN). With --method and no "
            "--reference: the reduced-resolution scene instead.",
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference", "-r", help="Reduced-resolution scene holding the reference (Xm_im).", show_default=False
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "-m",
            help=f"Score plain upsampling of the scene's 20 m bands: {' or '.join(UPSAMPLING_METHODS)}.",
            show_default=False,
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the scores to this JSON file.", show_default=False),
    ] = None,
    border: Annotated[int, typer.Option("--border", min=0, help="Pixels to drop at each edge before scoring.")] = 0,
    scene: Annotated[
        Path | None,
        typer.Option(
            "--scene",
            "-s",
            help="Score without a reference against this scene's observed bands: Wald consistency (SRE, SAM, "
            "ERGAS, Q2n), D_lambda(K), QNR D_lambda, D_s, QNR, HQNR, D_rho.",
            show_default=False,
        ),
    ] = None,
    degradation: Annotated[
        str, typer.Option(help=f"With --scene: the scene's degradation ({' or '.join(DEGRADATION_METHODS)}).")
    ] = "bicubic",
    force: Force = False,
) -> None:
    """Score an estimate against a reduced-resolution reference: per-band SRE (dB), RMSE (DN), SSIM, Q;
    mean SRE (dB), SAM (degrees), ERGAS. With --scene instead: full-resolution indexes, no reference."""
    if json_path is not None:
        check_outputs([json_path], inputs=[estimate, reference, scene], force=force)
    if scene is not None:
        if reference is not None:
            raise OptionError("give --reference (reduced resolution) or --scene (full resolution), not both")
        _full_resolution(estimate, scene, method, degradation, json_path)
        return
    estimate_path, scene_path = _resolve(estimate, reference, method)
    scene_value = read_scene(scene_path)
    reports = _scores(estimate_path, scene_value, method,
                      lambda image: evaluate_estimate(image, scene_value, border=border))  # fmt: skip
    typer.echo(format_quality_table(reports))
    write_json(json_path, {"reference": str(scene_path),
                            "estimate": str(estimate_path) if estimate_path is not None else None,
                            "border": border,
                            "reports": {name: report.to_dict() for name, report in reports.items()}})  # fmt: skip
