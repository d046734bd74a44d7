"""Reduced-resolution evaluation: score a sharpened estimate, or plain upsampling, against a reference.

In a reduced-resolution (RR) scene every band is degraded by 2 and ``Scene.reference`` holds the
observed 20 m bands at the fine-grid size (the Wald protocol, Wald et al. 1997). Sharpening the
RR coarse bands should reproduce it; :func:`evaluate_estimate` measures how well it does with
the metrics of :mod:`ssc_edge.metrics` (SRE as in Lanaras et al. 2018 and Nguyen et al. 2020).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bands import COARSE_BANDS
from .errors import SceneError
from .metrics import QualityReport, quality_report
from .nodata import scene_valid, valid_pixels
from .quality import Degradation
from .scene import Scene, _describe
from .wald import upsample

__all__ = ["bicubic_baseline", "evaluate_estimate", "evaluate_full_resolution", "format_quality_table"]


def _checked(estimate: np.ndarray, scene: Scene, expected: tuple[int, ...], what: str) -> np.ndarray:
    """``estimate`` as an array; :class:`SceneError` unless its shape is ``expected`` (``what``'s)."""
    estimate = np.asarray(estimate)
    if estimate.shape != expected:
        size = "x".join(map(str, estimate.shape))
        raise SceneError(f"{_describe(scene.source)}estimate is {size}, but {what} {'x'.join(map(str, expected))}")
    return estimate


def evaluate_estimate(estimate: np.ndarray, scene: Scene, *, border: int = 0) -> QualityReport:
    """Score a sharpened (H, W, 6) estimate against the reference of an RR scene.

    Parameters
    ----------
    estimate : (H, W, 6) ndarray
        Sharpened 20 m bands on the scene's fine grid, DN, ``COARSE_BANDS`` order.
    scene : Scene
        A reduced-resolution scene with a ``reference`` (H, W, 6), DN.
    border : int
        Pixels dropped at each edge before scoring (0 in the paper).

    Returns
    -------
    QualityReport
        Per-band SRE (dB), RMSE (DN), SSIM, Q; global mean SRE (dB), SAM (degrees), ERGAS; over the
        valid pixels only (:func:`ssc_edge.nodata.scene_valid`: no band and no reference band 0 DN,
        and the estimate not NaN, its no-data).

    Raises
    ------
    SceneError
        If the scene has no reference, or the estimate is not the reference's shape.
    OptionError
        If ``border`` leaves nothing to score.
    """
    if scene.reference is None:
        raise SceneError(
            f"{_describe(scene.source)}scene has no reference (Xm_im); evaluation needs a reduced-resolution scene"
        )
    estimate = _checked(estimate, scene, scene.reference.shape, "the reference is")
    valid = scene_valid(scene) & valid_pixels(estimate)
    return quality_report(scene.reference, estimate, band_names=COARSE_BANDS, ratio=2.0, border=border, valid=valid)


def evaluate_full_resolution(estimate: np.ndarray, scene: Scene, *, degradation: Degradation = "bicubic"):
    """Score a sharpened (H, W, 6) estimate without a reference: the indexes of :mod:`ssc_edge.quality`.

    Parameters
    ----------
    estimate : (H, W, 6) ndarray
        Sharpened 20 m bands on the scene's fine grid, DN, ``COARSE_BANDS`` order.
    scene : Scene
        Any scene (its observed 10 m and 20 m bands are the references; ``reference`` is not read).
    degradation : str or callable
        The scene's degradation (the one the model was fitted with), see
        :func:`ssc_edge.quality.degradation_function`.

    Returns
    -------
    FullResolutionQuality

    Raises
    ------
    SceneError
        If the estimate is not the scene's (H, W, 6), or the scene is smaller than the 32-px windows.
    """
    from .quality import full_resolution_quality

    estimate = _checked(estimate, scene, (*scene.shape, len(COARSE_BANDS)), "the scene's sharpened bands are")
    try:
        return full_resolution_quality(estimate, scene.fine(), scene.coarse(), degradation=degradation)
    except SceneError as exc:
        raise SceneError(f"{_describe(scene.source)}{exc}") from None


def bicubic_baseline(scene: Scene, *, method: str = "bicubic") -> np.ndarray:
    """The scene's 20 m bands upsampled to its fine grid (``method`` of :func:`ssc_edge.wald.upsample`), the
    baseline every sharpener must beat: (H, W, 6) float32 DN, ``COARSE_BANDS`` order."""
    return upsample(scene.coarse(), ratio=2, method=method).astype(np.float32)


def format_quality_table(reports: Mapping[str, QualityReport]) -> str:
    """Named quality reports (``{"SSC-CNN": report, "bicubic": baseline}``, all for the same bands) as two
    Markdown tables: per band and method (SRE dB, RMSE DN, SSIM, Q, and a ``mean`` row per method), and
    global (mean SRE dB, SAM degrees, ERGAS, border px)."""
    if not reports:
        return ""
    named = list(reports.items())
    bands = named[0][1].band_names
    rows = ["| band | method | SRE (dB) | RMSE (DN) | SSIM | Q |", "|---|---|---:|---:|---:|---:|"]
    for i, band in enumerate(bands):
        for name, report in named:
            rows.append(
                f"| {band} | {name} | {report.sre[i]:.2f} | {report.rmse[i]:.1f} | "
                f"{report.ssim[i]:.4f} | {report.uiqi[i]:.4f} |"
            )
    for name, report in named:
        rows.append(
            f"| mean | {name} | {report.mean_sre:.2f} | {np.mean(report.rmse):.1f} | "
            f"{np.mean(report.ssim):.4f} | {np.mean(report.uiqi):.4f} |"
        )
    rows += ["", "| method | mean SRE (dB) | SAM (deg) | ERGAS | border (px) |", "|---|---:|---:|---:|---:|"]
    for name, report in named:
        rows.append(f"| {name} | {report.mean_sre:.2f} | {report.sam:.4f} | {report.ergas:.4f} | {report.border} |")
    return "\n".join(rows)
