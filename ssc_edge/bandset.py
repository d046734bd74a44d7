"""Which bands a model sharpens, at which ratio, and the Wald training pair of either band set.

Two band sets exist: the six 20 m bands sharpened at ratio 2 (SSC-CNN as published) and the two
60 m bands B01, B09 sharpened at ratio 6 (as DSen2's 60 m network, Lanaras et al. 2018, ISPRS J.
Photogramm. 146). Every function here takes the output bands and derives the ratio from their
ground sampling distance, so the 20 m and the 60 m paths are one code path.

Layout: H x W x C, DN, bands in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .bands import COARSE_BANDS, FINE_BANDS, GSD, MTF_NYQUIST, VERY_COARSE_BANDS
from .errors import OptionError, SceneError
from .scene import Scene
from .wald import Kernel, TrainingPair, _cropped_shape, decimate, degrade, kernel_reach, nominal_kernel, upsample

__all__ = [
    "BAND_SETS",
    "SIXTY_INPUT_BANDS",
    "TWENTY_INPUT_BANDS",
    "band_ratio",
    "input_bands_for",
    "usable_60m_bands",
    "require_60m_bands",
    "stack_bands",
    "ratio_training_pair",
    "ratio_reduced_scene",
    "RatioPairModel",
]

#: ``fit-and-export --bands`` choices: the 20 m set, the 60 m set, or both.
BAND_SETS = ("all", "20m", "60m")

#: Input of the 20 m model: the 20 m bands upsampled, then the 10 m bands (``wald.model_input`` order).
TWENTY_INPUT_BANDS: tuple[str, ...] = COARSE_BANDS + FINE_BANDS
#: Input of the 60 m model: the 60 m bands upsampled by 6, the 20 m bands upsampled by 2, the 10 m
#: bands. The sharpened bands come first, as in the 20 m model, so the global residual adds the
#: first channels.
SIXTY_INPUT_BANDS: tuple[str, ...] = VERY_COARSE_BANDS + COARSE_BANDS + FINE_BANDS


def band_ratio(band: str) -> int:
    """Pixels of the 10 m grid per pixel of ``band``'s grid (1, 2 or 6)."""
    return GSD[band] // 10


def _set_ratio(output_bands: Sequence[str]) -> int:
    ratios = {band_ratio(b) for b in output_bands}
    if len(ratios) != 1 or 1 in ratios:
        raise OptionError(f"output bands {', '.join(output_bands)} must all be 20 m or all 60 m bands")
    return ratios.pop()


def input_bands_for(output_bands: Sequence[str]) -> tuple[str, ...]:
    """The model input of a band set: :data:`TWENTY_INPUT_BANDS` or :data:`SIXTY_INPUT_BANDS`."""
    return SIXTY_INPUT_BANDS if _set_ratio(output_bands) == 6 else TWENTY_INPUT_BANDS


def usable_60m_bands(scene: Scene) -> bool:
    """True when the scene holds both 60 m bands with data (readers drop all-zero placeholders)."""
    return all(b in scene.bands and np.any(scene.bands[b]) for b in VERY_COARSE_BANDS)


def require_60m_bands(scene: Scene) -> None:
    """Raise :class:`SceneError` unless the scene has usable 60 m bands (see :func:`usable_60m_bands`)."""
    if not usable_60m_bands(scene):
        where = scene.source if scene.source is not None else scene.name
        raise SceneError(
            f"{where}: no usable 60 m bands (B01 and B09 missing or all-zero placeholders); "
            "fit the 20 m bands with --bands 20m"
        )


