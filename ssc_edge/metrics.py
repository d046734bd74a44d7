"""Quality metrics for sharpened images against a reference.

Every function takes ``reference`` and ``estimate`` as (H, W, B) arrays in the same units
(DN here) and accepts ``border`` to drop that many pixels at each edge before scoring.
Per-band results are ``(B,)`` float64 arrays in the band order of the inputs.

No-data (:mod:`ssc_edge.nodata`): every function takes ``valid``, an (H, W) bool mask of the pixels
to score; by default the pixels finite in both images (an output's no-data is NaN). Pixel-wise
metrics (SRE, SAM, RMSE, ERGAS) are then exactly those of the valid pixels alone; the windowed
ones (SSIM, Q) average only the windows that lie wholly on valid pixels.

References
----------
SRE and SAM as used by Lanaras et al. (DSen2, 2018) and Nguyen et al. (SSC-CNN, 2020):
``SRE_b = 10 log10(sum x_b^2 / sum (x_b - x^_b)^2)`` dB, no border cut in the paper.
ERGAS: Wald (2002), ``100 / r * sqrt(mean_b(MSE_b / mu_b^2))`` with r the resolution ratio.
SSIM: Wang, Bovik, Sheikh, Simoncelli (2004), Gaussian window sigma 1.5 px truncated at
3.5 sigma, K1 = 0.01, K2 = 0.03 (the defaults of scikit-image with ``gaussian_weights=True``).
UIQI (Q): Wang and Bovik (2002), 8 x 8 sliding window, averaged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .errors import OptionError

__all__ = [
    "signal_to_reconstruction_error",
    "spectral_angle_mapper",
    "root_mean_squared_error",
    "ergas",
    "structural_similarity",
    "universal_image_quality_index",
    "QualityReport",
    "quality_report",
]


def _prepare(
    reference: np.ndarray, estimate: np.ndarray, border: int, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 (H, W, B) images cut by ``border`` and the (H, W) mask of pixels to score (no-data set to 0)."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim == 2:
        reference, estimate = reference[..., None], estimate[..., None] if estimate.ndim == 2 else estimate
    if reference.shape != estimate.shape or reference.ndim != 3:
        raise OptionError(
            f"estimate is {'x'.join(map(str, estimate.shape))}, reference is "
            f"{'x'.join(map(str, reference.shape))}: they must be the same (H, W, B)"
        )
    if border < 0 or 2 * border >= min(reference.shape[:2]):
        raise OptionError(f"border of {border} px leaves nothing of a {reference.shape[0]}x{reference.shape[1]} image")
    finite = np.isfinite(reference).all(axis=-1) & np.isfinite(estimate).all(axis=-1)
    if valid is None:
        valid = finite
    else:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != reference.shape[:2]:
            raise OptionError(f"valid mask is {'x'.join(map(str, valid.shape))}, images are {reference.shape[0]}x"
                              f"{reference.shape[1]}")  # fmt: skip
        valid = valid & finite
    if not valid.all():  # no-data pixels hold 0 in both, so window filters stay finite
        reference, estimate = np.where(valid[..., None], reference, 0.0), np.where(valid[..., None], estimate, 0.0)
    if border:
        reference = reference[border:-border, border:-border]
        estimate = estimate[border:-border, border:-border]
        valid = valid[border:-border, border:-border]
    if not valid.any():
        raise OptionError(f"no valid pixel to score in a {reference.shape[0]}x{reference.shape[1]} image (all no-data)")
    return reference, estimate, valid


def signal_to_reconstruction_error(
    reference: np.ndarray, estimate: np.ndarray, *, border: int = 0, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-band signal to reconstruction error, dB: ``10 log10(sum x^2 / sum (x - x^)^2)`` over valid pixels."""
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    reference, estimate = reference[valid], estimate[valid]
    signal = np.sum(reference**2, axis=0)
    error = np.sum((reference - estimate) ** 2, axis=0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(signal / error)


def spectral_angle_mapper(
    reference: np.ndarray, estimate: np.ndarray, *, border: int = 0, valid: np.ndarray | None = None
) -> float:
    """Mean spectral angle between the B-band vectors of each valid pixel, degrees.

    Pixels where either vector is zero have no angle and are skipped.
    """
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    reference, estimate = reference[valid], estimate[valid]
    dot = np.sum(reference * estimate, axis=-1)
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(estimate, axis=-1)
    valid = norms > 0
    cosine = np.clip(dot[valid] / norms[valid], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cosine))))


def root_mean_squared_error(
    reference: np.ndarray, estimate: np.ndarray, *, border: int = 0, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-band root mean squared error over valid pixels, in the units of the inputs (DN)."""
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    return np.sqrt(np.mean((reference[valid] - estimate[valid]) ** 2, axis=0))


def ergas(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    ratio: float = 2.0,
    border: int = 0,
    valid: np.ndarray | None = None,
) -> float:
    """Erreur relative globale adimensionnelle de synthese (dimensionless, lower is better).

    ``100 / ratio * sqrt(mean_b(MSE_b / mu_b^2))``, ``mu_b`` the reference band mean and
    ``ratio`` the coarse/fine pixel size ratio (2 for 20 m -> 10 m).
    """
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    reference, estimate = reference[valid], estimate[valid]
    mse = np.mean((reference - estimate) ** 2, axis=0)
    mean = np.mean(reference, axis=0)
    return float(100.0 / ratio * np.sqrt(np.mean(mse / mean**2)))


def structural_similarity(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    data_range: np.ndarray | float | None = None,
    border: int = 0,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-band mean SSIM (Wang et al. 2004), dimensionless in [-1, 1].

    Gaussian-weighted statistics (sigma 1.5 px, 11 x 11 window), sample covariance
    normalisation as in scikit-image; pixels within 5 px of the edge are excluded from the mean.

    Parameters
    ----------
    data_range : float or (B,) array, optional
        Dynamic range L in ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. Default: each reference
        band's ``max - min`` (after the border cut, over valid pixels), so the score does not depend on
        DN scaling.
    valid : (H, W) bool ndarray, optional
        Pixels to score (default: finite in both); only windows (11 x 11) wholly on valid pixels count.
    """
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    bands = reference.shape[-1]
    if data_range is None:
        data_range = reference[valid].max(axis=0) - reference[valid].min(axis=0)
    data_range = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (bands,))
    n = 11 * 11  # effective window size for the unbiased covariance, as scikit-image does

    def smooth(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")

    def ssim(b: int, mx, my, vx, vy, cxy) -> np.ndarray:
        vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))
        c1, c2 = (0.01 * data_range[b]) ** 2, (0.03 * data_range[b]) ** 2
        return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))

    return _window_means(reference, estimate, valid, smooth, 11, ssim)


