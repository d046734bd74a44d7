"""Band registration and relative blur of the 20 m bands, estimated from the scene itself.

Zero-shot sharpening trains one scale down and assumes that the degraded inputs relate to the
observed 20 m bands as the observed bands relate to the unseen 10 m truth. This module measures
that relation on the observed bands, without a reference: for each 20 m band, the sub-pixel
offset of its grid against the 10 m grid and its blur relative to the 10 m bands.

Method
------
A 20 m band ``c`` is modelled as a decimated, blurred linear combination of spectrally similar
10 m bands ``f_p`` (B08 for B8A, B07 and B06; B04 for B05; all four for B11 and B12)::

    c[i, j] = a0 + sum_p a_p * sum_{u, v} k[u] k[v] * f_p[2i + u, 2j + v]

with ``k`` a kernel centred at 10 m coordinate ``2i + 0.5 + d`` (``d`` the offset, rows and cols;
the nominal grid has ``d = 0``). For a given kernel the model is linear in ``a``, so its least-
squares residual has a closed form; the kernel's parameters are found by minimising that
residual (Nelder-Mead from the best point of a grid), for two families: a Gaussian (``sigma`` and
``d``) and MATLAB's ``imresize`` kernel (Keys' cubic stretched by 2; ``d`` only). The family with
the lower residual is the band's kernel. This is the relative-PSF estimation of HySure (Simoes et
al. 2015) and of Aiazzi et al.'s MTF-matched regression, reduced to a parametric kernel; a free
10 x 10 kernel regressed the same way centres within a few hundredths of a pixel of the fitted ``d``
on the shipped scenes.

All candidate kernels are evaluated on one Gram matrix of the 10 x 10 fine-pixel neighbourhoods
of the sampled 20 m pixels (``4 * 100`` columns), built once: the search costs microseconds per
kernel and the whole estimate a few seconds, whatever the scene size, because the caller passes
a crop and at most ``max_samples`` 20 m pixels are used (a regular subsample).

References
----------
Simoes, Bioucas-Dias, Almeida, Chanussot (2015), "A convex formulation for hyperspectral image
superresolution via subspace-based regularization", IEEE TGRS 53(6) (relative PSF by least squares).
Aiazzi, Alparone, Baronti, Garzelli, Selva (2006), "MTF-tailored multiscale fusion of high-resolution
MS and Pan imagery", PE&RS 72(5).
Keys (1981), "Cubic convolution interpolation for digital image processing", IEEE TASSP 29(6).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .bands import COARSE_BANDS, FINE_BANDS
from .errors import OptionError, SceneError
from .scene import Scene
from .wald import DEGRADATION_METHODS, Kernel, PairModel, _keys_cubic

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_FINE_PIXELS",
    "PREDICTORS",
    "BandEstimate",
    "RegistrationEstimate",
    "estimate_registration",
    "estimate_scene_registration",
    "pair_model",
]

logger = logging.getLogger(__name__)

#: The 10 m bands each 20 m band is regressed on (spectral neighbours).
PREDICTORS: Mapping[str, tuple[str, ...]] = {
    "B05": ("B04",),
    "B06": ("B08",),
    "B07": ("B08",),
    "B8A": ("B08",),
    "B11": FINE_BANDS,
    "B12": FINE_BANDS,
}
#: At most this many 20 m pixels enter the regression (a regular subsample beyond it).
DEFAULT_MAX_SAMPLES = 1 << 16
#: :func:`estimate_scene_registration` uses the central crop of at most this many 10 m pixels.
DEFAULT_MAX_FINE_PIXELS = 2048 * 2048
#: Fine-pixel offsets of the neighbourhood from ``2 i``: covers the kernel centre ``2i + 0.5 + d``
#: +- 4.5 px, enough for |d| <= 1 and Gaussians up to sigma 1.2 (MTF 0.19).
_TAPS = np.arange(-4, 6)
_SIGMA_RANGE = (0.2, 3.0)
_OFFSET_LIMIT = 1.75


@dataclass(frozen=True)
class BandEstimate:
    """The fitted relation of one 20 m band to its 10 m predictors.

    Attributes
    ----------
    band : str
    predictors : tuple of str
    offset : (float, float)
        (rows, cols) of the chosen kernel's centre from the nominal ``2 i + 0.5``, 10 m pixels.
    kernel : Kernel
        The chosen kernel, sigma in 10 m pixels.
    residual : dict of str to float
        Per family (``"gaussian"``, ``"bicubic"``): RMS residual of its best fit over the band's
        standard deviation (dimensionless; lower is better); the lower one chose ``kernel``.
    offsets : dict of str to (float, float)
        The offset each family found.
    """

    band: str
    predictors: tuple[str, ...]
    offset: tuple[float, float]
    kernel: Kernel
    residual: Mapping[str, float]
    offsets: Mapping[str, tuple[float, float]]
    sigma_gaussian: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "band": self.band,
            "predictors": list(self.predictors),
            "offset": [round(v, 4) for v in self.offset],
            "kernel": self.kernel.to_dict(),
            "residual": {k: round(v, 6) for k, v in self.residual.items()},
            "offsets": {k: [round(x, 4) for x in v] for k, v in self.offsets.items()},
            "sigma_gaussian": round(self.sigma_gaussian, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BandEstimate:
        """Inverse of :meth:`to_dict`."""
        return cls(
            band=str(data["band"]),
            predictors=tuple(data["predictors"]),  # type: ignore[arg-type]
            offset=tuple(data["offset"]),  # type: ignore[arg-type]
            kernel=Kernel.from_dict(data["kernel"]),  # type: ignore[arg-type]
            residual=dict(data["residual"]),  # type: ignore[arg-type]
            offsets={k: tuple(v) for k, v in data["offsets"].items()},  # type: ignore[union-attr]
            sigma_gaussian=float(data.get("sigma_gaussian", 0.0)),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class RegistrationEstimate:
    """Offsets and kernels of all 20 m bands of a scene, and the scene's offset.

    Attributes
    ----------
    bands : tuple of BandEstimate
        ``COARSE_BANDS`` order.
    offset : (float, float)
        (rows, cols), 10 m pixels: the bands' offsets averaged with weights ``1 / residual**2`` (the
        precision of a band's fit grows with its signal-to-residual ratio: B8A on B08 leaves about
        2-8 % of the band unexplained, B05 on B04 about 40 %). The training pair is built with it:
        its 10 m input is shared by all six bands, so one offset per scene.
    kernel : Kernel
        The scene's kernel, pooled the same way: the family with the larger weight among the bands'
        choices, sigma the weighted mean of the bands' Gaussian sigmas. The training pair gives it to
        every band: per band the estimate is not stable (B05's sigma runs to the search limit on
        Coastal, where its regression on B04 explains least).
    samples : int
        20 m pixels the regression used.
    """

    bands: tuple[BandEstimate, ...]
    offset: tuple[float, float]
    kernel: Kernel
    samples: int

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "offset": [round(v, 4) for v in self.offset],
            "kernel": self.kernel.to_dict(),
            "samples": self.samples,
            "bands": [b.to_dict() for b in self.bands],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RegistrationEstimate:
        """Inverse of :meth:`to_dict`."""
        return cls(
            bands=tuple(BandEstimate.from_dict(b) for b in data["bands"]),  # type: ignore[union-attr]
            offset=tuple(data["offset"]),  # type: ignore[arg-type]
            kernel=Kernel.from_dict(data["kernel"]),  # type: ignore[arg-type]
            samples=int(data["samples"]),  # type: ignore[call-overload]
        )

    def lines(self) -> list[str]:
        """A human-readable table, one line per band, then the scene's offset."""
        out = [f"{'band':<5} {'on':<16} {'offset rows,cols':>17}  {'kernel':<24} {'resid. gauss/bicubic':>20}"]
        for b in self.bands:
            offset = f"{b.offset[0]:+.2f},{b.offset[1]:+.2f}"
            resid = f"{b.residual['gaussian']:.4f}/{b.residual['bicubic']:.4f}"
            out.append(f"{b.band:<5} {'+'.join(b.predictors):<16} {offset:>17}  {b.kernel.describe():<24} {resid:>20}")
        out.append(
            f"scene: offset of the 20 m grid {self.offset[0]:+.2f} rows, {self.offset[1]:+.2f} cols (10 m px), "
            f"kernel {self.kernel.describe()} ({self.samples} 20 m px sampled)"
        )
        return out