@dataclass(frozen=True)
class RatioPairModel:
    """How :func:`ratio_training_pair` degrades each band: its kernel, and its grid's offset.

    The ratio-``r`` counterpart of :class:`ssc_edge.wald.PairModel`, band by band, for any band set
    (made by :func:`ssc_edge.registration.sixty_pair_model` for the 60 m set).

    Attributes
    ----------
    kernels : mapping of str to Kernel
        Every input band's kernel, sigma in pixels of the band's own grid.
    offsets : mapping of str to (float, float)
        (rows, cols), 10 m pixels: where a band's grid sits against the 10 m grid (its pixel ``i``
        centred at ``q i + (q - 1) / 2 + offset``, ``q`` its :func:`band_ratio`); a band not named
        sits on the nominal grid.
    """

    kernels: Mapping[str, Kernel]
    offsets: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def shift(self, band: str, output_bands: Sequence[str], ratio: int) -> tuple[float, float]:
        """Shift of ``band``'s decimation by ``ratio``, pixels of its own grid, that keeps every offset.

        Degrading band ``b`` (offset ``d_b``, grid ratio ``q_b``) with its kernel centred
        ``t_b = (r - 1) (d_b - d_out) / q_b`` from the nominal grid puts it ``d_b - d_out`` pixels of
        the degraded 10 m grid from where that grid's convention puts it, and the target (the
        observed output bands, offset ``d_out``) ``d_out`` from the degraded 10 m bands, as the
        unseen 10 m truth of an output band sits from the observed 10 m bands. For ``r = 2`` and the
        20 m set this is :func:`ssc_edge.wald.training_pair`'s ``-offset`` on the 10 m bands.
        """
        target = self.offsets.get(output_bands[0], (0.0, 0.0))
        here = self.offsets.get(band, (0.0, 0.0))
        q = band_ratio(band)
        return ((ratio - 1) * (here[0] - target[0]) / q, (ratio - 1) * (here[1] - target[1]) / q)

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "kernels": {b: k.to_dict() for b, k in self.kernels.items()},
            "offsets": {b: [round(v, 4) for v in d] for b, d in self.offsets.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RatioPairModel:
        """Inverse of :meth:`to_dict`."""
        kernels = {b: Kernel.from_dict(k) for b, k in data["kernels"].items()}  # type: ignore[union-attr]
        offsets = {b: (float(d[0]), float(d[1])) for b, d in data.get("offsets", {}).items()}  # type: ignore[union-attr]
        return cls(kernels=kernels, offsets=offsets)


def stack_bands(
    bands: Mapping[str, np.ndarray], input_bands: Sequence[str], fine_shape: tuple[int, int], *, upsampling: str
) -> np.ndarray:
    """Stack a model input: every band brought to the 10 m grid by its own ratio.

    Parameters
    ----------
    bands : mapping of str to ndarray
        Each band on its own grid, DN: ``fine_shape // band_ratio(band)``.
    input_bands : sequence of str
        Channel order of the result.
    fine_shape : (int, int)
        ``(H, W)`` of the 10 m grid, pixels.
    upsampling : str
        :func:`ssc_edge.wald.upsample` method for the 20 m and 60 m bands.

    Returns
    -------
    (H, W, len(input_bands)) float32 ndarray, DN.
    """
    planes = []
    for band in input_bands:
        ratio = band_ratio(band)
        plane = np.asarray(bands[band], dtype=np.float64)
        expected = (fine_shape[0] // ratio, fine_shape[1] // ratio)
        if plane.shape != expected:
            raise SceneError(f"band {band} is {plane.shape[0]}x{plane.shape[1]}, expected {expected[0]}x{expected[1]}")
        planes.append(plane if ratio == 1 else upsample(plane, ratio=ratio, method=upsampling))
    return np.stack(planes, axis=-1).astype(np.float32)


def ratio_training_pair(
    scene: Scene,
    output_bands: Sequence[str],
    *,
    degradation: str = "mtf",
    upsampling: str = "bicubic",
    levels: int = 1,
    model: RatioPairModel | None = None,
) -> TrainingPair:
    """The Wald-protocol training pair of a band set, ``levels`` scales of its ratio below the data.

    Every band is degraded by the set's ratio ``r`` (2 for 20 m bands, 6 for 60 m bands) ``levels`` times;
    the input stacks the degraded bands brought back to the degraded 10 m grid (:func:`stack_bands`); the
    target is ``output_bands`` as observed (``levels=1``) or degraded ``levels - 1`` times. For ``r = 6`` this
    is DSen2's training of its 60 m network; for the 20 m set it equals :func:`ssc_edge.wald.training_pair`.
    The scene's ``reference`` is never read; its 10 m grid is cropped at the bottom/right to a multiple of
    ``r ** (levels + 1)`` pixels.

    Parameters
    ----------
    scene : Scene
        Must hold every band of :func:`input_bands_for` (``output_bands``).
    output_bands : sequence of str
        ``COARSE_BANDS`` or ``VERY_COARSE_BANDS``.
    degradation : {"mtf", "bicubic"}
        :func:`ssc_edge.wald.degrade` method, with ``ratio=r`` (for ``mtf`` the Gaussian sigma is
        ``r sqrt(-2 ln G) / pi`` pixels of each band's own grid, ``G`` from ``bands.MTF_NYQUIST``).
    upsampling : str
        :func:`ssc_edge.wald.upsample` method.
    levels : int
        1: the zero-shot training pair; 2: one more scale down (to evaluate at ``levels=1``).
    model : RatioPairModel, optional
        Each band's kernel and grid offset (``degradation`` is then unused): every
        band is decimated with its kernel on its own grid, shifted by :meth:`RatioPairModel.shift`
        so that the pair keeps the observed offsets at every level (the 60 m counterpart of
        :func:`ssc_edge.wald.training_pair` with a ``PairModel``).

    Returns
    -------
    TrainingPair
        ``inputs`` (h, w, C_in) and ``target`` (h, w, len(output_bands)), float32 DN,
        ``h = H // r ** levels``.
    """
    current, target, fine_shape = _degraded_bands(scene, output_bands, degradation, levels, model)
    inputs = stack_bands(current, input_bands_for(output_bands), fine_shape, upsampling=upsampling)
    return TrainingPair(inputs=inputs, target=target.astype(np.float32))


def ratio_reduced_scene(
    scene: Scene,
    output_bands: Sequence[str],
    *,
    degradation: str = "mtf",
    model: RatioPairModel | None = None,
) -> tuple[Scene, np.ndarray]:
    """The reduced-resolution scene of a band set: every band degraded once by the set's ratio ``r``.

    The same degradation as :func:`ratio_training_pair` (``levels=1``), kept as a scene: each input band
    on its own grid, ``r`` times coarser, so a model of the set can be run on it and scored against the
    observed ``output_bands`` (the precision gate of a 60 m model). For the 20 m set the scene is
    :func:`ssc_edge.wald.reduced_resolution_scene`'s.

    Returns
    -------
    scene : Scene
        Float32 DN, no reference (a :class:`Scene`'s reference holds the six 20 m bands); ``fine_pixel_size``
        multiplied by ``r``; the 10 m grid cropped to a multiple of ``r ** 2`` before degrading, so the
        reduced 10 m size is a multiple of ``r``.
    reference : (H / r, W / r, len(output_bands)) float32 ndarray
        The observed ``output_bands``, DN: what a model run on ``scene`` should reproduce.

    A reduced pixel whose kernel read a no-data pixel (0 DN) of its band is 0 DN, no-data
    (:func:`ssc_edge.nodata.nodata_where_read`), as in the 20 m set's scene, so no value made from
    no-data is ever scored.
    """
    from .nodata import nodata_where_read

    current, target, _ = _degraded_bands(scene, output_bands, degradation, 1, model)
    ratio = _set_ratio(output_bands)
    height, width = _cropped_shape(scene.shape, 1, ratio)
    for b, degraded in current.items():
        q = band_ratio(b)
        if model is not None:
            kernel, shift = model.kernels[b], model.shift(b, output_bands, ratio)
        else:
            kernel, shift = nominal_kernel(b, degradation, ratio=ratio), (0.0, 0.0)
        reach = max(kernel_reach(kernel, ratio=ratio, shift=s) for s in shift)
        observed = np.asarray(scene.bands[b])[: height // q, : width // q]
        current[b] = nodata_where_read(degraded, observed, reach=reach, ratio=ratio)
    reduced = Scene(
        bands={b: v.astype(np.float32) for b, v in current.items()},
        fine_pixel_size=ratio * scene.fine_pixel_size,
        source=scene.source,
        name=f"{scene.name}-RR{ratio}",
    )
    return reduced, target.astype(np.float32)


def _degraded_bands(
    scene: Scene,
    output_bands: Sequence[str],
    degradation: str,
    levels: int,
    model: RatioPairModel | None,
) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[int, int]]:
    """Every input band degraded ``levels`` times (see :func:`ratio_training_pair`); the last target; the
    degraded 10 m shape."""
    ratio = _set_ratio(output_bands)
    input_bands = input_bands_for(output_bands)
    missing = [b for b in input_bands if b not in scene.bands]
    if missing:
        where = scene.source if scene.source is not None else scene.name
        raise SceneError(f"{where}: the {ratio * 10} m model needs band(s) {', '.join(missing)}, which the scene lacks")
    lacking = [b for b in input_bands if model is not None and b not in model.kernels]
    if lacking:
        raise OptionError(f"the pair model has no kernel for {', '.join(lacking)}")
    height, width = _cropped_shape(scene.shape, levels, ratio)
    current = {
        b: np.asarray(scene.bands[b], np.float64)[: height // band_ratio(b), : width // band_ratio(b)]
        for b in input_bands
    }
    target = None
    for _ in range(levels):
        target = np.stack([current[b] for b in output_bands], axis=-1)
        if model is None:
            current = {b: degrade(v, ratio=ratio, method=degradation, mtf=MTF_NYQUIST[b]) for b, v in current.items()}
        else:
            current = {
                b: decimate(v, model.kernels[b], ratio=ratio, shift=model.shift(b, output_bands, ratio))
                for b, v in current.items()
            }
    return current, target, (height // ratio**levels, width // ratio**levels)
