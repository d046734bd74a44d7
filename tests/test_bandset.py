"""Band sets at ratio 2 and 6: the ratio-6 grid and MTF, the training pair, usable 60 m bands."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge import wald
from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, MTF_NYQUIST, VERY_COARSE_BANDS
from ssc_edge.bandset import (
    SIXTY_INPUT_BANDS,
    band_ratio,
    ratio_training_pair,
    require_60m_bands,
    stack_bands,
    usable_60m_bands,
)
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.io import read_scene
from ssc_edge.scene import Scene


@pytest.mark.parametrize("method", ["mtf", "bicubic"])
def test_ratio_6_degradation_keeps_the_pixel_centre_grid(method):
    """A linear ramp in fine coordinates degrades (symmetric kernel) to coarse pixel i's centre 6i + 2.5."""
    ramp = np.tile(np.arange(216, dtype=np.float64), (216, 1))
    coarse = wald.degrade(ramp, ratio=6, method=method, mtf=0.3)
    interior = coarse[10, 4:-4]
    assert np.allclose(interior, 6 * np.arange(4, 32) + 2.5, atol=1e-9)


def test_ratio_6_upsampling_reproduces_a_ramp():
    """Keys cubic reproduces linear functions: coarse values at centres 6i + 2.5 upsample to the fine coordinate."""
    coarse = np.tile(6 * np.arange(20, dtype=np.float64) + 2.5, (20, 1))
    fine = wald.upsample(coarse, ratio=6)
    assert fine.shape == (120, 120)
    assert np.allclose(fine[50, 12:-12], np.arange(12, 108), atol=1e-9)


def test_mtf_kernel_at_ratio_6_has_the_nyquist_gain():
    """A cosine at the 60 m Nyquist frequency (1/12 cycle per 10 m pixel) leaves the degradation scaled by the gain."""
    gain = MTF_NYQUIST["B01"]
    assert wald.mtf_sigma(gain, ratio=6) == pytest.approx(6 * np.sqrt(-2 * np.log(gain)) / np.pi)
    x = np.arange(6 * 40, dtype=np.float64)
    image = np.tile(np.cos(2 * np.pi * x / 12), (60, 1))
    coarse = wald.degrade(image, ratio=6, method="mtf", mtf=gain)
    centres = 6 * np.arange(40) + 2.5
    expected = gain * np.cos(2 * np.pi * centres / 12)
    np.testing.assert_allclose(coarse[5, 4:-4], expected[4:-4], atol=2e-3)


def test_the_20m_set_equals_the_wald_training_pair():
    scene = demo_scene(size=96)
    for levels in (1, 2):
        ours = ratio_training_pair(scene, COARSE_BANDS, degradation="mtf", levels=levels)
        theirs = wald.training_pair(scene, degradation="mtf", levels=levels)
        np.testing.assert_allclose(ours.inputs, theirs.inputs, rtol=1e-6, atol=1e-3)
        np.testing.assert_array_equal(ours.target, theirs.target)


def test_the_60m_pair_degrades_every_band_by_6_and_targets_the_observed_60m_bands():
    scene = demo_scene(size=228)  # cropped to 216 (a multiple of 36)
    pair = ratio_training_pair(scene, VERY_COARSE_BANDS, degradation="bicubic", levels=1)
    assert pair.inputs.shape == (36, 36, 12) and pair.target.shape == (36, 36, 2)
    observed = np.stack([scene.bands[b][:36, :36] for b in VERY_COARSE_BANDS], -1)
    np.testing.assert_array_equal(pair.target, observed)
    b01 = wald.upsample(wald.degrade(scene.bands["B01"][:36, :36], ratio=6, method="bicubic"), ratio=6)
    np.testing.assert_allclose(pair.inputs[..., 0], b01, rtol=1e-6)
    b05 = wald.upsample(wald.degrade(scene.bands["B05"][:108, :108], ratio=6, method="bicubic"), ratio=2)
    np.testing.assert_allclose(pair.inputs[..., SIXTY_INPUT_BANDS.index("B05")], b05, rtol=1e-6)
    b02 = wald.degrade(scene.bands["B02"][:216, :216], ratio=6, method="bicubic")
    np.testing.assert_allclose(pair.inputs[..., SIXTY_INPUT_BANDS.index("B02")], b02, rtol=1e-6)


def test_the_60m_pair_two_levels_down_and_too_small_scenes():
    scene = demo_scene(size=216)
    pair = ratio_training_pair(scene, VERY_COARSE_BANDS, levels=2)
    assert pair.inputs.shape == (6, 6, 12) and pair.target.shape == (6, 6, 2)
    with pytest.raises(SceneError, match=r"too small for 2 level\(s\) of degradation by 6 \(needs at least 216x216\)"):
        ratio_training_pair(demo_scene(size=120), VERY_COARSE_BANDS, levels=2)
    with pytest.raises(OptionError, match="must all be 20 m or all 60 m bands"):
        ratio_training_pair(scene, ("B01", "B05"))


def test_stack_bands_brings_every_band_to_the_10m_grid():
    scene = demo_scene(size=60)
    stacked = stack_bands(scene.bands, SIXTY_INPUT_BANDS, scene.shape, upsampling="bicubic")
    assert stacked.shape == (60, 60, 12)
    assert [band_ratio(b) for b in SIXTY_INPUT_BANDS] == [6, 6, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1]
    np.testing.assert_array_equal(stacked[..., -1], scene.bands["B08"])


