"""Full-resolution quality of a sharpened product, without a reference.

On a real product nobody observes the 20 m bands at 10 m, so the sharpened bands are judged by
their agreement with what *is* observed: the 20 m bands (spectral consistency) and the 10 m bands
(spatial consistency). Every index here takes

- ``fused`` : (H, W, 6) sharpened 20 m bands on the 10 m grid, DN, ``COARSE_BANDS`` order;
- ``fine`` : (H, W, 4) observed 10 m bands, DN, ``FINE_BANDS`` order;
- ``coarse`` : (H/2, W/2, 6) observed 20 m bands, DN, ``COARSE_BANDS`` order;

(on a reduced-resolution file, read "10 m" as its fine grid and "20 m" as its coarse grid).

Indexes
-------
Definitions, ideal values and the rules for flat windows are tabled in ``docs/quality.md``: Wald
consistency, "reprojection" (per-band SRE in dB, SAM in degrees, ERGAS and Q2n of ``degrade(fused)``
against ``coarse`` with the scene's degradation; Wald et al. 1997, the reprojection protocol of Ciotola
et al.); Q2n (Garzelli and Nencini 2009, IEEE GRSL 6(4)), in non-overlapping 32 x 32 blocks;
D_lambda^(K) (Khan, Alparone, Chanussot 2009, IEEE TGRS 47(11)); QNR's D_lambda and D_s (Alparone et
al. 2008, PE&RS 74(2)), in 32 x 32 sliding windows on the 10 m grid and 16 x 16 on the 20 m grid; QNR
and HQNR (Aiazzi et al. 2014); D_rho (Scarpa, Ciotola et al. 2022, Remote Sensing 14(8)). D_s and
D_rho compare each 20 m band with its best-matching 10 m band: the one whose degradation to 20 m
correlates best with it over the scene (observed data only, so an estimate cannot choose its own
reference). Q2n deviates from Vivone et al.'s toolbox (``q2n.m``) in two points: float64 values (the
toolbox first casts to uint16), and each band mirrored from itself (the MATLAB padding loop copies band
1 into every band).

No-data
-------
No-data never counts (:mod:`ssc_edge.nodata`): a NaN in ``fused`` (the runtime's nodata), 0 DN in
``fine`` or ``coarse`` (the readers' no-data), and ``fused`` wherever ``fine`` or ``coarse`` is no-data
(whatever value a product holds there: a model's raw output on 0 DN input) are missing values, which
every filter (degradation, upsampling, MTF) spreads over its support; a pixel, block or window counts
only when every value in it is present, and each index averages over those (NaN when no-data leaves
none, e.g. a scene of a single 32 x 32 Q2n block holding one no-data pixel).

Window by window
----------------
Every index is a sum over pixels, sliding windows or blocks, so :class:`QualityAccumulator` takes
the scene in strips of rows (with a margin of rows above and below for the filters and the
windows) and gives exactly the whole-image values (to float rounding) in memory bounded by the
scene width; :func:`full_resolution_quality` is that accumulator run over arrays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .bands import COARSE_BANDS, FINE_BANDS, MTF_NYQUIST
from .errors import OptionError, SceneError
from .wald import DEGRADATION_METHODS, PairModel, decimate, degrade, mtf_sigma, upsample

logger = logging.getLogger(__name__)

__all__ = [
    "Degradation",
    "FullResolutionQuality",
    "QualityAccumulator",
    "QualityHook",
    "RowAssembler",
    "degradation_function",
    "model_degradation",
    "training_degradation",
    "pair_degradation",
    "full_resolution_quality",
    "q2n",
    "format_full_resolution_table",
]

#: A degradation: a method name of :func:`ssc_edge.wald.degrade` or ``degrade(image) -> coarse``.
Degradation = str | Callable[[np.ndarray], np.ndarray]

RATIO = 2
Q2N_BLOCK = 32  # Garzelli and Nencini 2009 / the toolbox: 32 x 32 blocks
QNR_BLOCK = 32  # Alparone et al. 2008 / the toolbox: S = 32 at full resolution
DEFAULT_STRIP = 128  # fine rows per strip: a multiple of 2 * 32 so blocks never straddle strips
MARGIN_TOP = 16  # fine rows above a strip: degradation and low-pass kernels (bicubic reaches 4, MTF ~6)
MARGIN_BOTTOM = 2 * QNR_BLOCK + 16  # below: the 32-row windows (and 16 coarse = 32 fine rows) + kernels
_TINY = 1e-12
#: Most 10 m pixels :class:`QualityHook` scores by default (2 strips of a 10980-px-wide tile).
HOOK_PIXELS = 3_000_000
#: Share of a scene's strips :class:`QualityHook` scores by default (at least one strip). The indexes cost
#: about 4 us per scored 10 m pixel on one core against about 0.8 us per pixel for the network in bf16 on
#: 2 AMX cores, and they run in the I/O thread beside the network: scoring every pixel made ``infer`` 3 to 5
#: times slower than its network on 2 cores (``benchmarks/io_thread.py``). A sample of 1/16 of the rows keeps
#: the pass under about a third of the bf16 network's time on any scene larger than one strip.
HOOK_FRACTION = 1 / 16


def degradation_function(degradation: Degradation, *, bands: Sequence[str] = COARSE_BANDS) -> Callable:
    """``degrade(image) -> coarse`` for a method name (``wald.DEGRADATION_METHODS``) or a callable.

    Parameters
    ----------
    degradation : str or callable
        ``"bicubic"`` (MATLAB ``imresize(x, 0.5)``) or ``"mtf"`` (Gaussian PSF per band from
        ``bands.MTF_NYQUIST``), or a callable taking (H, W, C) DN and returning (H/2, W/2, C) DN
        whose kernel reaches at most 8 fine pixels (the strip margin).
    bands : sequence of str
        Band names of the images it will receive (for the MTF gains).
    """
    if callable(degradation):
        return degradation
    if degradation not in DEGRADATION_METHODS:
        raise OptionError(f"unknown degradation {degradation!r}; choose one of {', '.join(DEGRADATION_METHODS)}")
    gains = [MTF_NYQUIST[b] for b in bands]
    return lambda image: degrade(image, ratio=RATIO, method=degradation, mtf=gains)


def pair_degradation(pair: PairModel) -> Callable[[np.ndarray], np.ndarray]:
    """The degradation of an estimated training pair at the application scale, as ``degrade(image) -> coarse``.

    Each 20 m band of a (H, W, 6) DN image is blurred with its kernel of ``pair`` (the scene's relative
    blur, :mod:`ssc_edge.registration`) and decimated onto the 20 m grid as the scene observes it,
    moved by ``pair.offset`` 10 m pixels (:func:`ssc_edge.wald.decimate`): the consistency check then
    compares like with like on a scene whose 20 m bands are blurred or shifted off the nominal grid.
    """
    return lambda image: decimate(image, pair.coarse, shift=pair.offset)


def model_degradation(training: dict | None, registration: dict | None = None) -> Degradation:
    """The degradation a model was fitted with, from its metadata (``ssc_edge.training`` and ``ssc_edge.registration``).

    The estimated pair (``registration["pair_model"]``, :func:`pair_degradation`) when the fit used one;
    else ``training["degradation"]`` when it names a method of :func:`ssc_edge.wald.degrade`; else
    ``"mtf"`` (the sensor model).
    """
    method, pair = training_degradation(training, registration)
    if pair and "coarse" in pair:  # a 20 m model's PairModel (a 60 m model's RatioPairModel has "kernels")
        return pair_degradation(PairModel.from_dict(pair))
    return method


def training_degradation(training: dict | None, registration: dict | None = None) -> tuple[str, dict | None]:
    """What a model's metadata says its training pair was degraded with.

    Returns ``training["degradation"]`` when it names a method of :func:`ssc_edge.wald.degrade`, else
    ``"mtf"`` (``auto`` names none), and ``registration["pair_model"]`` (a 20 m ``PairModel``'s dict, with
    ``"coarse"``, or a 60 m ``RatioPairModel``'s, with ``"kernels"``) or None.
    """
    pair = registration.get("pair_model") if isinstance(registration, dict) else None
    name = training.get("degradation") if isinstance(training, dict) else None
    return (name if name in DEGRADATION_METHODS else "mtf"), pair


# ------------------------------------------------------------------------------------------------ Q2n
def _conjugate(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[..., :1], -x[..., 1:]], axis=-1)


def _hypercomplex_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of 2^n-component numbers on the last axis.

    With ``x = (a, b)``, ``y = (c, d)`` halves: ``(a c - conj(d) b, conj(a) conj(d) + c conj(b))``,
    the convention of Garzelli and Nencini's ``onion_mult`` (for 2 components, complex
    multiplication). Written here as one recursion on whole arrays (blocks x pixels x components).
    """
    n = x.shape[-1]
    if n == 1:
        return x * y
    h = n // 2
    a, b, c, d = x[..., :h], x[..., h:], y[..., :h], y[..., h:]
    if n == 2:
        return np.concatenate([a * c - d * b, a * d + c * b], axis=-1)
    first = _hypercomplex_product(a, c) - _hypercomplex_product(_conjugate(d), b)
    second = _hypercomplex_product(_conjugate(a), _conjugate(d)) + _hypercomplex_product(c, _conjugate(b))
    return np.concatenate([first, second], axis=-1)


def _q2n_block_values(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """|Q2n| of each block: ``reference``/``estimate`` (blocks, pixels, 2^n components), float64."""
    n = reference.shape[1]
    mean = reference.mean(axis=1, keepdims=True)
    std = reference.std(axis=1, ddof=1, keepdims=True)
    std = np.where(std == 0, np.finfo(np.float64).eps, std)
    ref = (reference - mean) / std + 1
    # the toolbox shifts without scaling where the reference block's mean is exactly 0
    est = np.where(mean == 0, estimate - mean + 1, (estimate - mean) / std + 1)
    est = _conjugate(est)
    k = n / (n - 1)
    m1, m2 = ref.mean(axis=1), est.mean(axis=1)  # (blocks, comps)
    mod1m, mod2m = np.sum(m1**2, axis=1), np.sum(m2**2, axis=1)  # squared moduli of the means
    int1 = k * np.mean(np.sum(ref**2, axis=2), axis=1)
    int2 = k * np.mean(np.sum(est**2, axis=2), axis=1)
    variance = int1 + int2 - k * (mod1m + mod2m)
    mean_bias = 2 * np.sqrt(mod1m * mod2m) / np.where(mod1m + mod2m == 0, 1.0, mod1m + mod2m)
    product = k * _hypercomplex_product(ref, est).mean(axis=1) - k * _hypercomplex_product(m1, m2)
    flat = np.abs(variance) <= _TINY * np.maximum(int1 + int2, 1.0)
    q = product * (mean_bias * 2 / np.where(flat, 1.0, variance))[:, None]
    modulus = np.sqrt(np.sum(q**2, axis=1))
    return np.where(flat, mean_bias, modulus)


def _pad_components(image: np.ndarray) -> np.ndarray:
    bands = image.shape[-1]
    size = 1 << max(1, math.ceil(math.log2(bands)))
    if size == bands:
        return image
    return np.concatenate([image, np.zeros((*image.shape[:2], size - bands))], axis=-1)


def _q2n_sums(reference: np.ndarray, estimate: np.ndarray, *, block: int, pad_rows: bool) -> tuple[float, int]:
    """(sum of block |Q2n|, block count) of two (h, w, C) images whose height is a multiple of ``block``
    (or the last rows of the image, mirrored to one when ``pad_rows``)."""
    reference = _pad_components(np.asarray(reference, dtype=np.float64))
    estimate = _pad_components(np.asarray(estimate, dtype=np.float64))
    rows = (-reference.shape[0]) % block if pad_rows else 0
    cols = (-reference.shape[1]) % block
    if rows or cols:
        pad = ((0, rows), (0, cols), (0, 0))
        reference, estimate = np.pad(reference, pad, mode="symmetric"), np.pad(estimate, pad, mode="symmetric")
    h, w, c = reference.shape
    nc = w // block
    total, count = 0.0, 0
    for top in range(0, h - h % block, block):  # one row of blocks at a time: bounded temporaries

        def blocks(x: np.ndarray, top: int = top) -> np.ndarray:
            x = x[top : top + block].reshape(block, nc, block, c).transpose(1, 0, 2, 3)
            return x.reshape(nc, block * block, c)

        with np.errstate(invalid="ignore"):  # a block holding no-data (NaN) is NaN: not counted
            values = _q2n_block_values(blocks(reference), blocks(estimate))
        values = values[np.isfinite(values)]
        total, count = total + float(values.sum()), count + int(values.size)
    return total, count


def q2n(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Q2n of an (H, W, C) estimate against an (H, W, C) reference in the same units (Garzelli and Nencini 2009):
    the mean over non-overlapping :data:`Q2N_BLOCK`-px blocks (the images mirrored to a multiple of it, C padded
    with zero bands to a power of 2) of the hypercomplex quality index's modulus; 1 for identical images."""
    reference, estimate = np.asarray(reference, dtype=np.float64), np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim != 3:
        raise OptionError(f"q2n needs two (H, W, C) images of one shape, got {reference.shape} and {estimate.shape}")
    total, count = _q2n_sums(reference, estimate, block=Q2N_BLOCK, pad_rows=True)
    return total / count


# -------------------------------------------------------------------------------- windowed moments
def _window_sums(x: np.ndarray, size: int, row_start: int, rows: int) -> np.ndarray:
    """Sums over ``size x size`` windows whose top-left pixel is in rows ``row_start .. +rows`` of (h, w[, C]) x.

    Running sums along each axis (``scipy.ndimage.uniform_filter1d``); only windows inside ``x`` are kept.
    """
    x = np.asarray(x[row_start : row_start + rows + size - 1], dtype=np.float64)
    lo = size // 2  # scipy centres the window of output i on [i - size // 2, i - size // 2 + size)
    x = ndimage.uniform_filter1d(x, size, axis=0, mode="constant")[lo : lo + rows]
    x = ndimage.uniform_filter1d(x, size, axis=1, mode="constant")[:, lo : lo + x.shape[1] - size + 1]
    return x * (size * size)


def _whole_windows(missing: np.ndarray, size: int, row_start: int, rows: int) -> np.ndarray:
    """Which ``size x size`` windows of :func:`_window_sums` hold no missing (no-data) pixel, as a bool map."""
    if not missing.any():
        return np.ones((rows, missing.shape[1] - size + 1), dtype=bool)
    return _window_sums(missing.astype(np.float64), size, row_start, rows) < 0.5


def _missing(observed: np.ndarray) -> np.ndarray:
    """Observed bands as float64 with their no-data (0 DN, ``ssc_edge.nodata``) as NaN."""
    observed = np.asarray(observed, dtype=np.float64)
    return np.where(observed == 0, np.nan, observed) if (observed == 0).any() else observed


def _unobserved(fused: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, ...]:
    """``fused`` with NaN wherever the scene observed nothing: a band of ``fine`` or of ``coarse`` (at the 20 m
    pixel covering it) missing (NaN, :func:`_missing`). A product that holds values there (a model's raw output
    on 0 DN input) then scores exactly as the runtime's, which writes no-data there; ``fused`` itself, not a
    copy, when nothing is missing."""
    unobserved = ~np.isfinite(fine).all(axis=-1)
    unobserved |= np.repeat(np.repeat(~np.isfinite(coarse).all(axis=-1), RATIO, axis=0), RATIO, axis=1)
    if unobserved.any():
        fused = np.where(unobserved[..., None], np.nan, fused)
    return fused, fine, coarse


@dataclass
class _Moments:
    """Window sums of centred images (offset subtracted for precision) for pairwise Q and rho."""

    size: int
    n: int
    offset: np.ndarray  # (C,)
    s1: np.ndarray  # (r, w', C)
    s2: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray, size: int, row_start: int, rows: int) -> _Moments:
        offset = image.reshape(-1, image.shape[-1]).mean(axis=0)
        centred = image - offset
        return cls(size, size * size, offset, _window_sums(centred, size, row_start, rows),
                   _window_sums(centred**2, size, row_start, rows))  # fmt: skip

    def statistics(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, variance x n^2) maps of channel i."""
        cache = self.__dict__.setdefault("_cache", {})
        if i not in cache:
            s1, s2 = self.s1[..., i], self.s2[..., i]
            cache[i] = (s1 / self.n + self.offset[i], self.n * s2 - s1 * s1)
        return cache[i]


def _window_index(index: Callable, a: np.ndarray, ma: _Moments, i: int, b: np.ndarray, mb: _Moments, j: int,
                  row_start: int, rows: int) -> np.ndarray:  # fmt: skip
    """``index`` (:func:`_q_map` or :func:`_rho_map`) per window of channel i of a against channel j of b."""
    s12 = _window_sums((a[..., i] - ma.offset[i]) * (b[..., j] - mb.offset[j]), ma.size, row_start, rows)
    return index(*ma.statistics(i), *mb.statistics(j), ma.n * s12 - ma.s1[..., i] * mb.s1[..., j], ma.n)


def _flat(v: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Windows whose (n^2-scaled) variance is zero up to the rounding of their mean."""
    return v <= 1e-12 * n * n * (mean * mean + 1.0)


def _q_map(mx, vx, my, vy, cov, n: int) -> np.ndarray:
    """Universal image quality index per window (Wang and Bovik 2002) with qindex.m's flat-window rules.

    ``vx``, ``vy``, ``cov`` are n^2 x (co)variances, ``mx``, ``my`` means; both windows flat:
    ``2 mx my / (mx^2 + my^2)``, or 1 when both are zero.
    """
    means = mx * mx + my * my
    flat = _flat(vx, mx, n) & _flat(vy, my, n)
    safe_means = np.where(means > 0, means, 1.0)
    q_flat = np.where(means > 0, 2 * mx * my / safe_means, 1.0)
    denominator = (vx + vy) * means
    ok = ~flat & (denominator > 0)
    q = 4 * cov * mx * my / np.where(ok, denominator, 1.0)
    return np.where(flat, q_flat, np.where(ok, q, 0.0))


def _rho_map(mx, vx, my, vy, cov, n: int) -> np.ndarray:
    """Correlation coefficient per window; 0 where either window is flat (the published code's epsilon)."""
    ok = ~(_flat(vx, mx, n) | _flat(vy, my, n))
    rho = cov / np.sqrt(np.where(ok, vx * vy, 1.0))
    return np.clip(np.where(ok, rho, 0.0), -1.0, 1.0)


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class FullResolutionQuality:
    """The no-reference indexes of one sharpened product.

    Attributes
    ----------
    band_names : tuple of str
        The sharpened bands (``COARSE_BANDS``).
    degradation : str
        The degradation of the consistency check (a method name, or ``"callable"``).
    consistency_sre : tuple of float
        Per-band SRE of ``degrade(fused)`` against the observed 20 m bands, dB (+inf if equal).
    consistency_mean_sre : float
        dB.
    consistency_sam : float
        Degrees.
    consistency_ergas : float
    consistency_q2n : float
        In [0, 1], ideal 1.
    d_lambda_khan : float
        Khan's D_lambda^(K), ideal 0.
    d_lambda : float
        QNR D_lambda, ideal 0.
    d_s : float
        QNR D_s, ideal 0.
    qnr, hqnr : float
        Ideal 1.
    d_rho : float
        In [0, 2], ideal 0.
    d_rho_bands : tuple of float
        D_rho of each band.
    matched_fine_bands : tuple of str
        The 10 m band used as the spatial reference of each sharpened band.
    """

    band_names: tuple[str, ...]
    degradation: str
    consistency_sre: tuple[float, ...]
    consistency_mean_sre: float
    consistency_sam: float
    consistency_ergas: float
    consistency_q2n: float
    d_lambda_khan: float
    d_lambda: float
    d_s: float
    qnr: float
    hqnr: float
    d_rho: float
    d_rho_bands: tuple[float, ...]
    matched_fine_bands: tuple[str, ...]

    def to_dict(self) -> dict:
        """Plain-JSON form: lists, floats; an infinite SRE becomes the string ``"inf"``."""

        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return "inf" if v > 0 else "-inf"
            return v

        return {k: plain(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> FullResolutionQuality:
        """Inverse of :meth:`to_dict`."""

        def value(v):
            if isinstance(v, list):
                return tuple(value(x) for x in v)
            return float(v) if v in ("inf", "-inf") else v

        return cls(**{k: value(v) for k, v in data.items()})

    def summary(self) -> str:
        """One line: consistency SRE, D_lambda^(K), D_rho, QNR."""
        return (
            f"consistency SRE {self.consistency_mean_sre:.2f} dB, Q2n {self.consistency_q2n:.4f}, "
            f"D_lambda(K) {self.d_lambda_khan:.4f}, D_rho {self.d_rho:.4f}, QNR {self.qnr:.4f}"
        )


# ------------------------------------------------------------------------------------- accumulator
class QualityAccumulator:
    """Streaming computation of :class:`FullResolutionQuality` over strips of rows.

    Feed every strip once, in any order, with :meth:`add_strip`; :meth:`result` then gives the
    whole-image values. Strips start on multiples of ``strip`` rows; :meth:`strips` lists them and
    the rows (with margins) each needs.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the 10 m grid, pixels; both even.
    degradation : str or callable
        The scene's degradation for the consistency check (see :func:`degradation_function`); the 10 m bands are
        degraded to 20 m (D_s, band matching) by the same method name, or ``"bicubic"`` (the toolbox's
        ``imresize``) when it is a callable.
    strip : int
        Fine rows per strip, a multiple of 64.
    max_strips : int, optional
        Score at most this many strips, evenly spaced from the first to the last (a sample of the
        image, for speed on a full tile); None: every strip, the whole-image values.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        degradation: Degradation = "bicubic",
        strip: int = DEFAULT_STRIP,
        max_strips: int | None = None,
    ) -> None:
        height, width = int(shape[0]), int(shape[1])
        if height % 2 or width % 2:
            raise SceneError(f"the 10 m grid is {height}x{width}: it must be even (twice the 20 m grid)")
        if min(height, width) < QNR_BLOCK:
            raise SceneError(f"scene of {height}x{width} px is smaller than the {QNR_BLOCK}-px quality windows")
        if strip <= 0 or strip % (2 * Q2N_BLOCK):
            raise OptionError(f"strip must be a positive multiple of {2 * Q2N_BLOCK} rows, got {strip}")
        self.shape = (height, width)
        self.strip = strip
        self.max_strips = max_strips
        self.degradation_name = degradation if isinstance(degradation, str) else "callable"
        self._degrade = degradation_function(degradation)
        fine_method = degradation if isinstance(degradation, str) else "bicubic"
        self._degrade_fine = degradation_function(fine_method, bands=FINE_BANDS)
        nb = len(COARSE_BANDS)
        self._pairs = [(i, j) for i in range(nb) for j in range(i + 1, nb)]
        z = np.zeros
        self._s = {
            "signal": z(nb), "error": z(nb), "ref_sum": z(nb), "pixels": 0.0, "sam": 0.0, "sam_n": 0.0,
            "q2n": 0.0, "q2n_n": 0.0, "khan": 0.0, "khan_n": 0.0,
            "dl_f": z(len(self._pairs)), "dl_m": z(len(self._pairs)),  # windows counted in ds_f_n, ds_m_n
            "ds_f": z(nb), "ds_f_n": 0.0, "ds_m": z(nb), "ds_m_n": 0.0, "rho": z(nb), "rho_n": 0.0,
        }  # fmt: skip
        self._match: dict[int, tuple] = {}  # per strip: n, means, centred sums of squares and products
        self._matched: np.ndarray | None = None
        self._done: set[int] = set()

    def strips(self) -> list[tuple[int, int, int, int]]:
        """``(r0, r1, a0, a1)`` per strip: it scores rows ``r0:r1`` and needs rows ``a0:a1``. The last strip
        takes the rest of the image (at least one full strip): blocks and mirrored edges never cross strips."""
        height = self.shape[0]
        starts = list(range(0, max(height - self.strip, 0) + 1, self.strip))
        if len(starts) > 1 and height - starts[-1] < self.strip:
            starts.pop()
        bounds = [*starts[1:], height]
        strips = [(r0, r1, max(0, r0 - MARGIN_TOP), min(height, r1 + MARGIN_BOTTOM))
                  for r0, r1 in zip(starts, bounds, strict=True)]  # fmt: skip
        if self.max_strips is not None and len(strips) > self.max_strips:
            chosen = np.unique(np.round(np.linspace(0, len(strips) - 1, max(1, self.max_strips))).astype(int))
            strips = [strips[i] for i in chosen]
        return strips

    def add_match_strip(self, r0: int, fine: np.ndarray, coarse: np.ndarray) -> None:
        """First pass, observed bands only: correlation moments of the 20 m bands and the degraded 10 m bands of
        one strip (same arrays as :meth:`add_strip`), which choose the best-matching 10 m band of each 20 m band.
        Every strip must pass here before the first :meth:`add_strip`."""
        table = {t[0]: t for t in self.strips()}
        if r0 not in table or self._matched is not None:
            raise OptionError(f"row {r0} does not start a quality strip, or the band match is already chosen")
        _, r1, a0, _ = table[r0]
        fine_lr = np.asarray(self._degrade_fine(_missing(fine)), dtype=np.float64)
        o, n = (r0 - a0) // 2, (r1 - r0) // 2
        m = _missing(coarse)[o : o + n].reshape(-1, len(COARSE_BANDS))
        p = fine_lr[o : o + n].reshape(-1, len(FINE_BANDS))
        present = np.isfinite(m).all(axis=1) & np.isfinite(p).all(axis=1)
        m, p = m[present], p[present]
        if not len(m):  # a strip of no-data only: nothing to match on
            nb, nf = len(COARSE_BANDS), len(FINE_BANDS)
            self._match[r0] = (0.0, np.zeros(nb), np.zeros(nf), np.zeros(nb), np.zeros(nf), np.zeros((nb, nf)))
            return
        mm, pm = m.mean(axis=0), p.mean(axis=0)
        dm, dp = m - mm, p - pm
        self._match[r0] = (float(m.shape[0]), mm, pm, np.sum(dm**2, axis=0), np.sum(dp**2, axis=0), dm.T @ dp)

    def add_strip(self, r0: int, fused: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> None:
        """Score the strip starting at row ``r0`` (one of :meth:`strips`).

        Parameters
        ----------
        r0 : int
        fused : (a1 - a0, W, 6) ndarray
            Sharpened rows ``a0:a1`` of the strip, DN.
        fine : (a1 - a0, W, 4) ndarray
            The 10 m bands of the same rows, DN.
        coarse : ((a1 - a0) / 2, W / 2, 6) ndarray
            The 20 m bands of rows ``a0/2:a1/2``, DN.
        """
        table = {s[0]: s for s in self.strips()}
        if r0 not in table:
            raise OptionError(f"row {r0} does not start a quality strip")
        if r0 in self._done:
            raise OptionError(f"quality strip at row {r0} was already added")
        _, r1, a0, a1 = table[r0]
        width = self.shape[1]
        expect = {"fused": (a1 - a0, width, 6), "fine": (a1 - a0, width, 4), "coarse": ((a1 - a0) // 2, width // 2, 6)}
        for name, array in (("fused", fused), ("fine", fine), ("coarse", coarse)):
            if np.shape(array) != expect[name]:
                raise OptionError(f"{name} strip is {np.shape(array)}, expected {expect[name]}")
        fused, fine, coarse = _unobserved(np.asarray(fused, dtype=np.float64), _missing(fine), _missing(coarse))
        if self._matched is None:
            missing = [t[0] for t in self.strips() if t[0] not in self._match]
            if missing:
                raise OptionError(f"add_match_strip was not called for the strips at rows {missing}")
            self._matched = self._best_matches()
        self._done.add(r0)
        self._spectral(r0, r1, a0, a1, fused, coarse)
        self._spatial(r0, r1, a0, a1, fused, fine, coarse)

    def _spectral(self, r0, r1, a0, a1, fused, coarse) -> None:
        s, last = self._s, r1 == self.shape[0]
        o, n = (r0 - a0) // 2, (r1 - r0) // 2
        observed = coarse[o : o + n]
        degraded = np.asarray(self._degrade(fused), dtype=np.float64)
        if degraded.shape != coarse.shape:
            raise OptionError(f"the degradation returned {degraded.shape} for {fused.shape}; expected {coarse.shape}")
        degraded = degraded[o : o + n]
        present = np.isfinite(observed).all(axis=-1) & np.isfinite(degraded).all(axis=-1)  # no no-data under it
        observed, degraded = np.where(present[..., None], observed, 0.0), np.where(present[..., None], degraded, 0.0)
        s["signal"] += np.sum(observed**2, axis=(0, 1))
        s["error"] += np.sum((observed - degraded) ** 2, axis=(0, 1))
        s["ref_sum"] += np.sum(observed, axis=(0, 1))
        s["pixels"] += int(np.count_nonzero(present))
        dot = np.sum(observed * degraded, axis=-1)
        norms = np.linalg.norm(observed, axis=-1) * np.linalg.norm(degraded, axis=-1)
        valid = (norms > 0) & present
        s["sam"] += float(np.sum(np.arccos(np.clip(dot[valid] / norms[valid], -1.0, 1.0))))
        s["sam_n"] += float(np.count_nonzero(valid))
        observed, degraded = (np.where(present[..., None], x, np.nan) for x in (observed, degraded))
        total, count = _q2n_sums(observed, degraded, block=Q2N_BLOCK, pad_rows=last)
        s["q2n"] += total
        s["q2n_n"] += count
        # Khan: upsampled observation against the MTF-filtered (not decimated) product, 10 m grid
        up = upsample(coarse, ratio=RATIO, method="bicubic")[r0 - a0 : r1 - a0]
        low = np.empty_like(fused)
        for b, band in enumerate(COARSE_BANDS):
            sigma = mtf_sigma(MTF_NYQUIST[band], ratio=RATIO)
            low[..., b] = ndimage.gaussian_filter(fused[..., b], sigma, mode="reflect")
        total, count = _q2n_sums(up, low[r0 - a0 : r1 - a0], block=Q2N_BLOCK, pad_rows=last)
        s["khan"] += total
        s["khan_n"] += count

    def _spatial(self, r0, r1, a0, a1, fused, fine, coarse) -> None:
        fine_lr = np.asarray(self._degrade_fine(fine), dtype=np.float64)
        # no-data (NaN) set to 0 for the running sums; a window counts only when it holds none
        missing_fine = ~(np.isfinite(fused).all(axis=-1) & np.isfinite(fine).all(axis=-1))
        missing_coarse = ~(np.isfinite(coarse).all(axis=-1) & np.isfinite(fine_lr).all(axis=-1))
        fused, fine, coarse, fine_lr = (np.nan_to_num(x, nan=0.0) for x in (fused, fine, coarse, fine_lr))
        # full-resolution windows (S x S for Q, sigma x sigma for rho); 20 m windows (S/2): the observed bands
        # among themselves and against the degraded 10 m bands
        self._windows((r0, r1, a0), fused, fine, missing_fine, QNR_BLOCK, 1, "ds_f", pairs="dl_f")
        self._windows((r0, r1, a0), fused, fine, missing_fine, RATIO, 1, "rho", index=_rho_map)
        self._windows((r0, r1, a0), coarse, fine_lr, missing_coarse, QNR_BLOCK // RATIO, RATIO, "ds_m", pairs="dl_m")

    def _windows(self, strip, x, p, missing, size: int, scale: int, total: str, *, pairs=None, index=_q_map) -> None:
        """Add ``index`` of each band of ``x`` against its best-matching band of ``p`` (and, under ``pairs``, Q of
        every pair of bands of ``x``) to the sum ``total`` over the ``size``-px windows anchored in the strip's rows
        ``r0:r1`` that hold no ``missing`` pixel; ``x`` holds rows ``a0:`` of a grid ``scale`` times coarser than
        the 10 m grid."""
        r0, r1, a0 = strip
        s, start = self._s, (r0 - a0) // scale
        rows = max(0, min(r1 // scale, self.shape[0] // scale - size + 1) - r0 // scale)
        if rows == 0:
            return
        mx, mp = _Moments.of(x, size, start, rows), _Moments.of(p, size, start, rows)
        keep = _whole_windows(missing, size, start, rows)
        for k, (i, j) in enumerate(self._pairs if pairs is not None else ()):
            s[pairs][k] += _window_index(_q_map, x, mx, i, x, mx, j, start, rows)[keep].sum()
        for b, f in enumerate(self._matched):
            s[total][b] += _window_index(index, x, mx, b, p, mp, f, start, rows)[keep].sum()
        s[total + "_n"] += int(np.count_nonzero(keep))

    def _best_matches(self) -> np.ndarray:
        """Index of the best-matching 10 m band per 20 m band (strips merged as in Chan et al. 1979)."""
        parts = [self._match[r0] for r0 in sorted(self._match) if self._match[r0][0] > 0]  # strips with data
        parts = parts or [self._match[min(self._match)]]
        n, mean_m, mean_p, var_m, var_p, cov = parts[0]
        for n2, mm2, pm2, vm2, vp2, cov2 in parts[1:]:
            total = n + n2
            dm, dp = mm2 - mean_m, pm2 - mean_p
            w = n * n2 / total
            var_m, var_p, cov = var_m + vm2 + w * dm**2, var_p + vp2 + w * dp**2, cov + cov2 + w * np.outer(dm, dp)
            mean_m, mean_p, n = mean_m + dm * n2 / total, mean_p + dp * n2 / total, total
        denominator = np.sqrt(np.outer(var_m, var_p))
        corr = np.where(denominator > 0, cov / np.where(denominator > 0, denominator, 1.0), -np.inf)
        return np.argmax(corr, axis=1)

    @np.errstate(divide="ignore", invalid="ignore")
    def result(self) -> FullResolutionQuality:
        """The indexes of the whole image; :class:`OptionError` if a strip is missing."""
        missing = [r0 for r0, *_ in self.strips() if r0 not in self._done]
        if missing:
            raise OptionError(f"quality strips at rows {missing} were never added")
        # float64 sums: an index that no-data leaves without a pixel, block or window is NaN, not an error
        s = {key: np.asarray(value, dtype=np.float64) for key, value in self._s.items()}
        sre = 10 * np.log10(s["signal"] / s["error"])
        mean = s["ref_sum"] / s["pixels"]
        ergas = 100 / RATIO * float(np.sqrt(np.mean((s["error"] / s["pixels"]) / mean**2)))
        q_f = s["dl_f"] / s["ds_f_n"]
        q_m = s["dl_m"] / s["ds_m_n"]
        d_lambda = float(np.mean(np.abs(q_f - q_m)))  # p = 1; each unordered pair counts for both orders
        d_s = float(np.mean(np.abs(s["ds_f"] / s["ds_f_n"] - s["ds_m"] / s["ds_m_n"])))
        d_rho_bands = 1.0 - s["rho"] / s["rho_n"]
        d_khan = 1.0 - s["khan"] / s["khan_n"]
        return FullResolutionQuality(
            band_names=COARSE_BANDS,
            degradation=self.degradation_name,
            consistency_sre=tuple(float(v) for v in sre),
            consistency_mean_sre=float(np.mean(sre)),
            consistency_sam=float(np.degrees(s["sam"] / s["sam_n"])) if s["sam_n"] else 0.0,
            consistency_ergas=ergas,
            consistency_q2n=float(s["q2n"] / s["q2n_n"]),
            d_lambda_khan=float(d_khan),
            d_lambda=d_lambda,
            d_s=d_s,
            qnr=float((1 - d_lambda) * (1 - d_s)),
            hqnr=float((1 - d_khan) * (1 - d_s)),
            d_rho=float(np.mean(d_rho_bands)),
            d_rho_bands=tuple(float(v) for v in d_rho_bands),
            matched_fine_bands=tuple(FINE_BANDS[i] for i in self._matched),
        )


def full_resolution_quality(
    fused: np.ndarray,
    fine: np.ndarray,
    coarse: np.ndarray,
    *,
    degradation: Degradation = "bicubic",
    strip: int = DEFAULT_STRIP,
) -> FullResolutionQuality:
    """Every no-reference index of this module for one sharpened product.

    Parameters
    ----------
    fused, fine, coarse : ndarray
        (H, W, 6), (H, W, 4) and (H/2, W/2, 6) DN, as in the module notes.
    degradation : str or callable
        The scene's degradation (the one the model was fitted with: the model metadata's
        ``training["degradation"]``), see :func:`degradation_function`.
    strip : int
        Rows per strip (memory: a few arrays of ``strip + 96`` rows x W x 6 float64).

    Returns
    -------
    FullResolutionQuality
    """
    fused, fine, coarse = np.asarray(fused), np.asarray(fine), np.asarray(coarse)
    if fused.ndim != 3 or fused.shape[2] != len(COARSE_BANDS):
        raise SceneError(f"the sharpened product must be (H, W, {len(COARSE_BANDS)}), got {fused.shape}")
    if fine.shape != (*fused.shape[:2], len(FINE_BANDS)):
        raise SceneError(f"10 m bands are {fine.shape}, the sharpened product {fused.shape}: they must share (H, W)")
    if coarse.shape != (fused.shape[0] // 2, fused.shape[1] // 2, len(COARSE_BANDS)):
        raise SceneError(f"20 m bands are {coarse.shape}, not half the sharpened product's {fused.shape[:2]}")
    accumulator = QualityAccumulator(fused.shape[:2], degradation=degradation, strip=strip)
    for r0, _, a0, a1 in accumulator.strips():
        accumulator.add_match_strip(r0, fine[a0:a1], coarse[a0 // 2 : a1 // 2])
    for r0, _, a0, a1 in accumulator.strips():
        accumulator.add_strip(r0, fused[a0:a1], fine[a0:a1], coarse[a0 // 2 : a1 // 2])
    return accumulator.result()


class RowAssembler:
    """Feed a :class:`QualityAccumulator` from tiles that arrive in row-major order (the runtime's cores).

    Reads the observed bands once first (strip by strip) to choose the best-matching 10 m bands, then keeps
    the sharpened rows of the current tile row and the rows the next strip's margins need: memory grows with
    the scene width, not its area.

    Parameters
    ----------
    accumulator : QualityAccumulator
    read_band : callable
        ``read_band(band, tile) -> (h, w)`` DN of a 10 m band on the 10 m grid or a 20 m band on
        its grid (the runtime's ``BandReader``).
    """

    def __init__(self, accumulator: QualityAccumulator, read_band: Callable) -> None:
        self.accumulator = accumulator
        self._read = read_band
        self._strips = accumulator.strips()
        for r0, _, a0, a1 in self._strips:  # first pass over the observed bands: the band match
            accumulator.add_match_strip(r0, *self._inputs(a0, a1))
        self._rows: dict[int, np.ndarray] = {}  # first row -> (h, W, 6) complete rows
        self._pending: dict[tuple[int, int], list] = {}  # (row, height) -> cores of an incomplete row span
        self._complete = 0  # rows 0:complete are known

    def __call__(self, core, values: np.ndarray, *_: object) -> None:
        """Receive one core: ``core`` a Tile, ``values`` its (h, w, 6) sharpened DN."""
        key = (core.row, core.height)
        self._pending.setdefault(key, []).append((core.col, np.asarray(values, dtype=np.float32)))
        width = self.accumulator.shape[1]
        if sum(v.shape[1] for _, v in self._pending[key]) < width:
            return
        parts = sorted(self._pending.pop(key), key=lambda item: item[0])
        self._rows[core.row] = np.concatenate([v for _, v in parts], axis=1)
        self._complete = max(self._complete, core.row + core.height)
        self._flush()

    def _gather(self, a0: int, a1: int) -> np.ndarray:
        pieces = []
        for start in sorted(self._rows):
            block = self._rows[start]
            lo, hi = max(a0, start), min(a1, start + block.shape[0])
            if lo < hi:
                pieces.append(block[lo - start : hi - start])
        return np.concatenate(pieces, axis=0)

    def _inputs(self, a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        """The 10 m bands of rows ``a0:a1`` and the 20 m bands of rows ``a0/2:a1/2``, DN."""
        from .tiling import Tile

        width = self.accumulator.shape[1]
        fine = np.stack([self._read(b, Tile(a0, 0, a1 - a0, width)) for b in FINE_BANDS], axis=-1)
        window = Tile(a0 // 2, 0, (a1 - a0) // 2, width // 2)
        return fine, np.stack([self._read(b, window) for b in COARSE_BANDS], axis=-1)

    def _flush(self) -> None:
        while self._strips and self._strips[0][3] <= self._complete:
            r0, _, a0, a1 = self._strips.pop(0)
            self.accumulator.add_strip(r0, self._gather(a0, a1), *self._inputs(a0, a1))
        keep_from = self._strips[0][2] if self._strips else self.accumulator.shape[0]
        for start in list(self._rows):  # rows no strip left needs (also those between sampled strips)
            if start + self._rows[start].shape[0] <= keep_from:
                del self._rows[start]

    def result(self) -> FullResolutionQuality:
        """The accumulator's result once every core has arrived."""
        return self.accumulator.result()


class QualityHook:
    """An ``on_core`` hook for the runtime (``Sharpener.sharpen``, ``sharpen_geotiff``): the indexes of the
    product being written, window by window, with no extra pass and memory bounded by the scene width.

    Parameters
    ----------
    degradation : str or callable
        The scene's degradation (:func:`model_degradation` of the model's metadata).
    max_pixels : int, optional
        Score evenly spaced strips of at most about this many 10 m pixels in all
        (:attr:`QualityAccumulator.max_strips`): the quality pass of a full 10980 x 10980 tile then costs a
        few of its rows, not a second inference. None: no pixel cap.
    fraction : float, optional
        Score about this share of the scene's strips (evenly spaced, at least one strip); the cheaper of
        ``fraction`` and ``max_pixels`` applies. None: every strip (with ``max_pixels=None``, every pixel:
        the whole-image values of :func:`full_resolution_quality`).

    Attributes
    ----------
    skipped : str or None
        Why no indexes were computed (a scene smaller than the 32-px windows), else None.
    """

    def __init__(
        self,
        *,
        degradation: Degradation = "mtf",
        max_pixels: int | None = HOOK_PIXELS,
        fraction: float | None = HOOK_FRACTION,
    ) -> None:
        if fraction is not None and not 0 < fraction <= 1:
            raise OptionError(f"fraction must be in (0, 1], got {fraction!r}")
        self.degradation = degradation
        self.max_pixels = max_pixels
        self.fraction = fraction
        self.skipped: str | None = None
        self._assembler: RowAssembler | None = None

    def __call__(self, core, values: np.ndarray, read_band: Callable, shape: tuple[int, int]) -> None:
        if self.skipped is not None:
            return
        if self._assembler is None:
            try:
                accumulator = QualityAccumulator(shape, degradation=self.degradation, max_strips=self._strips(shape))
            except SceneError as exc:
                self.skipped = str(exc)
                return
            self._assembler = RowAssembler(accumulator, read_band)
        self._assembler(core, values)

    def _strips(self, shape: tuple[int, int]) -> int | None:
        """Most strips to score on an (H, W) grid: the cheaper of ``fraction`` and ``max_pixels``, at least 1."""
        limits = []
        if self.fraction is not None:
            limits.append(round(self.fraction * max(1, shape[0] // DEFAULT_STRIP)))
        if self.max_pixels is not None:
            limits.append(self.max_pixels // (DEFAULT_STRIP * shape[1]))
        return max(1, min(limits)) if limits else None

    def result(self) -> FullResolutionQuality | None:
        """The indexes once every core has arrived; None if skipped or nothing arrived."""
        if self.skipped is not None or self._assembler is None:
            return None
        accumulator = self._assembler.accumulator
        rows = sum(r1 - r0 for r0, r1, *_ in accumulator.strips())
        if rows < accumulator.shape[0]:
            logger.info("full-resolution indexes on %d of %d rows (evenly spaced strips)", rows, accumulator.shape[0])
        return self._assembler.result()


def format_full_resolution_table(results: dict[str, FullResolutionQuality]) -> str:
    """Markdown table, one row per product: consistency (mean SRE dB, SAM deg, ERGAS, Q2n), D_lambda^(K),
    D_lambda, D_s, QNR, HQNR, D_rho."""
    head = ("| product | cons. SRE (dB) | cons. SAM (deg) | cons. ERGAS | cons. Q2n | D_lambda(K) | D_lambda | D_s "
            "| QNR | HQNR | D_rho |")  # fmt: skip
    rows = [head, "|---|" + "---:|" * 10]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r.consistency_mean_sre:.2f} | {r.consistency_sam:.4f} | {r.consistency_ergas:.4f} | "
            f"{r.consistency_q2n:.4f} | {r.d_lambda_khan:.4f} | {r.d_lambda:.4f} | {r.d_s:.4f} | {r.qnr:.4f} | "
            f"{r.hqnr:.4f} | {r.d_rho:.4f} |"
        )
    return "\n".join(rows)
