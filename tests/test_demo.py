"""Tests of the synthetic demo scene (ssc_edge/demo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge import metrics, wald
from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, MTF_NYQUIST, VERY_COARSE_BANDS
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError
from ssc_edge.scene import Scene


@pytest.fixture(scope="module")
def scene() -> Scene:
    return demo_scene()


def _arrays(scene: Scene) -> dict[str, np.ndarray]:
    return {**scene.bands, "reference": scene.reference}


def test_default_is_256_synthetic(scene):
    assert isinstance(scene, Scene)
    assert scene.shape == (256, 256)
    assert scene.name == "synthetic-demo"
    assert scene.fine_pixel_size == 10.0
    assert scene.source is None
    assert scene.georef is None


def test_same_seed_gives_identical_arrays(scene):
    again = demo_scene(size=256, seed=0)
    for name, array in _arrays(scene).items():
        assert np.array_equal(array, _arrays(again)[name]), name


def test_different_seeds_differ(scene):
    other = demo_scene(size=256, seed=1)
    for name, array in _arrays(scene).items():
        assert not np.array_equal(array, _arrays(other)[name]), name


@pytest.mark.parametrize("size", [12, 14, 50, 96, 204, 256])
def test_band_set_and_shapes(size):
    scene = demo_scene(size=size, seed=3)
    assert tuple(scene.bands) == ALL_BANDS
    for band in FINE_BANDS:
        assert scene.bands[band].shape == (size, size)
    for band in COARSE_BANDS:
        assert scene.bands[band].shape == (size // 2, size // 2)
    for band in VERY_COARSE_BANDS:
        assert scene.bands[band].shape == (size // 6, size // 6)
    assert scene.reference.shape == (size, size, len(COARSE_BANDS))
    for array in _arrays(scene).values():
        assert array.dtype == np.float32
        assert array.flags.c_contiguous


@pytest.mark.parametrize("size", [0, -4, 10, 13, 255, 256.0, True, "256", None])
def test_bad_size_is_refused(size):
    with pytest.raises(OptionError, match=r"demo scene size must be an even number of 10 m pixels >= 12, got"):
        demo_scene(size=size)


@pytest.mark.parametrize("seed", [-1, 0.5, None, False])
def test_bad_seed_is_refused(seed):
    with pytest.raises(OptionError, match=r"demo scene seed must be an integer >= 0, got"):
        demo_scene(seed=seed)


def test_numpy_integers_are_accepted():
    scene = demo_scene(size=np.int64(24), seed=np.uint8(5))
    assert np.array_equal(scene.reference, demo_scene(size=24, seed=5).reference)


@pytest.mark.parametrize("seed", [0, 7])
def test_values_are_plausible_dn(seed):
    scene = demo_scene(size=128, seed=seed)
    for name, array in _arrays(scene).items():
        assert np.all(np.isfinite(array)), name
        assert array.min() > 0, name
        assert array.max() < 12000, name
    fine = scene.fine()
    # Vegetation dominates: NIR (B08) above red (B04) on average, as over any green landscape.
    assert fine[..., 3].mean() > 1.5 * fine[..., 2].mean()
    # There is water: some pixels are dark in NIR and SWIR.
    assert np.mean(fine[..., 3] < 500) > 0.005
    assert scene.reference[..., COARSE_BANDS.index("B12")].min() < 200


def test_reference_degrades_to_the_20m_bands(scene):
    gains = [MTF_NYQUIST[b] for b in COARSE_BANDS]
    degraded = wald.degrade(scene.reference, ratio=2, method="mtf", mtf=gains)
    np.testing.assert_array_equal(degraded.astype(np.float32), scene.coarse())


def test_60m_bands_follow_the_landscape():
    scene = demo_scene(size=72, seed=2)
    # B09 is not kept at 10 m; its 60 m band is smoother than, but close to, the 60 m mean of B8A.
    b09 = scene.bands["B09"]
    nir = scene.reference[..., COARSE_BANDS.index("B8A")].reshape(12, 6, 12, 6).mean(axis=(1, 3))
    assert np.corrcoef(b09.ravel(), nir.ravel())[0, 1] > 0.8


def test_bicubic_misses_real_detail(scene):
    """There is sub-20 m detail to recover: plain upsampling stays far below a good sharpening score."""
    sre = metrics.signal_to_reconstruction_error(scene.reference, wald.upsample(scene.coarse(), method="bicubic"))
    assert 15.0 < sre.mean() < 30.0
    assert np.all(sre < 40.0)


def test_reference_is_predictable_from_10m_bands(scene):
    """The 20 m bands share the 10 m bands' spatial structure, so a model has something to learn."""
    reference, fine = scene.reference, scene.fine()
    r = np.corrcoef(reference[..., COARSE_BANDS.index("B8A")].ravel(), fine[..., FINE_BANDS.index("B08")].ravel())
    assert r[0, 1] > 0.9
    # A per-pixel linear map from the four 10 m bands beats bicubic upsampling on every band.
    design = np.c_[fine.reshape(-1, 4), np.ones(fine.shape[0] * fine.shape[1])]
    coefficients, *_ = np.linalg.lstsq(design, reference.reshape(-1, 6), rcond=None)
    linear = (design @ coefficients).reshape(reference.shape)
    bicubic = wald.upsample(scene.coarse(), method="bicubic")
    sre_linear = metrics.signal_to_reconstruction_error(reference, linear)
    sre_bicubic = metrics.signal_to_reconstruction_error(reference, bicubic)
    assert np.all(sre_linear > sre_bicubic + 3.0)


def test_training_pair_works_on_the_demo(scene):
    pair = wald.training_pair(scene, levels=2)
    assert pair.inputs.shape == (64, 64, 10)
    assert pair.target.shape == (64, 64, 6)
