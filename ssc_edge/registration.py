"""Band registration and relative blur of the 20 m and 60 m bands, estimated from the scene itself.

Zero-shot sharpening trains one scale down and assumes that the degraded inputs relate to the
observed 20 m bands as the observed bands relate to the unseen 10 m truth. This module measures
that relation on the observed bands, without a reference: for each 20 m band, the sub-pixel
offset of its grid against the 10 m grid and its blur relative to the 10 m bands; the same for the
60 m bands (B01 on B02, B09 on B08) at ratio 6 (``ratio=6``: kernel centred at ``6i + 2.5 + d``).

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
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from .bands import COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from .bandset import SIXTY_INPUT_BANDS, RatioPairModel, band_ratio
from .errors import OptionError, SceneError
from .nodata import measured
from .sampling import valid_origins
from .scene import Scene, _describe
from .wald import DEGRADATION_METHODS, Kernel, PairModel, _check_grids, _keys_cubic, nominal_kernel

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_SAMPLES_60M",
    "DEFAULT_MAX_FINE_PIXELS",
    "MAX_SPREAD",
    "PREDICTORS",
    "PREDICTORS_60M",
    "BandEstimate",
    "RegistrationEstimate",
    "estimate_registration",
    "estimate_scene_registration",
    "pair_model",
    "sixty_pair_model",
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
#: The 10 m bands each 60 m band is regressed on: B01 (443 nm) on B02 (490 nm), B09 (945 nm) on B08.
PREDICTORS_60M: Mapping[str, tuple[str, ...]] = {"B01": ("B02",), "B09": ("B08",)}
#: At most this many 20 m pixels enter the regression (a regular subsample beyond it).
DEFAULT_MAX_SAMPLES = 1 << 16
#: At ratio 6 each sample's neighbourhood is 30 x 30 10 m pixels (9x the ratio-2 one): fewer samples.
DEFAULT_MAX_SAMPLES_60M = 1 << 13
#: Largest quadrant-to-whole offset difference (10 m px) of an estimate the training pair uses: half a 10 m
#: pixel, a twelfth of a 60 m pixel (the simulated 60 m offsets are recovered within 0.03-0.24 px).
MAX_SPREAD = 0.5
#: :func:`estimate_scene_registration` uses the central crop of at most this many 10 m pixels.
DEFAULT_MAX_FINE_PIXELS = 2048 * 2048
#: Per ratio, fine-pixel offsets of the neighbourhood from ``r i``. Ratio 2: the kernel centre
#: ``2i + 0.5 + d`` +- 4.5 px, enough for |d| <= 1 and Gaussians up to sigma 1.2 (MTF 0.19). Ratio 6:
#: ``6i + 2.5 + d`` +- 14.5 px, enough for |d| <= 3 and sigma 3.5 (MTF 0.16 at ratio 6; wider ones are
#: truncated, the search stops at 7.5), and for the imresize kernel (support +- 12 px).
_TAPS = {2: np.arange(-4, 6), 6: np.arange(-12, 18)}
#: Per ratio: the Gaussian sigma's search range (fine px), the largest offset searched, the starts.
_SIGMA_RANGE = {2: (0.2, 3.0), 6: (0.6, 7.5)}
_OFFSET_LIMIT = {2: 1.75, 6: 3.5}
_SIGMA_STARTS = {2: (0.7, 1.2), 6: (2.0, 3.2)}
_OFFSET_STARTS = {2: np.arange(-1.0, 1.01, 0.5), 6: np.arange(-2.0, 2.01, 0.5)}


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
        Coarse (20 m or 60 m) pixels the regression used.
    ratio : int
        2: the 20 m bands (``COARSE_BANDS``); 6: the 60 m bands (``VERY_COARSE_BANDS``).
    spread : float or None
        How far the estimate moves between the four quadrants of the crop: the largest |rows| or |cols|
        difference of a quadrant's scene offset from the whole crop's, 10 m px (``inf`` if a quadrant is
        too small to estimate); ``None`` when not measured (:func:`estimate_scene_registration` measures it
        at ratio 6, where a crop holds few 60 m pixels, each quadrant on a quarter of ``max_samples``).
    """

    bands: tuple[BandEstimate, ...]
    offset: tuple[float, float]
    kernel: Kernel
    samples: int
    ratio: int = 2
    spread: float | None = None

    @property
    def stable(self) -> bool:
        """False when :attr:`spread` exceeds :data:`MAX_SPREAD` (not measured: True)."""
        return self.spread is None or self.spread <= MAX_SPREAD

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "offset": [round(v, 4) for v in self.offset],
            "kernel": self.kernel.to_dict(),
            "samples": self.samples,
            "bands": [b.to_dict() for b in self.bands],
            "ratio": self.ratio,
            "spread": None if self.spread is None else round(self.spread, 4) if np.isfinite(self.spread) else "inf",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RegistrationEstimate:
        """Inverse of :meth:`to_dict`."""
        return cls(
            bands=tuple(BandEstimate.from_dict(b) for b in data["bands"]),  # type: ignore[union-attr]
            offset=tuple(data["offset"]),  # type: ignore[arg-type]
            kernel=Kernel.from_dict(data["kernel"]),  # type: ignore[arg-type]
            samples=int(data["samples"]),  # type: ignore[call-overload]
            ratio=int(data.get("ratio", 2)),  # type: ignore[call-overload]
            spread=None if data.get("spread") is None else float(data["spread"]),  # type: ignore[arg-type]
        )

    def lines(self) -> list[str]:
        """A human-readable table, one line per band, then the scene's offset."""
        out = [f"{'band':<5} {'on':<16} {'offset rows,cols':>17}  {'kernel':<24} {'resid. gauss/bicubic':>20}"]
        for b in self.bands:
            offset = f"{b.offset[0]:+.2f},{b.offset[1]:+.2f}"
            resid = f"{b.residual['gaussian']:.4f}/{b.residual['bicubic']:.4f}"
            out.append(f"{b.band:<5} {'+'.join(b.predictors):<16} {offset:>17}  {b.kernel.describe():<24} {resid:>20}")
        grid = 10 * self.ratio
        out.append(
            f"scene: offset of the {grid} m grid {self.offset[0]:+.2f} rows, {self.offset[1]:+.2f} cols (10 m px), "
            f"kernel {self.kernel.describe()} ({self.samples} {grid} m px sampled)"
        )
        if self.spread is not None:
            verdict = "stable" if self.stable else f"NOT stable (over {MAX_SPREAD} px): not used for the training pair"
            out.append(f"quadrants of the crop: offsets within {self.spread:.2f} px of the whole's, {verdict}")
        return out