def _kernel_1d(kind: str, sigma: float, offset: float) -> np.ndarray:
    """Weights at ``_TAPS`` of a kernel centred at ``0.5 + offset`` (sum 1)."""
    x = _TAPS - 0.5 - offset
    weights = _keys_cubic(x / 2) if kind == "bicubic" else np.exp(-0.5 * (x / sigma) ** 2)
    total = weights.sum()
    return weights / total if total > 1e-12 else weights


class _Gram:
    """Second moments of the centred 10 x 10 neighbourhoods of the sampled 20 m pixels."""

    def __init__(self, fine: np.ndarray, coarse: np.ndarray, max_samples: int) -> None:
        height, width = coarse.shape[:2]
        rows = np.arange(2, (fine.shape[0] - 6) // 2 + 1)
        cols = np.arange(2, (fine.shape[1] - 6) // 2 + 1)
        rows, cols = rows[rows < height], cols[cols < width]
        stride = max(1, int(np.ceil(np.sqrt(rows.size * cols.size / max_samples))))
        rows, cols = rows[::stride], cols[::stride]
        if rows.size * cols.size < 64:
            raise SceneError(
                f"scene of {fine.shape[0]}x{fine.shape[1]} px is too small to estimate the band registration "
                "(needs at least 32x32 px)"
            )
        self.samples = rows.size * cols.size
        blocks = []
        for p in range(fine.shape[2]):
            windows = np.lib.stride_tricks.sliding_window_view(fine[..., p], (_TAPS.size, _TAPS.size))
            block = windows[np.ix_(2 * rows + _TAPS[0], 2 * cols + _TAPS[0])].reshape(self.samples, -1)
            blocks.append(block - block.mean(axis=0))
        design = np.concatenate(blocks, axis=1)
        self.gram = design.T @ design
        target = coarse[np.ix_(rows, cols)].reshape(self.samples, -1).astype(np.float64)
        target = target - target.mean(axis=0)
        self.cross = design.T @ target  # (4 * 100, bands)
        self.energy = np.sum(target**2, axis=0)
        flat = [COARSE_BANDS[b] for b in range(target.shape[1]) if not self.energy[b] > 0]
        n = _TAPS.size**2
        flat += [FINE_BANDS[p] for p in range(fine.shape[2]) if not self.gram[p * n : (p + 1) * n].any()]
        if flat:
            raise SceneError(f"band(s) {', '.join(flat)} constant: cannot estimate the band registration")

    def problem(self, band: int, predictors: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float]:
        """The Gram block (nP, 100, nP, 100), cross moments (nP, 100) and energy of ``band`` on its predictors."""
        n = _TAPS.size**2
        cols = np.concatenate([np.arange(p * n, (p + 1) * n) for p in predictors])
        k = len(predictors)
        gram = self.gram[np.ix_(cols, cols)].reshape(k, n, k, n)
        return gram, self.cross[cols, band].reshape(k, n), float(self.energy[band])


def _residual(problem: tuple[np.ndarray, np.ndarray, float], kernel: np.ndarray) -> float:
    """Relative RMS residual of a band regressed on its predictors, each blurred by ``kernel`` (100,)."""
    gram, cross, energy = problem
    a = np.tensordot(gram @ kernel, kernel, axes=([1], [0]))  # (nP, nP): kernel' G_pq kernel
    b = cross @ kernel
    explained = float(b @ np.linalg.lstsq(a, b, rcond=1e-12)[0])
    return float(np.sqrt(max(energy - explained, 0.0) / energy))


def _fit_family(gram: _Gram, band: int, predictors: Sequence[int], kind: str) -> tuple[float, float, float, float]:
    """Best (residual, sigma, row offset, col offset) of a kernel family for one band."""
    problem = gram.problem(band, predictors)

    def cost(theta: np.ndarray) -> float:
        sigma, dr, dc = theta if kind == "gaussian" else (1.0, *theta)
        if not _SIGMA_RANGE[0] <= sigma <= _SIGMA_RANGE[1] or max(abs(dr), abs(dc)) > _OFFSET_LIMIT:
            return 10.0
        kernel = np.outer(_kernel_1d(kind, sigma, dr), _kernel_1d(kind, sigma, dc)).ravel()
        return _residual(problem, kernel)

    offsets = np.arange(-1.0, 1.01, 0.5)
    sigmas = (0.7, 1.2) if kind == "gaussian" else (None,)
    grid = [np.array([dr, dc] if s is None else [s, dr, dc]) for s in sigmas for dr in offsets for dc in offsets]
    start = min(grid, key=cost)
    result = optimize.minimize(cost, start, method="Nelder-Mead", options={"xatol": 2e-3, "fatol": 1e-6})
    theta = result.x
    sigma, dr, dc = theta if kind == "gaussian" else (0.0, *theta)
    return float(result.fun), float(sigma), float(dr), float(dc)


def _check_arrays(fine: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fine, coarse = np.asarray(fine, np.float64), np.asarray(coarse, np.float64)
    if fine.ndim != 3 or fine.shape[2] != len(FINE_BANDS):
        raise OptionError(f"fine must be (H, W, {len(FINE_BANDS)}), got shape {fine.shape}")
    if coarse.ndim != 3 or coarse.shape[2] != len(COARSE_BANDS):
        raise OptionError(f"coarse must be (H/2, W/2, {len(COARSE_BANDS)}), got shape {coarse.shape}")
    if fine.shape[:2] != (2 * coarse.shape[0], 2 * coarse.shape[1]):
        raise SceneError(
            f"20 m bands are {coarse.shape[0]}x{coarse.shape[1]}, "
            f"not half the 10 m size {fine.shape[0]}x{fine.shape[1]}"
        )
    return fine, coarse


def estimate_registration(
    fine: np.ndarray, coarse: np.ndarray, *, max_samples: int = DEFAULT_MAX_SAMPLES
) -> RegistrationEstimate:
    """Estimate each 20 m band's offset against the 10 m grid and its blur relative to the 10 m bands.

    See the module docstring for the method. Memory and time are bounded by ``max_samples``
    (about ``3.3 kB`` per sampled 20 m pixel, a few seconds at the default) and the size of the
    arrays the caller passes: give a crop of a large scene (:func:`estimate_scene_registration`
    takes the central ``DEFAULT_MAX_FINE_PIXELS``).

    Parameters
    ----------
    fine : (H, W, 4) ndarray
        10 m bands, ``FINE_BANDS`` order, DN.
    coarse : (H/2, W/2, 6) ndarray
        20 m bands, ``COARSE_BANDS`` order, DN.
    max_samples : int
        Most 20 m pixels used (a regular subsample of the interior beyond it).

    Returns
    -------
    RegistrationEstimate
        Offsets in 10 m pixels from the nominal grid (20 m pixel ``i`` centred at ``2 i + 0.5``);
        Gaussian sigma in 10 m pixels.
    """
    fine, coarse = _check_arrays(fine, coarse)
    if max_samples < 64:
        raise OptionError(f"max_samples must be at least 64, got {max_samples}")
    gram = _Gram(fine, coarse, max_samples)
    estimates = []
    for c, band in enumerate(COARSE_BANDS):
        predictors = [FINE_BANDS.index(p) for p in PREDICTORS[band]]
        fits = {kind: _fit_family(gram, c, predictors, kind) for kind in ("gaussian", "bicubic")}
        kind = min(fits, key=lambda k: fits[k][0])
        _, sigma, dr, dc = fits[kind]
        estimates.append(
            BandEstimate(
                band=band,
                predictors=PREDICTORS[band],
                offset=(dr, dc),
                kernel=Kernel(kind, sigma),
                residual={k: v[0] for k, v in fits.items()},
                offsets={k: (v[2], v[3]) for k, v in fits.items()},
                sigma_gaussian=fits["gaussian"][1],
            )
        )
        logger.debug("registration %s: offset %+.3f %+.3f, %s", band, dr, dc, estimates[-1].kernel.describe())
    weights = np.array([1.0 / max(e.residual[e.kernel.kind], 1e-3) ** 2 for e in estimates])
    offsets = np.array([e.offset for e in estimates])
    offset = tuple(float(v) for v in weights @ offsets / weights.sum())
    bicubic = sum(w for w, e in zip(weights, estimates, strict=True) if e.kernel.kind == "bicubic")
    if bicubic * 2 > weights.sum():
        kernel = Kernel("bicubic")
    else:
        sigmas = np.array([e.sigma_gaussian for e in estimates])
        kernel = Kernel("gaussian", float(weights @ sigmas / weights.sum()))
    return RegistrationEstimate(bands=tuple(estimates), offset=offset, kernel=kernel, samples=gram.samples)  # type: ignore[arg-type]


def estimate_scene_registration(
    scene: Scene, *, max_fine_pixels: int = DEFAULT_MAX_FINE_PIXELS, max_samples: int = DEFAULT_MAX_SAMPLES
) -> RegistrationEstimate:
    """:func:`estimate_registration` on the central crop of ``scene`` of at most ``max_fine_pixels`` 10 m pixels.

    ``scene`` is a :class:`~ssc_edge.scene.Scene` or a band source (``shape`` and ``read(band, tile)``,
    :mod:`ssc_edge.io.sources`): only the crop is read, so a full tile costs the crop's memory. The
    crop's origin is even, so the 20 m grid keeps its phase.
    """
    from .io.sources import central_scene

    crop = central_scene(scene, max(32, int(np.sqrt(max_fine_pixels)) // 2 * 2))
    try:
        return estimate_registration(crop.fine(), crop.coarse(), max_samples=max_samples)
    except SceneError as exc:
        source = getattr(scene, "source", None) or getattr(getattr(scene, "scene", None), "source", None)
        where = f"{source}: " if source is not None else ""
        raise SceneError(f"{where}{exc}") from None


def pair_model(
    estimate: RegistrationEstimate | None,
    *,
    degradation: str = "auto",
    registration: str = "auto",
    mtf: Mapping[str, float] | None = None,
) -> PairModel:
    """The :class:`~ssc_edge.wald.PairModel` of a training pair from an estimate and the user's choices.

    Parameters
    ----------
    estimate : RegistrationEstimate or None
        Needed when ``degradation`` or ``registration`` is ``"auto"``.
    degradation : {"auto", "bicubic", "mtf"}
        ``"auto"``: every band gets the scene's estimated kernel (:attr:`RegistrationEstimate.kernel`;
        the relative blur of the 20 m bands, applied one scale down to both band groups, as the Wald
        protocol applies one kernel to both); else the nominal kernels of :meth:`PairModel.nominal`.
    registration : {"auto", "none"}
        ``"auto"``: the estimated scene offset; ``"none"``: the nominal grid.
    """
    if degradation not in ("auto", *DEGRADATION_METHODS):
        raise OptionError(f"degradation must be one of {('auto', *DEGRADATION_METHODS)}, got {degradation!r}")
    if registration not in ("auto", "none"):
        raise OptionError(f"registration must be 'auto' or 'none', got {registration!r}")
    if estimate is None and "auto" in (degradation, registration):
        raise OptionError("degradation or registration 'auto' needs a registration estimate")
    if degradation == "auto":
        kernel = estimate.kernel  # type: ignore[union-attr]
        model = PairModel(fine=(kernel,) * len(FINE_BANDS), coarse=(kernel,) * len(COARSE_BANDS))
    else:
        model = PairModel.nominal(degradation, mtf=mtf)
    offset = estimate.offset if registration == "auto" else (0.0, 0.0)  # type: ignore[union-attr]
    return PairModel(fine=model.fine, coarse=model.coarse, offset=offset)