def test_reykjavik_has_no_usable_60m_bands_and_coastal_has(shared_data):
    reykjavik = read_scene(shared_data / "reykjavik_cell_RR.mat")  # B01/B09 are zero placeholders, dropped
    assert not usable_60m_bands(reykjavik)
    with pytest.raises(SceneError, match=r"reykjavik_cell_RR\.mat: no usable 60 m bands .* with --bands 20m"):
        require_60m_bands(reykjavik)
    coastal = read_scene(shared_data / "CoastalA_cell.mat")
    assert usable_60m_bands(coastal) and coastal.bands["B01"].shape == (68, 68)


def test_all_zero_60m_band_is_not_usable():
    scene = demo_scene(size=60)
    bands = {b: (np.zeros_like(v) if b == "B09" else v) for b, v in scene.bands.items()}
    assert not usable_60m_bands(Scene(bands=bands, name="zeros"))
    assert set(ALL_BANDS) == set(scene.bands)


def _ramp_scene(size: int, offsets: dict, axis: int) -> Scene:
    """Every band samples the same ramp, ``f(y, x) = y`` (axis 0) or ``x`` (axis 1), at its pixel centres:
    pixel ``i`` of a band of grid ratio ``q`` and offset ``d`` (10 m px) is centred at ``q i + (q - 1) / 2 + d``."""
    bands = {}
    for band in ALL_BANDS:
        q = band_ratio(band)
        centres = q * np.arange(size // q) + (q - 1) / 2 + offsets.get(band, (0.0, 0.0))[axis]
        plane = np.repeat(centres[:, None], size // q, axis=1)
        bands[band] = plane if axis == 0 else plane.T.copy()
    return Scene(bands=bands, name="ramp")


@pytest.mark.parametrize("kernel", [wald.Kernel("gaussian", 1.6), wald.Kernel("bicubic")])
def test_the_ratio_pair_keeps_every_band_offset_at_the_training_scale(kernel):
    """An offset of d 10 m px stays d pixels of the degraded 10 m grid, for every band, at every level.

    On a ramp (exactly reproduced by symmetric kernels and by Keys upsampling, away from the edges), an input
    channel of a band at offset ``d`` then reads the degraded 10 m channel plus ``r**levels * d`` (the ramp in
    10 m px), and the target (the observed 60 m bands) ``r * d_60`` more, as the unseen 10 m truth of a 60 m
    band sits ``d_60`` from the observed 10 m bands. A plain decimation would leave ``d``, not ``r**levels * d``.
    """
    from ssc_edge.bandset import RatioPairModel

    d60, d20 = (1.5, -1.0), (0.5, 0.25)
    offsets = {b: d60 for b in VERY_COARSE_BANDS} | {b: d20 for b in COARSE_BANDS}
    model = RatioPairModel(kernels={b: kernel for b in SIXTY_INPUT_BANDS}, offsets=offsets)
    for axis in (0, 1):
        scene = _ramp_scene(36 * 24, offsets, axis)
        for levels in (1, 2):
            pair = ratio_training_pair(scene, VERY_COARSE_BANDS, levels=levels, model=model)
            n = pair.inputs.shape[0]
            inner = (slice(n // 3, n - n // 3),) * 2
            fine = pair.inputs[..., SIXTY_INPUT_BANDS.index("B02")][inner].astype(np.float64)
            for c, band in enumerate(SIXTY_INPUT_BANDS):
                if levels == 2 and band_ratio(band) == 6:
                    continue  # two levels down its grid is 4 px: the reflected edges reach every pixel
                expected = 6**levels * offsets.get(band, (0.0, 0.0))[axis]
                got = pair.inputs[..., c][inner] - fine
                np.testing.assert_allclose(got, expected, atol=0.02, err_msg=f"{band}, levels {levels}, axis {axis}")
            if levels == 1:
                np.testing.assert_allclose(pair.target[..., 0][inner] - fine, 6 * d60[axis], atol=0.02)


def test_the_ratio_pair_model_at_ratio_2_is_the_20m_pair_model():
    """The per-band shifts of RatioPairModel reduce to wald.training_pair's PairModel (-offset on the 10 m bands)."""
    from ssc_edge.bands import FINE_BANDS
    from ssc_edge.bandset import RatioPairModel

    scene = demo_scene(size=96)
    kernel = wald.Kernel("gaussian", 0.9)
    truth = wald.PairModel(fine=(kernel,) * 4, coarse=(kernel,) * 6, offset=(0.4, -0.3))
    kernels = {b: kernel for b in FINE_BANDS + COARSE_BANDS}
    ours = RatioPairModel(kernels=kernels, offsets={b: (0.4, -0.3) for b in COARSE_BANDS})
    for levels in (1, 2):
        got = ratio_training_pair(scene, COARSE_BANDS, levels=levels, model=ours)
        want = wald.training_pair(scene, levels=levels, model=truth)
        np.testing.assert_allclose(got.inputs, want.inputs, rtol=1e-6, atol=1e-3)
        np.testing.assert_array_equal(got.target, want.target)
    assert RatioPairModel.from_dict(ours.to_dict()) == ours