def _kernel_1d(kind: str, sigma: float, offset: float, ratio: int = 2) -> np.ndarray:
    """Weights at ``_TAPS[ratio]`` of a kernel centred at ``(ratio - 1) / 2 + offset`` (sum 1)."""
    x = _TAPS[ratio] - (ratio - 1) / 2 - offset
    weights = _keys_cubic(x / ratio) if kind == "bicubic" else np.exp(-0.5 * (x / sigma) ** 2)
    total = weights.sum()
    return weights / total if total > 1e-12 else weights


def _usable(fine: np.ndarray, coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, ratio: int) -> np.ndarray | None:
    """(rows, cols) bool: the candidate coarse pixels that enter the regression, or None when all of them do.

    A coarse pixel enters only when it and every 10 m pixel of its ``n x n`` neighbourhood (``_TAPS[ratio]``
    from ``ratio * i``) are valid in every band (:func:`ssc_edge.nodata.measured`: no 0 DN, no NaN). None
    (every pixel of both arrays valid) keeps the regular subsample of a scene without no-data unchanged.
    """
    fine_ok, coarse_ok = measured(fine), measured(coarse)
    if fine_ok.all() and coarse_ok.all():
        return None
    taps = _TAPS[ratio]
    whole = valid_origins(~fine_ok, ratio * rows + taps[0], ratio * cols + taps[0], patch=taps.size, margin=0)
    return whole & coarse_ok[np.ix_(rows, cols)]


