"""Wald-protocol degradation, upsampling, and the two inputs every sharpening model needs.

Grid convention (pixel centres): coarse pixel ``i`` covers fine pixels ``r*i .. r*i + r - 1``
and is centred at fine coordinate ``r*i + (r - 1)/2`` (``2i + 0.5`` for ``r = 2``). Both
degradation kernels and the upsampling kernel follow it, so ``degrade`` then ``upsample``
returns an image aligned with its input. Boundaries are mirrored with the edge pixel repeated
(scipy ``mode="reflect"``, MATLAB ``symmetric``).

Every kernel here has finite support, so the value of an output pixel depends only on input
pixels a few pixels away: a window of the input with a margin gives exactly (bit for bit) the
same output as the whole image. The runtime's tiling relies on this.

References
----------
Wald, Ranchin, Mangolini (1997), "Fusion of satellite images of different spatial
resolutions: assessing the quality of resulting images", PE&RS 63(6).
Keys (1981), "Cubic convolution interpolation for digital image processing", IEEE TASSP 29(6).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .bands import COARSE_BANDS, FINE_BANDS, MTF_NYQUIST
from .errors import OptionError, SceneError
from .nodata import nodata_where_read
from .scene import Scene

__all__ = [
    "DEGRADATION_METHODS",
    "UPSAMPLING_METHODS",
    "degrade",
    "upsample",
    "mtf_sigma",
    "TrainingPair",
    "training_pair",
    "reduced_resolution_scene",
    "full_scale_input",
    "model_input",
    "KERNEL_KINDS",
    "Kernel",
    "kernel_taps",
    "kernel_reach",
    "nominal_kernel",
    "decimate",
    "PairModel",
    "pair_margin",
]

DEGRADATION_METHODS = ("mtf", "bicubic")
UPSAMPLING_METHODS = ("bicubic", "spline")


def mtf_sigma(mtf: float, *, ratio: int = 2) -> float:
    """Standard deviation of the Gaussian PSF whose MTF at the coarse Nyquist frequency is ``mtf``.

    ``sigma = ratio * sqrt(-2 ln mtf) / pi``, in fine pixels (Aiazzi et al. 2006; the value used
    by Nguyen et al. 2020 and DSen2).
    """
    if not 0.0 < mtf < 1.0:
        raise OptionError(f"MTF gain at Nyquist must be in (0, 1), got {mtf}")
    return ratio * float(np.sqrt(-2.0 * np.log(mtf))) / np.pi


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic')."""
    x = np.abs(x)
    return np.where(
        x <= 1,
        1.5 * x**3 - 2.5 * x**2 + 1,
        np.where(x < 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0),
    )


