"""The built-in synthetic demo scene: a deterministic, seedable stand-in for a Sentinel-2 L1C scene.

The scene is **synthetic**. A land-cover map (agricultural parcels with crop rows and grassy
margins, a forest with crown texture, an urban district of blocks, buildings and streets,
straight roads, and a meandering river with wooded banks) is drawn on the 10 m grid as
abundance maps of seven spectral endmembers (water, green vegetation, dry vegetation, forest
canopy, bare soil, roof, asphalt). Every pixel's 12-band spectrum is the abundance-weighted sum
of the endmember spectra (top-of-atmosphere-like reflectance), plus a little independent noise,
scaled to DN (reflectance x 10000).

The 20 m and 60 m bands are the rendered ones degraded by 2 and 6 (:func:`ssc_edge.wald.degrade`,
``method="mtf"``), and ``reference`` holds the rendered 20 m bands at 10 m, so the scene can be scored
like a reduced-resolution file. Roads, field margins, crop rows, crowns and buildings are one or two
10 m pixels wide: the 20 m bands miss detail the 10 m bands show, which a model can learn to recover.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, MTF_NYQUIST, VERY_COARSE_BANDS
from .errors import OptionError
from .scene import Scene
from .wald import degrade

__all__ = ["demo_scene"]

#: Endmember reflectance spectra (dimensionless, top-of-atmosphere-like), one row per endmember,
#: columns in ``ALL_BANDS`` order (B01 ... B12, no B10).
_ENDMEMBERS = np.array(
    [  # B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09    B11    B12
        [0.090, 0.070, 0.055, 0.035, 0.028, 0.022, 0.020, 0.017, 0.014, 0.006, 0.006, 0.004],  # water
        [0.095, 0.065, 0.085, 0.045, 0.115, 0.300, 0.380, 0.420, 0.440, 0.150, 0.210, 0.100],  # green vegetation
        [0.110, 0.085, 0.110, 0.115, 0.160, 0.230, 0.260, 0.280, 0.295, 0.110, 0.300, 0.200],  # dry vegetation
        [0.085, 0.050, 0.062, 0.035, 0.080, 0.190, 0.240, 0.265, 0.280, 0.095, 0.135, 0.060],  # forest canopy
        [0.120, 0.105, 0.135, 0.170, 0.195, 0.215, 0.230, 0.245, 0.260, 0.100, 0.330, 0.280],  # bare soil
        [0.170, 0.165, 0.175, 0.185, 0.195, 0.205, 0.210, 0.220, 0.225, 0.090, 0.260, 0.230],  # roof
        [0.115, 0.090, 0.092, 0.098, 0.105, 0.112, 0.118, 0.122, 0.125, 0.050, 0.140, 0.130],  # asphalt
    ]
)
_WATER, _GREEN, _DRY, _FOREST, _SOIL, _ROOF, _ASPHALT = range(len(_ENDMEMBERS))

#: Smallest scene: the 60 m bands are then 2 x 2 pixels.
_MIN_SIZE = 12
#: Standard deviation of the independent per-band noise, reflectance (15 DN).
_NOISE = 0.0015


def demo_scene(*, size: int = 256, seed: int = 0) -> Scene:
    """Return the synthetic demo scene: a made-up, reproducible Sentinel-2 scene with a reference.

    Parameters
    ----------
    size : int
        Height and width of the 10 m grid, pixels. Must be even and at least 12. The 20 m bands
        are ``size/2`` pixels square; the 60 m bands (B01, B09) are ``size // 6`` square and,
        when ``size`` is not a multiple of 6, cover the top-left ``6 * (size // 6)`` pixels
        (as in the Reykjavik file: 256 -> 42).
    seed : int
        Seed of the random layout and noise (``numpy.random.default_rng``), >= 0. The same
        ``(size, seed)`` gives identical arrays on every call; different seeds differ.

    Returns
    -------
    Scene
        ``name="synthetic-demo"``, ``fine_pixel_size=10``, no source or georeference. All 12
        bands as float32 DN (reflectance x 10000, values in about 1..5000): 10 m bands
        (size, size), 20 m bands (size/2, size/2), 60 m bands (size//6, size//6).
        ``reference`` is the (size, size, 6) float32 DN rendering of the 20 m bands at 10 m in
        ``COARSE_BANDS`` order; ``degrade(reference, method="mtf", mtf=MTF of COARSE_BANDS)``
        reproduces the 20 m bands.

    Raises
    ------
    OptionError
        If ``size`` is not an even integer >= 12 or ``seed`` is not an integer >= 0.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE or size % 2:
        raise OptionError(f"demo scene size must be an even number of 10 m pixels >= {_MIN_SIZE}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"demo scene seed must be an integer >= 0, got {seed!r}")
    size = int(size)
    rng = np.random.default_rng(int(seed))
    abundances = _land_cover(rng, size)
    reflectance = abundances @ _ENDMEMBERS.astype(np.float32)
    reflectance += rng.standard_normal(reflectance.shape, dtype=np.float32) * np.float32(_NOISE)
    dn = np.clip(reflectance * 10000, 1, None).astype(np.float32)
    index = {band: i for i, band in enumerate(ALL_BANDS)}

    bands = {band: dn[..., index[band]] for band in FINE_BANDS}
    reference = np.ascontiguousarray(dn[..., [index[b] for b in COARSE_BANDS]])
    for group, ratio in ((COARSE_BANDS, 2), (VERY_COARSE_BANDS, 6)):
        gains = [MTF_NYQUIST[b] for b in group]
        degraded = degrade(dn[..., [index[b] for b in group]], ratio=ratio, method="mtf", mtf=gains)
        bands.update({band: degraded[..., i].astype(np.float32) for i, band in enumerate(group)})
    ordered = {band: bands[band] for band in ALL_BANDS}
    return Scene(bands=ordered, fine_pixel_size=10.0, reference=reference, name="synthetic-demo")


def _land_cover(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 7) float32 endmember abundances of the whole synthetic landscape, 10 m grid."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    abundances = _fields(rng, size, rows, cols)
    canopy = _forest_canopy(rng, size)
    _paint(abundances, _forest_cover(rng, size), canopy)
    urban_cover, window, town = _urban(rng, size, rows, cols)
    _paint(abundances[window], urban_cover[window], town)
    for _ in range(2 + size // 512):
        _paint(abundances, _road_cover(rng, size, rows, cols), _pure(_ASPHALT))
    water_cover, bank_cover = _river_cover(rng, size, rows, cols)
    _paint(abundances, bank_cover, canopy)
    _paint(abundances, water_cover, _pure(_WATER))
    return abundances


def _pure(endmember: int) -> np.ndarray:
    """Abundance vector of one pure endmember, (7,) float32."""
    vector = np.zeros(len(_ENDMEMBERS), dtype=np.float32)
    vector[endmember] = 1.0
    return vector


def _paint(abundances: np.ndarray, cover: np.ndarray, material: np.ndarray) -> None:
    """Alpha-composite ``material`` ((7,) or (H, W, 7)) over ``abundances`` with ``cover`` (H, W) in [0, 1]."""
    where = np.nonzero(cover)
    alpha = cover[where][:, None]
    painted = material[where] if material.ndim == 3 else material
    abundances[where] = abundances[where] * (1 - alpha) + alpha * painted


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """(size, size) float32 smooth random field of unit standard deviation, correlation length ~``scale`` px."""
    n = int(np.ceil(size / scale)) + 4
    coarse = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.7, mode="wrap")
    field = ndimage.zoom(coarse, scale, order=1, mode="reflect", grid_mode=True)
    offset = int(2 * scale)
    field = field[offset : offset + size, offset : offset + size]
    return ((field - field.mean()) / field.std()).astype(np.float32)


def _fields(rng: np.random.Generator, size: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Agricultural parcels (Voronoi cells of a jittered grid) with crop rows and 1-pixel grassy margins."""
    spacing = 36
    cells = size // spacing + 2
    seeds_r = ((np.arange(cells)[:, None] - 0.5 + rng.uniform(0.1, 0.9, (cells, cells))) * spacing).astype(int)
    seeds_c = ((np.arange(cells)[None, :] - 0.5 + rng.uniform(0.1, 0.9, (cells, cells))) * spacing).astype(int)
    seeds_r, seeds_c = np.clip(seeds_r, 0, size - 1).ravel(), np.clip(seeds_c, 0, size - 1).ravel()
    labels = np.zeros((size, size), dtype=np.int32)
    labels[seeds_r, seeds_c] = np.arange(1, seeds_r.size + 1)
    nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    parcel = labels[nearest[0], nearest[1]] - 1
    count = seeds_r.size

    # Per-parcel crop state: green cover, dryness, row direction, period (2.5-6 px) and strength.
    green = rng.choice([0.9, 0.7, 0.45, 0.1], size=count, p=[0.35, 0.25, 0.25, 0.15])
    dry = rng.uniform(0.0, 0.5, count) * (1 - green)
    angle = rng.uniform(0, np.pi, count)
    period = rng.uniform(2.5, 6.0, count)
    strength = rng.uniform(0.0, 0.3, count) * (green > 0.3)
    phase = 2 * np.pi * (cols * np.cos(angle)[parcel] + rows * np.sin(angle)[parcel]) / period[parcel]
    vigour = 0.08 * _smooth_noise(rng, size, 12.0)
    cover = np.clip(green[parcel] + strength[parcel] * np.sin(phase) + vigour, 0.0, 1.0)
    dryness = np.clip(dry[parcel] + 0.05 * _smooth_noise(rng, size, 8.0), 0.0, 1.0 - cover)

    abundances = np.zeros((size, size, len(_ENDMEMBERS)), dtype=np.float32)
    abundances[..., _GREEN] = cover
    abundances[..., _DRY] = dryness
    abundances[..., _SOIL] = 1.0 - cover - dryness
    margin = np.zeros((size, size), dtype=bool)
    margin[:-1] |= parcel[:-1] != parcel[1:]
    margin[:, :-1] |= parcel[:, :-1] != parcel[:, 1:]
    _paint(abundances, margin.astype(np.float32), np.array([0, 0.55, 0.3, 0, 0.15, 0, 0], dtype=np.float32))
    return abundances


def _forest_cover(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) cover in [0, 1] of about a fifth of the scene, edges one or two pixels wide."""
    scale = 48.0
    noise = _smooth_noise(rng, size, scale)
    return np.clip((noise - 0.85) * scale / 6, 0.0, 1.0)


def _forest_canopy(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 7) abundances of a canopy of 2-4 px crowns over shaded soil and undergrowth."""
    crowns = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
    crowns = np.clip(0.75 + 0.9 * crowns, 0.2, 1.0)
    canopy = np.zeros((size, size, len(_ENDMEMBERS)), dtype=np.float32)
    canopy[..., _FOREST] = crowns
    canopy[..., _GREEN] = 0.4 * (1 - crowns)
    canopy[..., _SOIL] = 0.25 * (1 - crowns)  # the rest is shadow: the sum stays below one
    return canopy


def _urban(
    rng: np.random.Generator, size: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, tuple[slice, slice], np.ndarray]:
    """A town of 5-px buildings, 2-px streets and gardens in blocks.

    Returns its (size, size) cover, the window (row and column slices) that holds all of it, and
    the (h, w, 7) abundances in that window.
    """
    centre_r, centre_c = rng.uniform(0.25, 0.75, 2) * size
    radius = rng.uniform(0.12, 0.2) * size * (1 + 0.2 * _smooth_noise(rng, size, max(size / 8, 4.0)))
    distance = np.hypot(rows - centre_r, cols - centre_c)
    cover = np.clip(radius - distance, 0.0, 1.0)
    block_r, block_c = rng.integers(14, 23, 2)
    lot = 6
    lots = size // lot + 1
    brightness_table = rng.uniform(0.6, 1.35, (lots, lots))
    garden_table = rng.uniform(size=(lots, lots)) < 0.2

    inside_r, inside_c = np.nonzero(cover.any(axis=1))[0], np.nonzero(cover.any(axis=0))[0]
    if inside_r.size == 0 or inside_c.size == 0:
        window = (slice(0, 0), slice(0, 0))
    else:
        window = (slice(inside_r[0], inside_r[-1] + 1), slice(inside_c[0], inside_c[-1] + 1))
    rows, cols = rows[window], cols[window]
    street = (rows % block_r < 2) | (cols % block_c < 2)
    lot_r, lot_c = (rows // lot).astype(int), (cols // lot).astype(int)
    brightness = brightness_table[lot_r, lot_c]
    garden = garden_table[lot_r, lot_c]
    gap = (rows % lot == lot - 1) | (cols % lot == lot - 1)

    town = np.zeros((*rows.shape, len(_ENDMEMBERS)), dtype=np.float32)
    town[..., _ROOF] = np.where(garden | gap, 0.0, brightness)
    town[..., _GREEN] = np.where(garden, 0.8, np.where(gap, 0.3, 0.0))
    town[..., _SOIL] = np.where(garden, 0.2, np.where(gap, 0.5, 0.0))
    town[..., _ASPHALT] = np.where(gap & ~garden, 0.2, 0.0)
    town[street] = _pure(_ASPHALT)
    return cover, window, town


def _road_cover(rng: np.random.Generator, size: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(size, size) cover of a straight road 1.2-2 px wide crossing the scene, anti-aliased."""
    centre_r, centre_c = rng.uniform(0, size, 2)
    angle = rng.uniform(0, np.pi)
    width = rng.uniform(1.2, 2.0)
    distance = np.abs((cols - centre_c) * np.sin(angle) - (rows - centre_r) * np.cos(angle))
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def _river_cover(
    rng: np.random.Generator, size: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Water cover of a meandering river 4-12 px wide, and the cover of its 3-px wooded banks."""
    along, across = (cols, rows) if rng.uniform() < 0.5 else (rows, cols)
    length = rng.uniform(0.6, 1.2) * size
    phases = rng.uniform(0, 2 * np.pi, 3)
    centre = np.full_like(along, rng.uniform(0.3, 0.7) * size)
    slope = np.zeros_like(along)
    for amplitude, wavelength, phase in ((0.08 * size, length, phases[0]), (0.02 * size, length / 3.7, phases[1])):
        argument = 2 * np.pi * along / wavelength + phase
        centre += amplitude * np.sin(argument)
        slope += amplitude * 2 * np.pi / wavelength * np.cos(argument)
    width = 8 + 4 * np.sin(2 * np.pi * along / (0.5 * size) + phases[2])
    distance = np.abs(across - centre) / np.sqrt(1 + slope**2)
    water = np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)
    banks = np.clip(width / 2 + 3.5 - distance, 0.0, 1.0)
    return water, banks