def _window_means(
    reference: np.ndarray, estimate: np.ndarray, valid: np.ndarray, smooth, size: int, index
) -> np.ndarray:
    """Per-band mean of ``index(b, mx, my, vx, vy, cxy)``, a map of the windowed means, variances and covariance
    (``smooth`` of the products), over the ``size`` x ``size`` windows inside the image that lie wholly on ``valid``
    pixels (NaN where there is none)."""
    half = size // 2
    inside = tuple(slice(half, n - (size - 1 - half)) for n in reference.shape[:2])
    counted = _whole_windows(valid, size, half)[inside]
    scores = np.empty(reference.shape[-1])
    for b in range(reference.shape[-1]):
        x, y = reference[..., b], estimate[..., b]
        mx, my = smooth(x), smooth(y)
        values = index(b, mx, my, smooth(x * x) - mx * mx, smooth(y * y) - my * my, smooth(x * y) - mx * my)
        scores[b] = values[inside][counted].mean() if counted.any() else np.nan
    return scores


def _whole_windows(valid: np.ndarray, size: int, half: int) -> np.ndarray:
    """(H, W) bool: the ``size`` x ``size`` window placed as the filters place it (``half`` px before the
    pixel) holds only valid pixels. All True when every pixel is valid."""
    if valid.all():
        return valid
    origin = half - size // 2  # scipy centres even windows one pixel later than ``half`` before
    return ndimage.binary_erosion(valid, structure=np.ones((size, size), bool), border_value=1, origin=-origin)


def universal_image_quality_index(
    reference: np.ndarray, estimate: np.ndarray, *, window: int = 8, border: int = 0, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-band universal image quality index Q (Wang and Bovik 2002), in [-1, 1].

    Computed in ``window x window`` sliding windows (only windows fully inside the image and, with
    no-data, wholly on ``valid`` pixels) and averaged. Windows where both images are constant score 1
    if their means agree.
    """
    reference, estimate, valid = _prepare(reference, estimate, border, valid)
    if window > min(reference.shape[:2]):
        raise OptionError(f"Q window of {window} px is larger than the {reference.shape[0]}x{reference.shape[1]} image")

    def smooth(a: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(a, size=window, mode="reflect")

    def q(b: int, mx, my, vx, vy, cxy) -> np.ndarray:
        num = 4 * cxy * mx * my
        den = (vx + vy) * (mx**2 + my**2)
        return np.where(den > 1e-12 * np.maximum(mx**2 + my**2, 1) ** 2, num / np.where(den == 0, 1, den), 1.0)

    return _window_means(reference, estimate, valid, smooth, window, q)


@dataclass(frozen=True)
class QualityReport:
    """All metrics of one estimate against its reference.

    Attributes
    ----------
    band_names : tuple of str
    sre : tuple of float
        Per-band SRE, dB.
    mean_sre : float
        dB.
    sam : float
        Degrees.
    rmse : tuple of float
        Per-band RMSE, DN.
    ergas : float
    ssim : tuple of float
        Per-band SSIM, data_range = each reference band's max - min.
    uiqi : tuple of float
        Per-band Q, 8 x 8 windows.
    border : int
        Pixels cut at each edge before scoring.
    """

    band_names: tuple[str, ...]
    sre: tuple[float, ...]
    mean_sre: float
    sam: float
    rmse: tuple[float, ...]
    ergas: float
    ssim: tuple[float, ...]
    uiqi: tuple[float, ...]
    border: int = 0

    def to_dict(self) -> dict:
        """Plain-JSON form (lists, floats)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> QualityReport:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def quality_report(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    band_names: tuple[str, ...],
    ratio: float = 2.0,
    border: int = 0,
    valid: np.ndarray | None = None,
) -> QualityReport:
    """Compute every metric of this module for (H, W, B) ``estimate`` against ``reference``.

    ``valid`` (H, W) bool: the pixels to score (default: finite in both; see the module notes).
    """
    options = {"border": border, "valid": valid}
    sre = signal_to_reconstruction_error(reference, estimate, **options)
    return QualityReport(
        band_names=tuple(band_names),
        sre=tuple(float(v) for v in sre),
        mean_sre=float(np.mean(sre)),
        sam=spectral_angle_mapper(reference, estimate, **options),
        rmse=tuple(float(v) for v in root_mean_squared_error(reference, estimate, **options)),
        ergas=ergas(reference, estimate, ratio=ratio, **options),
        ssim=tuple(float(v) for v in structural_similarity(reference, estimate, **options)),
        uiqi=tuple(float(v) for v in universal_image_quality_index(reference, estimate, **options)),
        border=border,
    )