def _too_few(shape: tuple[int, ...], ratio: int, samples: int, *, nodata: bool) -> str:
    """The message of a scene with fewer than 64 usable coarse pixels (too small, or too much no-data)."""
    grid, n = 10 * ratio, _TAPS[ratio].size
    if nodata:
        return (
            f"only {samples} {grid} m pixels of the {shape[0]}x{shape[1]} px scene are valid with their {n}x{n} "
            f"neighbourhood of 10 m pixels (no-data: 0 DN or NaN in any band): too few to estimate the band "
            f"registration of the {grid} m bands (needs 64)"
        )
    side = 16 * ratio
    return (
        f"scene of {shape[0]}x{shape[1]} px is too small to estimate the band registration "
        f"of the {grid} m bands (needs at least {side}x{side} px)"
    )


class _Gram:
    """Second moments of the centred ``n x n`` fine neighbourhoods of the sampled coarse pixels
    (``n = len(_TAPS[ratio])``: 10 at ratio 2, 30 at ratio 6), for the fine bands ``used``."""

    def __init__(
        self,
        fine: np.ndarray,
        coarse: np.ndarray,
        max_samples: int,
        *,
        ratio: int = 2,
        names: Sequence[str] = COARSE_BANDS,
        used: Sequence[int] = tuple(range(len(FINE_BANDS))),
    ) -> None:
        taps = _TAPS[ratio]
        self.ratio, self.used = ratio, tuple(used)
        # coarse pixels whose neighbourhood [r i + taps[0], r i + taps[-1]] lies inside the fine grid
        rows, cols = (np.arange(-(taps[0] // ratio), min((n - 1 - taps[-1]) // ratio + 1, m))
                      for n, m in zip(fine.shape[:2], coarse.shape[:2], strict=True))  # fmt: skip
        usable = _usable(fine, coarse, rows, cols, ratio)
        total = rows.size * cols.size if usable is None else int(np.count_nonzero(usable))
        stride = max(1, int(np.ceil(np.sqrt(total / max_samples))))
        while usable is not None and np.count_nonzero(usable[::stride, ::stride]) > max_samples:
            stride += 1
        rows, cols = rows[::stride], cols[::stride]
        keep = None if usable is None else usable[::stride, ::stride].ravel()
        self.samples = rows.size * cols.size if keep is None else int(np.count_nonzero(keep))
        if self.samples < 64:
            raise SceneError(_too_few(fine.shape, ratio, self.samples, nodata=keep is not None))
        blocks = []
        for p in self.used:
            windows = np.lib.stride_tricks.sliding_window_view(fine[..., p], (taps.size, taps.size))
            block = windows[np.ix_(ratio * rows + taps[0], ratio * cols + taps[0])].reshape(rows.size * cols.size, -1)
            block = block if keep is None else block[keep]
            blocks.append(block - block.mean(axis=0))
        design = np.concatenate(blocks, axis=1)
        self.gram = design.T @ design
        target = coarse[np.ix_(rows, cols)].reshape(rows.size * cols.size, -1).astype(np.float64)
        target = target if keep is None else target[keep]
        target = target - target.mean(axis=0)
        self.cross = design.T @ target  # (len(used) * n * n, bands)
        self.energy = np.sum(target**2, axis=0)
        flat = [names[b] for b in range(target.shape[1]) if not self.energy[b] > 0]
        n = taps.size**2
        flat += [FINE_BANDS[p] for i, p in enumerate(self.used) if not self.gram[i * n : (i + 1) * n].any()]
        if flat:
            raise SceneError(f"band(s) {', '.join(flat)} constant: cannot estimate the band registration")

    def problem(self, band: int, predictors: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float]:
        """The Gram block (nP, n², nP, n²), cross moments (nP, n²) and energy of ``band`` on its predictors
        (``predictors``: indices into ``FINE_BANDS``, each among ``used``)."""
        n = _TAPS[self.ratio].size ** 2
        predictors = [self.used.index(p) for p in predictors]
        cols = np.concatenate([np.arange(p * n, (p + 1) * n) for p in predictors])
        k = len(predictors)
        gram = self.gram[np.ix_(cols, cols)].reshape(k, n, k, n)
        return gram, self.cross[cols, band].reshape(k, n), float(self.energy[band])


def _residual(problem: tuple[np.ndarray, np.ndarray, float], kernel: np.ndarray) -> float:
    """Relative RMS residual of a band regressed on its predictors, each blurred by ``kernel`` (n²,)."""
    gram, cross, energy = problem
    a = np.tensordot(gram @ kernel, kernel, axes=([1], [0]))  # (nP, nP): kernel' G_pq kernel
    b = cross @ kernel
    explained = float(b @ np.linalg.lstsq(a, b, rcond=1e-12)[0])
    return float(np.sqrt(max(energy - explained, 0.0) / energy))


def _fit_family(gram: _Gram, band: int, predictors: Sequence[int], kind: str) -> tuple[float, float, float, float]:
    """Best (residual, sigma, row offset, col offset) of a kernel family for one band."""
    problem = gram.problem(band, predictors)
    ratio = gram.ratio
    low, high = _SIGMA_RANGE[ratio]

    def cost(theta: np.ndarray) -> float:
        sigma, dr, dc = theta if kind == "gaussian" else (1.0, *theta)
        if not low <= sigma <= high or max(abs(dr), abs(dc)) > _OFFSET_LIMIT[ratio]:
            return 10.0
        kernel = np.outer(_kernel_1d(kind, sigma, dr, ratio), _kernel_1d(kind, sigma, dc, ratio)).ravel()
        return _residual(problem, kernel)

    offsets = _OFFSET_STARTS[ratio]
    sigmas = _SIGMA_STARTS[ratio] if kind == "gaussian" else (None,)
    grid = [np.array([dr, dc] if s is None else [s, dr, dc]) for s in sigmas for dr in offsets for dc in offsets]
    start = min(grid, key=cost)
    result = optimize.minimize(cost, start, method="Nelder-Mead", options={"xatol": 2e-3, "fatol": 1e-6})
    theta = result.x
    sigma, dr, dc = theta if kind == "gaussian" else (0.0, *theta)
    return float(result.fun), float(sigma), float(dr), float(dc)


def _band_set(ratio: int) -> tuple[tuple[str, ...], Mapping[str, tuple[str, ...]]]:
    """The coarse bands and their predictors at ``ratio`` (2: the 20 m bands; 6: the 60 m bands)."""
    if ratio == 2:
        return COARSE_BANDS, PREDICTORS
    if ratio == 6:
        return VERY_COARSE_BANDS, PREDICTORS_60M
    raise OptionError(f"ratio must be 2 (20 m bands) or 6 (60 m bands), got {ratio!r}")


def _weights(bands: Sequence[BandEstimate]) -> np.ndarray:
    """Pooling weights of the bands' estimates, ``1 / residual**2`` of each band's chosen kernel."""
    return np.array([1.0 / max(b.residual[b.kernel.kind], 1e-3) ** 2 for b in bands])


def _pooled_gaussian_sigma(bands: Sequence[BandEstimate]) -> float:
    """The bands' Gaussian sigmas averaged with :func:`_weights`, 10 m px (whichever family each band chose)."""
    return float(_weights(bands) @ np.array([b.sigma_gaussian for b in bands]) / _weights(bands).sum())


def estimate_registration(
    fine: np.ndarray, coarse: np.ndarray, *, max_samples: int | None = None, ratio: int = 2
) -> RegistrationEstimate:
    """Estimate each coarse band's offset against the 10 m grid and its blur relative to the 10 m bands.

    See the module docstring for the method. Memory and time are bounded by ``max_samples``
    (about ``3.3 kB`` per sampled 20 m pixel, a few seconds at the default; ``14 kB`` per 60 m
    pixel) and the size of the arrays the caller passes: give a crop of a large scene
    (:func:`estimate_scene_registration` takes the central ``DEFAULT_MAX_FINE_PIXELS``).

    Parameters
    ----------
    fine : (H, W, 4) ndarray
        10 m bands, ``FINE_BANDS`` order, DN.
    coarse : (H/r, W/r, C) ndarray
        ``ratio`` 2: the 20 m bands, ``COARSE_BANDS`` order; 6: the 60 m bands, ``VERY_COARSE_BANDS``
        order. DN.
    max_samples : int, optional
        Most coarse pixels used (a regular subsample of the interior beyond it); default
        ``DEFAULT_MAX_SAMPLES`` (ratio 2) or ``DEFAULT_MAX_SAMPLES_60M`` (ratio 6).
    ratio : {2, 6}

    Returns
    -------
    RegistrationEstimate
        Offsets in 10 m pixels from the nominal grid (coarse pixel ``i`` centred at
        ``r i + (r - 1) / 2``); Gaussian sigma in 10 m pixels.
    """
    names, table = _band_set(ratio)
    fine, coarse = np.asarray(fine, np.float64), np.asarray(coarse, np.float64)
    if fine.ndim != 3 or fine.shape[2] != len(FINE_BANDS):
        raise OptionError(f"fine must be (H, W, {len(FINE_BANDS)}), got shape {fine.shape}")
    if coarse.ndim != 3 or coarse.shape[2] != len(names):
        raise OptionError(f"coarse must be (H/{ratio}, W/{ratio}, {len(names)}), got shape {coarse.shape}")
    _check_grids(fine, coarse, ratio)
    if max_samples is None:
        max_samples = DEFAULT_MAX_SAMPLES if ratio == 2 else DEFAULT_MAX_SAMPLES_60M
    if max_samples < 64:
        raise OptionError(f"max_samples must be at least 64, got {max_samples}")
    used = sorted({FINE_BANDS.index(p) for band in names for p in table[band]})
    gram = _Gram(fine, coarse, max_samples, ratio=ratio, names=names, used=used)
    estimates = []
    for c, band in enumerate(names):
        predictors = [FINE_BANDS.index(p) for p in table[band]]
        fits = {kind: _fit_family(gram, c, predictors, kind) for kind in ("gaussian", "bicubic")}
        kind = min(fits, key=lambda k: fits[k][0])
        _, sigma, dr, dc = fits[kind]
        estimates.append(
            BandEstimate(
                band=band,
                predictors=table[band],
                offset=(dr, dc),
                kernel=Kernel(kind, sigma),
                residual={k: v[0] for k, v in fits.items()},
                offsets={k: (v[2], v[3]) for k, v in fits.items()},
                sigma_gaussian=fits["gaussian"][1],
            )
        )
        logger.debug("registration %s: offset %+.3f %+.3f, %s", band, dr, dc, estimates[-1].kernel.describe())
    weights = _weights(estimates)
    offsets = np.array([e.offset for e in estimates])
    offset = tuple(float(v) for v in weights @ offsets / weights.sum())
    bicubic = sum(w for w, e in zip(weights, estimates, strict=True) if e.kernel.kind == "bicubic")
    kernel = Kernel("bicubic") if bicubic * 2 > weights.sum() else Kernel("gaussian", _pooled_gaussian_sigma(estimates))
    return RegistrationEstimate(bands=tuple(estimates), offset=offset, kernel=kernel, samples=gram.samples, ratio=ratio)  # type: ignore[arg-type]


def estimate_scene_registration(
    scene: Scene,
    *,
    max_fine_pixels: int = DEFAULT_MAX_FINE_PIXELS,
    max_samples: int | None = None,
    ratio: int = 2,
) -> RegistrationEstimate:
    """:func:`estimate_registration` on the central crop of ``scene`` of at most ``max_fine_pixels`` 10 m pixels.

    ``scene`` is a :class:`~ssc_edge.scene.Scene` or a band source (:func:`ssc_edge.io.sources.central_scene`
    reads only the crop, its origin a multiple of ``ratio``). ``ratio=6`` needs both 60 m bands with data
    (:class:`SceneError` otherwise).
    """
    from .io.sources import central_scene

    names, _ = _band_set(ratio)
    crop = central_scene(scene, max(16 * ratio, int(np.sqrt(max_fine_pixels))), with_60m=ratio == 6)
    try:
        missing = [b for b in names if b not in crop.bands]
        if missing:
            raise SceneError(f"no usable {', '.join(missing)} (missing or all 0 DN): cannot estimate its registration")
        coarse = crop.coarse() if ratio == 2 else np.stack([crop.bands[b] for b in names], axis=-1)
        estimate = estimate_registration(crop.fine(), coarse, max_samples=max_samples, ratio=ratio)
        if ratio == 6:
            quarter = (max_samples or DEFAULT_MAX_SAMPLES_60M) // 4  # the four quadrants cost one more estimate
            estimate = replace(estimate, spread=_quadrant_spread(crop.fine(), coarse, estimate, max(64, quarter)))
        return estimate
    except SceneError as exc:
        raise SceneError(f"{_describe(getattr(scene, 'source', None))}{exc}") from None


def _quadrant_spread(fine: np.ndarray, coarse: np.ndarray, whole: RegistrationEstimate, max_samples: int) -> float:
    """Largest |rows| or |cols| difference of the four quadrants' scene offsets from ``whole``'s, 10 m px."""
    ratio = whole.ratio
    half_c = (coarse.shape[0] // 2, coarse.shape[1] // 2)
    spread = 0.0
    for r, c in ((0, 0), (0, half_c[1]), (half_c[0], 0), half_c):
        part = coarse[r : r + half_c[0], c : c + half_c[1]]
        fine_part = fine[ratio * r : ratio * (r + half_c[0]), ratio * c : ratio * (c + half_c[1])]
        try:
            offset = estimate_registration(fine_part, part, max_samples=max_samples, ratio=ratio).offset
        except SceneError:  # a quadrant too small or flat: the estimate's stability is unknown
            return float("inf")
        spread = max(spread, *(abs(a - b) for a, b in zip(offset, whole.offset, strict=True)))
    return float(spread)


def _check_choices(degradation: str, registration: str, *, estimated: bool, needs: str) -> None:
    """Raise :class:`OptionError` unless ``degradation`` and ``registration`` name a training pair's options, and
    unless ``"auto"`` has its estimates (``estimated``; ``needs`` names them)."""
    if degradation not in ("auto", *DEGRADATION_METHODS):
        raise OptionError(f"degradation must be one of {('auto', *DEGRADATION_METHODS)}, got {degradation!r}")
    if registration not in ("auto", "none"):
        raise OptionError(f"registration must be 'auto' or 'none', got {registration!r}")
    if not estimated and "auto" in (degradation, registration):
        raise OptionError(f"degradation or registration 'auto' needs {needs}")


def pair_model(
    estimate: RegistrationEstimate | None,
    *,
    degradation: str = "auto",
    registration: str = "auto",
) -> PairModel:
    """The :class:`~ssc_edge.wald.PairModel` of a training pair from ``estimate`` (needed when ``degradation`` or
    ``registration`` is ``"auto"``) and the user's choices.

    Parameters
    ----------
    degradation : {"auto", "bicubic", "mtf"}
        ``"auto"``: every band gets the scene's estimated kernel (:attr:`RegistrationEstimate.kernel`;
        the relative blur of the 20 m bands, applied one scale down to both band groups, as the Wald
        protocol applies one kernel to both); else the nominal kernels of :meth:`PairModel.nominal`.
    registration : {"auto", "none"}
        ``"auto"``: the estimated scene offset; ``"none"``: the nominal grid.
    """
    _check_choices(degradation, registration, estimated=estimate is not None, needs="a registration estimate")
    if degradation == "auto":
        kernel = estimate.kernel  # type: ignore[union-attr]
        model = PairModel(fine=(kernel,) * len(FINE_BANDS), coarse=(kernel,) * len(COARSE_BANDS))
    else:
        model = PairModel.nominal(degradation)
    offset = estimate.offset if registration == "auto" else (0.0, 0.0)  # type: ignore[union-attr]
    return PairModel(fine=model.fine, coarse=model.coarse, offset=offset)


def sixty_pair_model(
    estimate60: RegistrationEstimate | None,
    estimate20: RegistrationEstimate | None,
    *,
    degradation: str = "auto",
    registration: str = "auto",
) -> RatioPairModel:
    """The :class:`~ssc_edge.bandset.RatioPairModel` of the 60 m model's ratio-6 training pair.

    Parameters
    ----------
    estimate60, estimate20 : RegistrationEstimate or None
        The scene's 60 m (``ratio=6``) and 20 m estimates; needed when ``degradation`` or
        ``registration`` is ``"auto"``.
    degradation : {"auto", "bicubic", "mtf"}
        ``"auto"``: the pair keeps the relative blur the scene shows, as the 20 m pair does. If the
        60 m bands' pooled kernel is ``imresize``'s, every band is decimated with it (``imresize(x,
        1/6)`` of each band). If it is a Gaussian of sigma ``s60`` (10 m px, relative to the 10 m
        bands), the 10 m bands and the 60 m bands get sigma ``s60`` on their own grids and the 20 m
        bands ``sqrt((35 s20**2 + s60**2) / 4)`` 20 m px (``s20`` the 20 m bands' pooled Gaussian):
        for Gaussians, variances add, and these are the widths that make the degraded 60 m and
        20 m bands stand to the degraded 10 m bands, in degraded pixels, as the observed ones
        stand in observed pixels (``q_b**2 k_b**2 = (r**2 - 1) s_b**2 + k_10**2`` with
        ``k_10 = k_60``). ``"mtf"``: each band's nominal MTF Gaussian at ratio 6 (DSen2's pair);
        ``"bicubic"``: ``imresize(x, 1/6)``.
    registration : {"auto", "none"}
        ``"auto"``: the 60 m bands at the 60 m estimate's offset, the 20 m bands at the 20 m one's;
        ``"none"``: the nominal grids.

    A 60 m estimate that is not :attr:`~RegistrationEstimate.stable` (its crop's quadrants disagree by more
    than :data:`MAX_SPREAD`) is not used: ``"auto"`` then gives the nominal MTF kernels and the nominal 60 m
    grid (the 20 m bands keep their estimated offset).
    """
    both = estimate60 is not None and estimate20 is not None
    _check_choices(degradation, registration, estimated=both, needs="the 60 m and 20 m registration estimates")
    trusted = estimate60 is not None and estimate60.stable
    if degradation == "auto" and not trusted:
        degradation = "mtf"
    if degradation == "auto" and estimate60.kernel.kind == "gaussian":  # type: ignore[union-attr]
        s60 = estimate60.kernel.sigma  # type: ignore[union-attr]
        s20 = float(np.sqrt((35 * _pooled_gaussian_sigma(estimate20.bands) ** 2 + s60**2) / 4))  # type: ignore[arg-type]
        kernels = {b: Kernel("gaussian", s20 if band_ratio(b) == 2 else s60) for b in SIXTY_INPUT_BANDS}
    else:  # "auto" with an imresize-like estimate takes imresize's kernel; a named method its own
        method = "bicubic" if degradation == "auto" else degradation
        kernels = {b: nominal_kernel(b, method, ratio=6) for b in SIXTY_INPUT_BANDS}
    offsets: dict[str, tuple[float, float]] = {}
    if registration == "auto":
        if trusted:
            offsets |= {b: estimate60.offset for b in VERY_COARSE_BANDS}  # type: ignore[union-attr]
        offsets |= {b: estimate20.offset for b in COARSE_BANDS}  # type: ignore[union-attr]
    return RatioPairModel(kernels=kernels, offsets=offsets)
