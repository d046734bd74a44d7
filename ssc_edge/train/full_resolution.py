"""The full-resolution stage: a fitted model refined on the scene's own 10 m grid.

A zero-shot fit learns the map one scale down (Wald protocol) and assumes it holds one scale up. Where the sensor's
blur is wider than what the scene's band relation shows (every band of a real product carries its MTF), that
assumption fails and the net under-sharpens. The field's answer (Z-PNN, lambda-PNN, R-FUSE / FR-FUSE; Ciotola,
Scarpa, Vivone et al.) is a second stage on the full-resolution scene itself, which has no reference but two
constraints:

- spectral consistency: the sharpened band, blurred with the band's kernel ``h`` and decimated by 2 on its own grid,
  must give back the observed 20 m band: ``L_spec = || decimate_2(h * y_hat) - y_LR ||_1``, the border cropped
  (the net's zero padding and the kernel's reach);
- structure: its detail must follow the 10 m bands': ``L_struct = || (y_hat - h * y_hat) - D ||_1``, where ``D``
  is the high-pass of the 10 m bands, each scaled by its local regression slope against the band and weighted by a
  softmax of its local correlation with the band (R-FUSE's detail target).

``L = L_spec + structure_weight * L_struct`` is minimised with Adam (lr 1e-4), starting from the reduced-resolution
fit. Which kernel ``h``: :func:`stage_kernels` (the module docs of :mod:`ssc_edge.train.fit` and ``docs/method.md``
say why).

Hand-written rather than taken from a library: no maintained package implements this loss for Keras, and it needs
the exact finite kernels of :mod:`ssc_edge.wald` so that the consistency it enforces is the one the training pair
was built with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .. import wald
from ..bands import COARSE_BANDS
from ..errors import OptionError
from ..progress import ProgressCallback, report
from ._tensorflow import tensorflow
from .model import build_ssc_cnn

logger = logging.getLogger(__name__)

#: Kernel choices of the stage: the sensor's nominal MTF, the pair's estimated kernel, or the wider of the two.
STAGE_KERNELS = ("nominal", "estimated", "wider")


@dataclass(frozen=True)
class StageConfig:
    """Options of the full-resolution stage.

    Attributes
    ----------
    iterations : int
        Adam steps on the whole stage sample (0 turns the stage off).
    learning_rate : float
        Adam step size (R-FUSE: 1e-4).
    structure_weight : float
        Weight of ``L_struct`` against ``L_spec`` (R-FUSE: 0.01).
    pixels : int
        Most 10 m pixels the stage trains on: a larger scene is sampled as square windows.
    window : int
        Side of those windows, 10 m pixels (even).

    The defaults are what ``benchmarks/stage_cost.py`` found: the stage's gain comes with its steps, not its pixels.
    """

    iterations: int = 100
    learning_rate: float = 1e-4
    structure_weight: float = 0.01
    pixels: int = 96 * 96
    window: int = 96

    def __post_init__(self) -> None:
        if int(self.iterations) != self.iterations or self.iterations < 0:
            raise OptionError(f"full-resolution iterations must be a non-negative integer, got {self.iterations!r}")
        if not self.learning_rate > 0 or not self.structure_weight >= 0:
            raise OptionError("full-resolution learning rate must be positive and structure weight non-negative")
        if self.window < 32 or self.window % 2 or self.pixels < self.window**2:
            raise OptionError("full-resolution window must be even and >= 32 px and pixels >= window**2")

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return asdict(self)


def stage_kernels(pair: wald.PairModel | None, choice: str) -> list:
    """The blur of each 20 m band that the stage's consistency uses, on the 10 m grid.

    ``"nominal"``: the Gaussian of the band's nominal MTF at Nyquist (``bands.MTF_NYQUIST``), the sensor's
    own absolute blur; ``"estimated"``: the training pair's kernel (the scene's relative blur,
    :func:`ssc_edge.registration.estimate_registration`); ``"wider"``: per band, the nominal Gaussian unless
    the estimate is a Gaussian wider than it.
    """
    nominal = [wald.nominal_kernel(b, "mtf") for b in COARSE_BANDS]
    if choice == "nominal" or pair is None:
        return nominal
    estimated = list(pair.coarse)
    if choice == "estimated":
        return estimated
    return [e if e.kind == "gaussian" and e.sigma > n.sigma else n for e, n in zip(estimated, nominal, strict=True)]


def _centred_taps(kernel: wald.Kernel, ratio: int) -> np.ndarray:
    """Odd-length weights of ``kernel`` (a decimation by ``ratio``) centred on a 10 m pixel: the blur alone."""
    taps, weights = wald.kernel_taps(kernel, ratio=ratio, shift=-(ratio - 1) / 2)  # centred on 0
    reach = int(np.abs(taps).max())
    full = np.zeros(2 * reach + 1)
    full[taps + reach] = weights
    return full


def _blur(image: np.ndarray, kernels: Sequence[wald.Kernel], ratio: int) -> np.ndarray:
    """(H, W, C) image blurred per channel with its centred kernel (reflect at the edges)."""
    out = np.empty_like(image)
    for c, kernel in enumerate(kernels):
        taps = _centred_taps(kernel, ratio)
        out[..., c] = ndimage.correlate1d(ndimage.correlate1d(image[..., c], taps, axis=0), taps, axis=1)
    return out


def detail_target(upsampled: np.ndarray, fine: np.ndarray, kernels: Sequence[wald.Kernel], *, ratio: int) -> np.ndarray:
    """R-FUSE's detail target ``D`` of each sharpened band, (H, W, C), in the units of ``upsampled``.

    Parameters
    ----------
    upsampled : (H, W, C) ndarray
        The bands to sharpen (six 20 m or two 60 m ones) upsampled to the 10 m grid (the model input's first C).
    fine : (H, W, 4) ndarray
        The 10 m bands, same units.
    kernels : sequence of C Kernels
        Each band's blur (:func:`stage_kernels`) at ``ratio``; the 10 m bands' high-pass is taken with it.

    The local statistics are taken in 7 x 7 px windows; the softmax over the 10 m bands' absolute local correlation
    with the band has temperature 0.1.
    """
    size, temperature = 7, 0.1

    def local(a):
        return ndimage.uniform_filter(a, size=size, mode="reflect")

    out = np.zeros(upsampled.shape, np.float32)
    lows: dict[wald.Kernel, np.ndarray] = {}  # a pooled estimate gives all six bands one kernel: blur once
    for b, kernel in enumerate(kernels):
        if kernel not in lows:
            lows[kernel] = _blur(fine, [kernel] * fine.shape[-1], ratio)
        low = lows[kernel]
        high = fine - low
        band = upsampled[..., b]
        mean_b = local(band)
        var_b = np.maximum(local(band * band) - mean_b**2, 0.0)
        scores, slopes = [], []
        for k in range(fine.shape[-1]):
            mean_k = local(low[..., k])
            var_k = np.maximum(local(low[..., k] ** 2) - mean_k**2, 1e-12)
            cov = local(band * low[..., k]) - mean_b * mean_k
            scores.append(np.abs(cov) / np.sqrt(var_k * np.maximum(var_b, 1e-12)))
            slopes.append(cov / var_k)
        scores = np.stack(scores, axis=-1) / temperature
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        out[..., b] = np.sum(weights * np.stack(slopes, axis=-1) * high, axis=-1)
    return out


def _decimation_filter(kernels: Sequence[wald.Kernel], offset: tuple[float, float], ratio: int = 2):
    """(filter (L, L, C, 1), first tap) of the per-band blur-and-decimate as one strided depthwise conv.

    Coarse pixel ``i`` of band ``c`` is ``sum_{m,n} f[m, n, c] x[r i + t0 + m, r j + t0 + n]``, ``r`` the ratio.
    """
    rows = [wald.kernel_taps(k, ratio=ratio, shift=offset[0]) for k in kernels]
    cols = [wald.kernel_taps(k, ratio=ratio, shift=offset[1]) for k in kernels]
    t0 = int(min(t.min() for t, _ in rows + cols))
    t1 = int(max(t.max() for t, _ in rows + cols))
    size = t1 - t0 + 1
    filt = np.zeros((size, size, len(kernels), 1), np.float32)
    for c, ((tr, wr), (tc, wc)) in enumerate(zip(rows, cols, strict=True)):
        vr, vc = np.zeros(size), np.zeros(size)
        vr[tr - t0], vc[tc - t0] = wr, wc
        filt[..., c, 0] = np.outer(vr, vc)
    return filt, t0


@dataclass(frozen=True)
class StageSample:
    """What the stage trains on: windows of the scene, normalised DN (DN / scale)."""

    inputs: np.ndarray  # (n, h, w, 10): upsampled 20 m bands then 10 m bands (60 m model: 12, bandset order)
    coarse: np.ndarray  # (n, h/r, w/r, C): the observed bands to sharpen (six 20 m or two 60 m ones)
    detail: np.ndarray  # (n, h, w, C): D
    ratio: int = 2  # r: 2 for the 20 m bands, 6 for the 60 m bands


def stage_sample(
    fine: np.ndarray,
    coarse: np.ndarray,
    scale: float,
    kernels: Sequence[wald.Kernel],
    config: StageConfig,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    upsampling: str = "bicubic",
    twenty: np.ndarray | None = None,
) -> StageSample:
    """Cut the stage's sample from a scene's bands: the whole scene, or random windows free of no-data.

    Parameters
    ----------
    fine : (H, W, 4) ndarray
        10 m bands, DN (0 DN or NaN: no-data).
    coarse : (H/r, W/r, C) ndarray
        The bands to sharpen, DN: the six 20 m bands (r = 2), or with ``twenty`` the two 60 m bands (r = 6).
    offset : (float, float)
        Their grid's offset from its nominal place, 10 m px (``PairModel.offset``): the sharpened bands lie
        on that grid, so the detail target is taken from the 10 m bands resampled there (cubic spline).
    twenty : (H/2, W/2, 6) ndarray, optional
        The 20 m bands, DN, for the 60 m model's input (:data:`ssc_edge.bandset.SIXTY_INPUT_BANDS` order).
    """
    fine, coarse = np.asarray(fine, np.float32), np.asarray(coarse, np.float32)
    ratio = 2 if twenty is None else 6
    height, width = fine.shape[:2]
    height, width = height - height % ratio, width - width % ratio
    if height * width <= config.pixels:
        boxes = [(0, 0, height, width)]
    else:
        side = config.window - config.window % ratio
        valid = np.all(np.isfinite(fine) & (fine != 0), axis=-1)
        rng = np.random.default_rng(0)
        boxes, tries = [], 0
        wanted = max(1, config.pixels // side**2)
        while len(boxes) < wanted and tries < 50 * wanted:
            tries += 1
            r = ratio * int(rng.integers(0, (height - side) // ratio + 1))
            c = ratio * int(rng.integers(0, (width - side) // ratio + 1))
            if valid[r : r + side, c : c + side].all() and (r, c, side, side) not in boxes:
                boxes.append((r, c, side, side))
        if not boxes:
            raise OptionError("no window of the scene is free of no-data for the full-resolution stage")
    inputs, lows, details = [], [], []
    for r, c, h, w in boxes:
        f = np.nan_to_num(fine[r : r + h, c : c + w]) / np.float32(scale)
        low = np.nan_to_num(coarse[r // ratio : (r + h) // ratio, c // ratio : (c + w) // ratio]) / np.float32(scale)
        if twenty is None:
            x = wald.model_input(f, low, upsampling=upsampling)
        else:
            mid = np.nan_to_num(twenty[r // 2 : (r + h) // 2, c // 2 : (c + w) // 2]) / np.float32(scale)
            up = (wald.upsample(a, ratio=q, method=upsampling) for a, q in ((low, ratio), (mid, 2)))
            x = np.concatenate([*up, f], axis=-1).astype(np.float32)
        inputs.append(x)
        lows.append(low.astype(np.float32))
        if any(offset):  # the 10 m bands where the sharpened band's pixels are: f(j + d)
            f = ndimage.shift(f, (-offset[0], -offset[1], 0), order=3, mode="nearest")
        details.append(detail_target(x[..., : low.shape[-1]], f, kernels, ratio=ratio))
    return StageSample(np.stack(inputs), np.stack(lows), np.stack(details), ratio)


def stage_losses(sample: StageSample, kernels: Sequence[wald.Kernel], *, border: int = 8):
    """The stage's two losses as a TensorFlow function of a sharpened batch.

    Returns
    -------
    callable
        ``losses(y)`` with ``y`` the (n, h, w, C) sharpened sample (normalised DN, float32 tensor) returns
        ``(L_spec, L_struct)``: the mean absolute error of ``decimate_r(h * y)`` against the observed coarse bands
        and of ``y - h * y`` against the detail target, both without ``border`` 10 m pixels at each window edge
        (the coarse pixels whose kernel reaches into it are left out).
    """
    tf = tensorflow()
    # The sharpened band lies on its own band's grid (the training pair keeps that grid's offset in its
    # target), so it decimates to the observed band with no offset.
    ratio = sample.ratio
    filt, t0 = _decimation_filter(kernels, (0.0, 0.0), ratio)
    size = filt.shape[0]
    height, width = sample.inputs.shape[1:3]
    # coarse pixels i with r i + t0 >= border and r i + t0 + size - 1 < side - border
    i0 = max(0, -(-(border - t0) // ratio))
    i1 = (height - border - size - t0) // ratio + 1
    j1 = (width - border - size - t0) // ratio + 1
    if i1 <= i0 or j1 <= i0:
        raise OptionError(f"full-resolution windows of {height}x{width} px are too small for the stage's kernels")
    first = ratio * i0 + t0
    rows = slice(first, first + ratio * (i1 - i0 - 1) + size)
    cols = slice(first, first + ratio * (j1 - i0 - 1) + size)
    y_low = tf.constant(sample.coarse[:, i0:i1, i0:j1])
    detail = tf.constant(sample.detail[:, border : height - border, border : width - border])
    filt = tf.constant(filt)
    reach = max(len(_centred_taps(k, ratio)) for k in kernels)
    centred = np.zeros((reach, reach, len(kernels), 1), np.float32)
    for c, k in enumerate(kernels):
        taps = _centred_taps(k, ratio)
        pad = (reach - len(taps)) // 2
        centred[pad : pad + len(taps), pad : pad + len(taps), c, 0] = np.outer(taps, taps)
    centred = tf.constant(centred)

    def losses(y):
        low = tf.nn.depthwise_conv2d(y[:, rows, cols], filt, strides=[1, ratio, ratio, 1], padding="VALID")
        blurred = tf.nn.depthwise_conv2d(y, centred, strides=[1, 1, 1, 1], padding="SAME")
        high = (y - blurred)[:, border : height - border, border : width - border]
        return tf.reduce_mean(tf.abs(low - y_low)), tf.reduce_mean(tf.abs(high - detail))

    return losses


def refine_full_resolution(
    model,
    sample: StageSample,
    kernels: Sequence[wald.Kernel],
    config: StageConfig,
    *,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Refine ``model`` (a Keras SSC-CNN, normalised DN in and out) in place on ``sample``.

    Parameters
    ----------
    kernels : sequence of C Kernels
        Each sharpened band's blur relative to the 10 m product (:func:`stage_kernels`; the 60 m bands': at ratio
        6, ``sample.ratio``).

    Returns
    -------
    list of float
        The loss ``L_spec + structure_weight * L_struct`` before each step.
    """
    if config.iterations == 0:
        return []
    tf = tensorflow()
    import keras

    start = time.perf_counter()
    losses = stage_losses(sample, kernels)
    x = tf.constant(sample.inputs)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    weight = tf.constant(config.structure_weight, tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            spectral, structural = losses(tf.cast(model(x, training=True), tf.float32))
            loss = spectral + weight * structural
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    history = []
    for it in range(1, config.iterations + 1):
        history.append(float(step()))
        report(progress, it, config.iterations, f"loss {history[-1]:.3e}")
    n, height, width = sample.inputs.shape[:3]
    seconds = time.perf_counter() - start
    message = "full-resolution stage: %d iterations on %d window(s) of %dx%d px in %.1f s, loss %.3e -> %.3e"
    logger.info(message, config.iterations, n, height, width, seconds, history[0], history[-1])
    return history


def refine_in_precision(
    fit,
    sample: StageSample,
    kernels: Sequence[wald.Kernel],
    config: StageConfig,
    *,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """:func:`refine_full_resolution` of ``fit.model`` (a float32 Keras model) in ``fit.config.precision``: under
    ``mixed_bfloat16`` a copy in that precision is refined and its weights copied back, so the kept model stays
    float32. Returns the loss history."""
    trainable = fit.model
    if fit.config.precision == "mixed_bfloat16":
        channels = {"input_channels": sample.inputs.shape[-1], "output_channels": len(kernels)}
        trainable = build_ssc_cnn(fit.config.model, seed=None, precision=fit.config.precision, **channels)
        trainable.set_weights(fit.model.get_weights())
    history = refine_full_resolution(trainable, sample, kernels, config, progress=progress)
    if trainable is not fit.model:
        fit.model.set_weights(trainable.get_weights())
    return history