def _kernel_weights(kind: str, sigma: float, ratio: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer taps from ``ratio * i`` and unnormalised weights of a kernel centred at ``ratio * i + (ratio - 1) / 2
    + shift``, cut at 2 coarse pixels (Keys stretched by ``ratio``, zeros at its ends kept) or at 4 ``sigma``."""
    centre = (ratio - 1) / 2 + float(shift)
    half = 2.0 * ratio if kind == "bicubic" else max(4.0 * sigma, ratio / 2)
    taps = np.arange(int(np.floor(centre - half)), int(np.ceil(centre + half)) + 1)
    x = taps - centre
    return taps, _keys_cubic(x / ratio) if kind == "bicubic" else np.exp(-0.5 * (x / sigma) ** 2)


def _decimate_axis(image: np.ndarray, weights: np.ndarray, ratio: int, axis: int) -> np.ndarray:
    """Filter ``image`` along ``axis`` with ``weights`` centred per the grid convention, keep every ``ratio``-th.

    ``weights`` are the tap weights of :func:`_kernel_weights`, symmetric about the kernel's centre; with scipy's
    default origin that centre lands on output index ``ratio // 2`` (even or odd ratio), which is where the first
    coarse pixel is read.
    """
    filtered = ndimage.correlate1d(image, weights, axis=axis, mode="reflect")
    start = ratio // 2
    return filtered.take(np.arange(start, start + ratio * (image.shape[axis] // ratio), ratio), axis=axis)


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise OptionError(f"{what} must be (H, W) or (H, W, C), got shape {image.shape}")
    if image.dtype.kind not in "uif":
        raise OptionError(f"{what} must be real-valued, got dtype {image.dtype}")
    return image.astype(np.float64, copy=False)


def _check_integer(value: int, what: str, *, minimum: int = 2) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise OptionError(f"{what} must be an integer >= {minimum}, got {value!r}")


def degrade(
    image: np.ndarray,
    *,
    ratio: int = 2,
    method: str = "mtf",
    mtf: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Blur and decimate an image by ``ratio`` (the Wald protocol's simulated coarse sensor).

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        Input on the fine grid, any units (DN or reflectance); returned in the same units.
    ratio : int
        Decimation factor; output is ``(H // ratio, W // ratio[, C])``.
    method : {"mtf", "bicubic"}
        ``"mtf"``: a Gaussian PSF whose gain at the coarse Nyquist frequency is ``mtf``
        (sigma from :func:`mtf_sigma`). ``"bicubic"``: MATLAB ``imresize(x, 1/ratio)`` with its
        default antialiasing (Keys cubic stretched by ``ratio``); this is how the Reykjavik RR
        data were made.
    mtf : float or sequence of C floats
        MTF gain at Nyquist per channel (``method="mtf"`` only); see ``bands.MTF_NYQUIST``.

    Returns
    -------
    (H // ratio, W // ratio[, C]) float64 ndarray
    """
    _check_integer(ratio, "ratio")
    if method not in DEGRADATION_METHODS:
        raise OptionError(f"unknown degradation method {method!r}; choose one of {DEGRADATION_METHODS}")
    image = _check_image(image, "image")
    if min(image.shape[:2]) < ratio:
        raise OptionError(f"image of {image.shape[0]}x{image.shape[1]} px is smaller than the ratio {ratio}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if method == "mtf":
        if mtf is None:
            raise OptionError("method='mtf' needs the MTF gain at Nyquist (mtf=...)")
        gains = np.asarray(mtf, dtype=np.float64).ravel()
        if gains.size == 1:
            gains = np.repeat(gains, channels)
        if gains.size != channels:
            raise OptionError(f"mtf has {gains.size} values for an image of {channels} channels")
        sigmas = [mtf_sigma(float(gain), ratio=ratio) for gain in gains]
    else:  # MATLAB imresize(x, 1/ratio) antialiasing: the Keys kernel stretched by the ratio
        sigmas = [0.0] * channels
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty((image.shape[0] // ratio, image.shape[1] // ratio, channels))
    for c, sigma in enumerate(sigmas):
        _, weights = _kernel_weights("gaussian" if method == "mtf" else "bicubic", sigma, ratio, 0.0)
        weights = weights / weights.sum()
        rows = _decimate_axis(planes[..., c], weights, ratio, axis=0)
        out[..., c] = _decimate_axis(rows, weights, ratio, axis=1)
    return out[..., 0] if image.ndim == 2 else out


def _upsample_axis_bicubic(image: np.ndarray, ratio: int, axis: int) -> np.ndarray:
    """Keys-cubic interpolation by ``ratio`` along one axis, one 5-tap filter per output phase.

    Output pixel ``o`` sits at input coordinate ``(o + 0.5) / ratio - 0.5``; written as
    ``ratio`` polyphase filters run by ``scipy.ndimage.correlate1d`` because scipy's ``zoom``
    offers B-splines (global prefilter) but not Keys' finite-support kernel.
    """
    shape = list(image.shape)
    shape[axis] *= ratio
    out = np.empty(shape)
    for phase in range(ratio):
        delta = (phase + 0.5) / ratio - 0.5
        weights = _keys_cubic(delta - np.arange(-2, 3))
        filtered = ndimage.correlate1d(image, weights / weights.sum(), axis=axis, mode="reflect")
        np.moveaxis(out, axis, 0)[phase::ratio] = np.moveaxis(filtered, axis, 0)
    return out


def upsample(image: np.ndarray, *, ratio: int = 2, method: str = "bicubic") -> np.ndarray:
    """Interpolate an image to a ``ratio`` times finer grid.

    Parameters
    ----------
    image : (h, w) or (h, w, C) ndarray
        Coarse image, any units; returned in the same units.
    ratio : int
        Output is ``(h * ratio, w * ratio[, C])``.
    method : {"bicubic", "spline"}
        ``"bicubic"`` (default): Keys cubic convolution, a = -0.5, equal to MATLAB
        ``imresize(x, ratio, 'bicubic')``. Finite support (2 coarse pixels), so tiles with a
        margin upsample exactly like the whole image. ``"spline"``: cubic B-spline
        (``scipy.ndimage.zoom``, order 3, same pixel-centre grid); its prefilter is global, so
        it is not tile-exact.

    Returns
    -------
    (h * ratio, w * ratio[, C]) float64 ndarray
    """
    _check_integer(ratio, "ratio")
    if method not in UPSAMPLING_METHODS:
        raise OptionError(f"unknown upsampling method {method!r}; choose one of {UPSAMPLING_METHODS}")
    image = _check_image(image, "image")
    if method == "spline":
        zoom = (ratio, ratio) + (1,) * (image.ndim - 2)
        return ndimage.zoom(image, zoom, order=3, mode="reflect", grid_mode=True)
    return _upsample_axis_bicubic(_upsample_axis_bicubic(image, ratio, 0), ratio, 1)


KERNEL_KINDS = ("gaussian", "bicubic")


@dataclass(frozen=True)
class Kernel:
    """A separable decimation kernel of a band (its PSF relative to the grid it is decimated from).

    Attributes
    ----------
    kind : {"gaussian", "bicubic"}
        ``"gaussian"``: ``exp(-x**2 / (2 sigma**2))``; ``"bicubic"``: MATLAB ``imresize(x, 1/ratio)``
        antialiasing, Keys' cubic stretched by the ratio.
    sigma : float
        Standard deviation of the Gaussian, pixels of the grid it is applied to (``"gaussian"`` only;
        :func:`mtf_sigma` converts an MTF gain at Nyquist).
    """

    kind: str
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KERNEL_KINDS:
            raise OptionError(f"unknown kernel {self.kind!r}; choose one of {KERNEL_KINDS}")
        if self.kind == "gaussian" and not 0.05 <= self.sigma <= 8.0:
            raise OptionError(f"Gaussian kernel sigma must be in [0.05, 8] pixels, got {self.sigma!r}")
        object.__setattr__(self, "sigma", float(self.sigma) if self.kind == "gaussian" else 0.0)

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {"kind": self.kind, "sigma": round(self.sigma, 6)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Kernel:
        """Inverse of :meth:`to_dict`."""
        return cls(kind=str(data["kind"]), sigma=float(data.get("sigma", 0.0)))  # type: ignore[arg-type]

    def describe(self) -> str:
        """``"gaussian sigma 0.87 px"`` or ``"bicubic"``."""
        return f"gaussian sigma {self.sigma:.2f} px" if self.kind == "gaussian" else "bicubic"


def kernel_taps(kernel: Kernel, *, ratio: int = 2, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Integer tap offsets and normalised weights of coarse pixel ``i`` of a decimation by ``ratio``.

    Coarse pixel ``i`` is ``sum_n w[n] * x[ratio * i + n]``: the kernel centred at fine coordinate
    ``ratio * i + (ratio - 1) / 2 + shift`` (the grid convention moved by ``shift`` fine pixels),
    evaluated at the fine pixel centres it covers, cut where it vanishes (Keys: 2 coarse pixels;
    Gaussian: 4 sigma) and normalised to sum 1; no interpolation of the image takes place.

    Returns
    -------
    taps, weights : (n,) int ndarray, (n,) float64 ndarray
        Offsets in fine pixels from ``ratio * i``, and weights summing to 1.
    """
    _check_integer(ratio, "ratio")
    taps, weights = _kernel_weights(kernel.kind, kernel.sigma, ratio, shift)
    keep = weights != 0
    taps, weights = taps[keep], weights[keep]
    return taps, weights / weights.sum()


def kernel_reach(kernel: Kernel, *, ratio: int = 2, shift: float = 0.0) -> int:
    """Largest tap offset of :func:`kernel_taps` from ``ratio * i``, fine pixels: coarse pixel ``i`` reads
    ``ratio * i - reach .. ratio * i + reach`` (:func:`ssc_edge.nodata.nodata_where_read`)."""
    return int(np.abs(kernel_taps(kernel, ratio=ratio, shift=shift)[0]).max())


def nominal_kernel(band: str, method: str, *, ratio: int = 2) -> Kernel:
    """The kernel :func:`degrade` ``method`` blurs ``band`` with at ``ratio``: MATLAB ``imresize``'s for
    ``"bicubic"``, else the Gaussian of the band's nominal MTF at Nyquist (``bands.MTF_NYQUIST``)."""
    return Kernel("bicubic") if method == "bicubic" else Kernel("gaussian", mtf_sigma(MTF_NYQUIST[band], ratio=ratio))


def _decimate_axis_taps(image: np.ndarray, taps: np.ndarray, weights: np.ndarray, ratio: int, axis: int) -> np.ndarray:
    reach = int(np.abs(taps).max())
    full = np.zeros(2 * reach + 1)
    full[taps + reach] = weights  # correlate1d centres an odd-length filter on its middle tap
    filtered = ndimage.correlate1d(image, full, axis=axis, mode="reflect")
    return filtered.take(np.arange(0, ratio * (image.shape[axis] // ratio), ratio), axis=axis)


def decimate(
    image: np.ndarray,
    kernels: Kernel | Sequence[Kernel],
    *,
    ratio: int = 2,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Blur with a band's kernel and decimate by ``ratio``, with the coarse grid moved by ``shift``.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        Fine-grid image, any units (DN); returned in the same units.
    kernels : Kernel or sequence of C Kernels
        One kernel for all channels, or one per channel (:func:`kernel_taps`).
    ratio : int
    shift : (float, float)
        (rows, cols), fine pixels: coarse pixel ``i`` is centred at ``ratio * i + (ratio - 1)/2 + shift``.

    Returns
    -------
    (H // ratio, W // ratio[, C]) float64 ndarray
        With ``shift = (0, 0)`` equal (to rounding) to :func:`degrade` with the same kernel.
    """
    _check_integer(ratio, "ratio")
    image = _check_image(image, "image")
    planes = image[..., None] if image.ndim == 2 else image
    channels = planes.shape[2]
    kernels = [kernels] * channels if isinstance(kernels, Kernel) else list(kernels)
    if len(kernels) != channels:
        raise OptionError(f"{len(kernels)} kernels for an image of {channels} channels")
    out = np.empty((planes.shape[0] // ratio, planes.shape[1] // ratio, channels))
    for c, kernel in enumerate(kernels):
        rows = _decimate_axis_taps(planes[..., c], *kernel_taps(kernel, ratio=ratio, shift=shift[0]), ratio, 0)
        out[..., c] = _decimate_axis_taps(rows, *kernel_taps(kernel, ratio=ratio, shift=shift[1]), ratio, 1)
    return out[..., 0] if image.ndim == 2 else out


@dataclass(frozen=True)
class PairModel:
    """How the training pair degrades a scene: a kernel per band and the 20 m grid's offset.

    Estimated once per scene (:func:`ssc_edge.registration.estimate_registration`) or nominal
    (:meth:`nominal`), then passed to :func:`training_pair` for the whole scene or for each window.

    Attributes
    ----------
    fine : tuple of 4 Kernel
        Kernels of the 10 m bands, ``FINE_BANDS`` order (sigma in 10 m pixels).
    coarse : tuple of 6 Kernel
        Kernels of the 20 m bands, ``COARSE_BANDS`` order (sigma in pixels of the 20 m grid they are
        decimated from: the training pair keeps the relative blur that the observed 20 m bands have
        to the 10 m bands, measured in 10 m pixels).
    offset : (float, float)
        (rows, cols), 10 m pixels: where the observed 20 m grid sits against the 10 m one; 20 m pixel
        ``i`` is centred at 10 m coordinate ``2 i + 0.5 + offset`` (0: the nominal grid).
    """

    fine: tuple[Kernel, ...]
    coarse: tuple[Kernel, ...]
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fine", tuple(self.fine))
        object.__setattr__(self, "coarse", tuple(self.coarse))
        if len(self.fine) != len(FINE_BANDS) or len(self.coarse) != len(COARSE_BANDS):
            raise OptionError(
                f"a pair model needs {len(FINE_BANDS)} fine and {len(COARSE_BANDS)} coarse kernels, "
                f"got {len(self.fine)} and {len(self.coarse)}"
            )
        offset = tuple(float(v) for v in self.offset)
        if len(offset) != 2 or not all(abs(v) <= 4.0 for v in offset):
            raise OptionError(f"offset must be (rows, cols) within 4 fine pixels, got {self.offset!r}")
        object.__setattr__(self, "offset", offset)

    @classmethod
    def nominal(cls, method: str) -> PairModel:
        """The kernels of :func:`degrade` ``method`` (``"bicubic"`` or ``"mtf"``: ``bands.MTF_NYQUIST``), no offset."""
        if method not in DEGRADATION_METHODS:
            raise OptionError(f"unknown degradation method {method!r}; choose one of {DEGRADATION_METHODS}")
        return cls(
            fine=tuple(nominal_kernel(b, method) for b in FINE_BANDS),
            coarse=tuple(nominal_kernel(b, method) for b in COARSE_BANDS),
        )

    def reach(self, ratio: int = 2) -> int:
        """Largest tap offset of any kernel of this model, fine pixels of the grid it is applied to."""
        shifts = [(k, -v) for k in self.fine for v in self.offset] + [(k, 0.0) for k in self.coarse]
        return max(kernel_reach(k, ratio=ratio, shift=s) for k, s in shifts)

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "fine": {b: k.to_dict() for b, k in zip(FINE_BANDS, self.fine, strict=True)},
            "coarse": {b: k.to_dict() for b, k in zip(COARSE_BANDS, self.coarse, strict=True)},
            "offset": [round(v, 4) for v in self.offset],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PairModel:
        """Inverse of :meth:`to_dict`; a missing band raises :class:`OptionError`."""
        try:
            fine = tuple(Kernel.from_dict(data["fine"][b]) for b in FINE_BANDS)  # type: ignore[index]
            coarse = tuple(Kernel.from_dict(data["coarse"][b]) for b in COARSE_BANDS)  # type: ignore[index]
            offset = tuple(data.get("offset", (0.0, 0.0)))  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise OptionError(f"pair model is missing {exc}") from None
        return cls(fine=fine, coarse=coarse, offset=offset)  # type: ignore[arg-type]


def pair_margin(model: PairModel | None = None, *, levels: int = 1, upsampling: str = "bicubic") -> int:
    """Fine-pixel margin that makes a window's training pair equal to the same crop of the whole pair.

    Cut the scene at fine rows/cols ``[r0 - m, r1 + m)`` (``m`` the returned margin, clipped where
    the scene ends), with ``r0`` and ``r1`` multiples of ``2 ** (levels + 1)``; build its
    :func:`training_pair` with ``model``; its pixels ``[m' , m' + (r1 - r0) / 2**levels)``, ``m'`` the
    clipped margin divided by ``2 ** levels``, equal the whole scene's pair at ``[r0, r1) / 2**levels``
    exactly (bit for bit). Only ``upsampling="bicubic"`` has finite support. ``model=None`` (the
    nominal pair of ``degradation="bicubic"`` or ``"mtf"``): the larger margin of the two.

    Returns
    -------
    int
        Pixels of the scene's fine grid, a multiple of ``2 ** (levels + 1)``.
    """
    if upsampling != "bicubic":
        raise OptionError(f"upsampling {upsampling!r} is not tile-exact; only 'bicubic' has a finite margin")
    if model is None:
        return max(pair_margin(PairModel.nominal(m), levels=levels) for m in DEGRADATION_METHODS)
    multiple = 2 ** (levels + 1)
    # per level, in that level's fine pixels: the fine kernel's reach, or 2 * (Keys upsampling 3 px + reach)
    per_level = max(model.reach() + 2, 2 * (3 + model.reach() + 1))
    margin = per_level * (2**levels - 1) * 2  # each level doubles the pixel size below it
    return -(-margin // multiple) * multiple


@dataclass(frozen=True)
class TrainingPair:
    """Inputs and target of the zero-shot training one scale below the observed data.

    Attributes
    ----------
    inputs : (H/2, W/2, 10) float32 ndarray
        ``[upsample(degrade(20 m bands)) (6), degrade(10 m bands) (4)]``, DN.
    target : (H/2, W/2, 6) float32 ndarray
        The observed 20 m bands, DN, ``COARSE_BANDS`` order.
    """

    inputs: np.ndarray
    target: np.ndarray


def _check_grids(fine: np.ndarray, coarse: np.ndarray, ratio: int = 2) -> None:
    """Raise :class:`SceneError` unless ``coarse`` (h, w[, C]) is the ``ratio`` times coarser grid of ``fine``."""
    if fine.shape[:2] != (ratio * coarse.shape[0], ratio * coarse.shape[1]):
        part = "half" if ratio == 2 else f"1/{ratio} of"
        raise SceneError(
            f"{10 * ratio} m bands are {coarse.shape[0]}x{coarse.shape[1]}, not {part} the 10 m size "
            f"{fine.shape[0]}x{fine.shape[1]}"
        )


def _cropped_shape(shape: tuple[int, int], levels: int, ratio: int = 2) -> tuple[int, int]:
    """``(H, W)`` cropped at the bottom/right to a multiple of ``ratio ** (levels + 1)`` for ``levels`` degradations.

    Raises :class:`OptionError` unless ``levels`` is an integer >= 1, :class:`SceneError` when nothing is left.
    """
    _check_integer(levels, "levels", minimum=1)
    multiple = ratio ** (levels + 1)
    height, width = (n - n % multiple for n in shape)
    if height < multiple or width < multiple:
        raise SceneError(
            f"scene of {shape[0]}x{shape[1]} px is too small for {levels} level(s) of degradation by {ratio} "
            f"(needs at least {multiple}x{multiple})"
        )
    return height, width


def _degrade_once(
    fine: np.ndarray,
    coarse: np.ndarray,
    *,
    degradation: str,
    model: PairModel | None,
    mtf: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both band groups degraded by 2, float64: with ``model``'s kernels (the 10 m bands centred ``-offset``, see
    :func:`training_pair`) or else :func:`degrade` ``degradation`` with the gains of ``bands.MTF_NYQUIST`` and
    ``mtf``."""
    if model is not None:
        shift = (-model.offset[0], -model.offset[1])
        return decimate(fine, model.fine, shift=shift), decimate(coarse, model.coarse)
    gains = {**MTF_NYQUIST, **(mtf or {})}
    fine = degrade(fine, method=degradation, mtf=[gains[b] for b in FINE_BANDS])
    return fine, degrade(coarse, method=degradation, mtf=[gains[b] for b in COARSE_BANDS])


def model_input(fine: np.ndarray, coarse: np.ndarray, *, upsampling: str = "bicubic") -> np.ndarray:
    """Stack the model input: upsampled 20 m bands, then 10 m bands.

    ``fine`` (H, W, 4) in ``FINE_BANDS`` order and ``coarse`` (H/2, W/2, 6) in ``COARSE_BANDS`` order, DN;
    returns (H, W, 10) float32 DN.
    """
    _check_grids(fine, coarse)
    up = upsample(coarse, ratio=2, method=upsampling)
    return np.concatenate([up, fine], axis=-1).astype(np.float32)


def full_scale_input(scene: Scene, *, upsampling: str = "bicubic") -> np.ndarray:
    """The (H, W, 10) float32 DN input on which a fitted model sharpens ``scene``."""
    return model_input(scene.fine(), scene.coarse(), upsampling=upsampling)


def training_pair(
    scene: Scene,
    *,
    degradation: str = "mtf",
    upsampling: str = "bicubic",
    mtf: Mapping[str, float] | None = None,
    levels: int = 1,
    model: PairModel | None = None,
) -> TrainingPair:
    """Build the Wald-protocol training pair of a scene ``levels`` scales below its fine grid.

    With ``levels=1`` (the zero-shot training of SSC-CNN) both band groups are degraded by 2, the
    degraded 20 m bands upsampled back, and the target is the observed 20 m bands. With ``levels=2``
    everything is degraded once more first (train two scales down, evaluate one scale down). The scene's
    ``reference`` is never read; it is cropped at the bottom/right to a multiple of ``2 ** (levels + 1)`` px.

    Parameters
    ----------
    scene : Scene
    degradation : {"mtf", "bicubic"}
        See :func:`degrade`. ``mtf`` overrides entries of ``bands.MTF_NYQUIST``.
    upsampling : {"bicubic", "spline"}
        See :func:`upsample`.
    model : PairModel, optional
        Kernels per band and the 20 m grid's offset (``degradation`` and ``mtf`` are then unused).
        Each level decimates the 20 m bands with their kernels on their own grid, and the 10 m bands
        with theirs centred ``-offset`` 10 m pixels from the nominal grid, so that the degraded 20 m
        bands sit ``offset`` pixels of the degraded 10 m grid from it, as the observed 20 m bands sit
        from the observed 10 m ones (a plain decimation would halve the offset), and the target (the
        observed 20 m bands, unresampled) sits ``offset`` from the degraded 10 m bands, as the unseen
        10 m truth of a 20 m band sits from the observed 10 m bands. Exact finite kernels: windows
        with :func:`pair_margin` give the same pair.
    """
    height, width = _cropped_shape(scene.shape, levels)
    fine = scene.fine()[:height, :width].astype(np.float64)
    coarse = scene.coarse()[: height // 2, : width // 2].astype(np.float64)
    for _ in range(levels):
        target = coarse
        fine, coarse = _degrade_once(fine, coarse, degradation=degradation, model=model, mtf=mtf)
    return TrainingPair(inputs=model_input(fine, coarse, upsampling=upsampling), target=target.astype(np.float32))


def reduced_resolution_scene(
    scene: Scene,
    *,
    degradation: str = "bicubic",
    model: PairModel | None = None,
) -> Scene:
    """Simulate the reduced-resolution (RR) scene of a scene: the Wald protocol one scale down.

    Both band groups are degraded by 2 and the observed 20 m bands become the ``reference``, as in
    the RR files of the paper's data (``*_cell_RR.mat``): sharpening the returned scene should
    reproduce its reference. The default, ``"bicubic"``, is MATLAB ``imresize(x, 0.5)``, with which
    the Reykjavik RR file was made and with which the paper's Coastal output agrees (see
    ``benchmarks/RESULTS.md``); ``"mtf"`` models the sensor instead.

    The scene is cropped at the bottom/right to a multiple of 4 pixels; its own ``reference`` is not used.

    Parameters
    ----------
    scene : Scene
        Fine bands (H, W), 20 m bands (H/2, W/2), DN.
    degradation : {"bicubic", "mtf"}
        See :func:`degrade` (``mtf``: the gains of ``bands.MTF_NYQUIST``).
    model : PairModel, optional
        An estimated pair (kernels per band, the 20 m grid's offset); ``degradation`` is then
        unused and the RR scene is the one :func:`training_pair` builds with ``model`` (same decimation).

    Returns
    -------
    Scene
        Fine bands (H/2, W/2) and 20 m bands (H/4, W/4), float32 DN, a fine grid twice as coarse
        (``fine_pixel_size`` doubled, georeference scaled), and ``reference`` = the observed 20 m
        bands, (H/2, W/2, 6) DN in ``COARSE_BANDS`` order. Bands other than the fine and 20 m ones
        are dropped. A pixel whose kernel read a no-data pixel of the scene (0 DN,
        :func:`ssc_edge.nodata.nodata_where_read`) is 0 DN, no-data, so it is never scored.
    """
    height, width = (n - n % 4 for n in scene.shape)
    if height < 4 or width < 4:
        raise SceneError(f"scene of {scene.shape[0]}x{scene.shape[1]} px is too small to degrade by 2 (needs 4x4)")
    observed = scene.coarse()[: height // 2, : width // 2]
    fine, coarse = _degrade_once(scene.fine()[:height, :width], observed, degradation=degradation, model=model)
    reach = (model or PairModel.nominal(degradation)).reach()  # 0 DN where a kernel read no-data
    fine = nodata_where_read(fine, scene.fine()[:height, :width], reach=reach)
    coarse = nodata_where_read(coarse, observed, reach=reach)
    bands = {band: fine[..., i] for i, band in enumerate(FINE_BANDS)}
    bands |= {band: coarse[..., i] for i, band in enumerate(COARSE_BANDS)}
    return Scene(
        bands=bands,
        fine_pixel_size=2 * scene.fine_pixel_size,
        reference=observed,
        georef=scene.georef.scaled(2) if scene.georef is not None else None,
        source=scene.source,
        name=f"{scene.name}-RR",
    )
