"""Full-resolution (no-reference) quality indexes: ideal values, known cases, the paper's outputs, tiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ssc_edge import wald
from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.evaluation import bicubic_baseline, evaluate_estimate, evaluate_full_resolution
from ssc_edge.io import read_estimate, read_scene
from ssc_edge.metrics import universal_image_quality_index
from ssc_edge.quality import (
    FullResolutionQuality,
    QualityAccumulator,
    QualityHook,
    _hypercomplex_product,
    _Moments,
    _q_map,
    full_resolution_quality,
    q2n,
)
from ssc_edge.tiling import plan_tiles

from . import _reference as independent

LOWER_IS_BETTER = ("consistency_sam", "consistency_ergas", "d_lambda_khan", "d_lambda", "d_s", "d_rho")
HIGHER_IS_BETTER = ("consistency_mean_sre", "consistency_q2n", "qnr", "hqnr")


def _box(image: np.ndarray) -> np.ndarray:
    """2 x 2 mean: the degradation that pixel replication inverts exactly."""
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


def _replicate(coarse: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)


def _rr(shared_data, name: str):
    scene = read_scene(shared_data / f"{name}.mat")
    return scene, scene.fine(), scene.coarse()


# ----------------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("n", [2, 4, 8])
def test_hypercomplex_product_is_a_composition_algebra(n):
    """Complex numbers, quaternions and octonions: |x y| = |x| |y| (Hurwitz), for the Cayley-Dickson product."""
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(50, n)), rng.normal(size=(50, n))
    np.testing.assert_allclose(
        np.linalg.norm(_hypercomplex_product(x, y), axis=1),
        np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1),
        rtol=1e-12,
    )
    if n == 2:  # plain complex multiplication
        z = (x[:, 0] + 1j * x[:, 1]) * (y[:, 0] + 1j * y[:, 1])
        np.testing.assert_allclose(_hypercomplex_product(x, y), np.stack([z.real, z.imag], axis=1), rtol=1e-12)


def test_q2n_ideal_and_bounds():
    rng = np.random.default_rng(0)
    x = rng.uniform(500, 3000, size=(64, 96, 6))
    assert q2n(x, x) == pytest.approx(1.0, abs=1e-12)
    noisy = q2n(x, x + rng.normal(0, 200, x.shape))
    assert 0 < noisy < 0.99
    assert q2n(x, x + rng.normal(0, 400, x.shape)) < noisy
    flat = np.full((32, 32, 6), 1000.0)
    assert q2n(flat, flat) == pytest.approx(1.0)  # flat blocks: the mean-bias term, as onions_quality.m
    assert np.isfinite(q2n(flat, 2 * flat)) and q2n(flat, 2 * flat) < 1
    with pytest.raises(OptionError, match="q2n needs two"):
        q2n(x, x[:32])


def test_windowed_q_equals_the_metrics_module():
    """The box-sum Q (qindex.m) against metrics.universal_image_quality_index, an independent implementation."""
    rng = np.random.default_rng(1)
    x = rng.uniform(100, 900, size=(40, 50, 2))
    y = x + rng.normal(0, 50, x.shape)
    both = np.concatenate([x[..., :1], y[..., :1]], axis=-1)
    moments = _Moments.of(both, 8, 0, 40 - 8 + 1)
    mx, vx = moments.statistics(0)
    my, vy = moments.statistics(1)
    centred = both - moments.offset
    from ssc_edge.quality import _window_sums

    cov = (
        moments.n * _window_sums(centred[..., 0] * centred[..., 1], 8, 0, 33) - moments.s1[..., 0] * moments.s1[..., 1]
    )
    ours = _q_map(mx, vx, my, vy, cov, moments.n).mean()
    assert ours == pytest.approx(universal_image_quality_index(x[..., :1], y[..., :1], window=8)[0], rel=1e-6)


# ---------------------------------------------------------------------------------------- known cases
def _one_image_scene(size: int = 64):
    """Every band the same textured image: fused, 10 m and (degraded) 20 m bands agree perfectly."""
    rng = np.random.default_rng(2)
    z = ndimage.gaussian_filter(rng.uniform(0, 1, (size, size)), 1.0) * 4000 + 500
    fused = np.repeat(z[..., None], 6, axis=-1)
    fine = np.repeat(z[..., None], 4, axis=-1)
    return fused, fine, wald.degrade(fused, method="bicubic")


def test_identical_images_give_the_ideal_values():
    fused, fine, coarse = _one_image_scene()
    r = full_resolution_quality(fused, fine, coarse, degradation="bicubic")
    assert r.consistency_sre == (math.inf,) * 6 and r.consistency_mean_sre == math.inf
    assert r.consistency_sam == pytest.approx(0, abs=1e-6)
    assert r.consistency_ergas == 0 and r.consistency_q2n == pytest.approx(1, abs=1e-12)
    assert r.d_lambda == pytest.approx(0, abs=1e-12) and r.d_s == pytest.approx(0, abs=1e-12)
    assert r.qnr == pytest.approx(1, abs=1e-12)
    assert r.d_rho == pytest.approx(0, abs=1e-9)
    assert r.to_dict()["consistency_sre"] == ["inf"] * 6  # JSON-safe, never NaN
    assert FullResolutionQuality.from_dict(r.to_dict()) == r


def test_flat_scene_is_never_nan():
    fused = np.full((64, 64, 6), 1000.0)
    fine = np.full((64, 64, 4), 800.0)
    r = full_resolution_quality(fused, fine, _box(fused), degradation="bicubic")
    values = [v for v in r.to_dict().values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)
    assert r.d_rho == pytest.approx(1.0)  # no local correlation anywhere, as the published code (rho = 0)
    assert r.d_lambda == pytest.approx(0) and r.d_s == pytest.approx(0)


def test_upsampling_is_consistent_but_has_poor_d_rho():
    """Pixel replication is exactly consistent under the 2 x 2 mean it inverts; Keys bicubic nearly so under
    imresize. Neither adds the 10 m detail, so both correlate worse with the 10 m bands than the truth does."""
    scene = demo_scene(size=128)
    fine, coarse = scene.fine(), scene.coarse()
    replicated = full_resolution_quality(_replicate(coarse), fine, coarse, degradation=_box)
    assert replicated.consistency_mean_sre == math.inf and replicated.consistency_q2n == pytest.approx(1)
    bicubic = full_resolution_quality(bicubic_baseline(scene), fine, coarse, degradation="bicubic")
    assert bicubic.consistency_mean_sre > 25  # high, but Keys then imresize is not the identity
    truth = full_resolution_quality(scene.reference, fine, coarse, degradation="mtf")
    assert truth.d_rho < bicubic.d_rho - 0.05 and truth.d_rho < replicated.d_rho - 0.05


def test_each_index_gets_worse_when_the_output_is_misregistered(shared_data):
    """Three bands shifted by one pixel: a spectral and a spatial distortion; every index must say so."""
    _, fine, coarse = _rr(shared_data, "reykjavik_cell_RR")
    good = read_estimate(shared_data / "paper_outputs" / "skipnetpanshapen_r.mat").astype(np.float64)
    bad = good.copy()
    bad[..., :3] = np.roll(good[..., :3], 1, axis=1)
    g, b = (full_resolution_quality(x, fine, coarse, degradation="bicubic") for x in (good, bad))
    for name in LOWER_IS_BETTER:
        assert getattr(b, name) > getattr(g, name), name
    for name in HIGHER_IS_BETTER:
        assert getattr(b, name) < getattr(g, name), name
    # Blur: worse everywhere except QNR's D_lambda, which rewards smoothing (why Khan et al. 2009 replaced it)
    blurred = full_resolution_quality(ndimage.gaussian_filter(good, (1, 1, 0)), fine, coarse, degradation="bicubic")
    assert blurred.d_lambda < g.d_lambda
    assert blurred.d_lambda_khan > g.d_lambda_khan and blurred.d_rho > g.d_rho and blurred.qnr < g.qnr


def test_the_independent_imresize_reproduces_the_reykjavik_cells(shared_data):
    """The data README: the Reykjavik RR cells *are* MATLAB ``imresize(x, 0.5)`` of its reference. The tests'
    own transcription of MATLAB's algorithm (tests/_reference.py) reproduces them to float32 rounding, and the
    package's ``bicubic`` degradation and upsampling equal it."""
    scene, _, coarse = _rr(shared_data, "reykjavik_cell_RR")
    assert np.abs(independent.imresize(scene.reference, 0.5) - coarse).max() < 1e-3
    assert np.abs(wald.degrade(scene.reference.astype(np.float64), ratio=2, method="bicubic") - coarse).max() < 1e-3
    assert np.abs(bicubic_baseline(scene) - independent.imresize(coarse, 2)).max() < 1e-3


@pytest.mark.parametrize(("scene", "suffix"), [("reykjavik_cell_RR", "r"), ("coastalA_cell_RR", "c")])
def test_paper_outputs_rank_as_at_reduced_resolution(shared_data, scene, suffix):
    """SSC-CNN beats the ResNet at reduced resolution (Table 1); consistency SRE and QNR agree on both scenes.

    The values are checked against tests/_reference.py (consistency SRE = the README's SRE of MATLAB
    ``imresize(estimate, 0.5)`` against the 20 m cells; QNR from Alparone et al. 2008 with summed-area tables).
    SSC-CNN / ResNet: Reykjavik consistency 39.63 / 39.51 dB, QNR 0.8924 / 0.8921; Coastal 35.03 / 34.91 dB,
    QNR 0.9903 / 0.9868. D_lambda(K) and, on Reykjavik, D_rho rank them the other way (benchmarks/RESULTS.md).
    """
    scene_value, fine, coarse = _rr(shared_data, scene)
    outputs = {
        name: read_estimate(shared_data / "paper_outputs" / f"{name}panshapen_{suffix}.mat")
        for name in ("skipnet", "resnet")
    }
    reduced = {name: evaluate_estimate(o, scene_value).mean_sre for name, o in outputs.items()}
    full = {name: full_resolution_quality(o, fine, coarse, degradation="bicubic") for name, o in outputs.items()}
    assert reduced["skipnet"] > reduced["resnet"]
    assert full["skipnet"].consistency_mean_sre > full["resnet"].consistency_mean_sre
    assert full["skipnet"].qnr > full["resnet"].qnr
    for name, output in outputs.items():
        consistency = independent.sre(coarse, independent.imresize(output, 0.5))
        np.testing.assert_allclose(full[name].consistency_sre, consistency, atol=1e-4)
        qnr, d_lambda, d_s = independent.qnr(output, fine, coarse)
        got = (full[name].qnr, full[name].d_lambda, full[name].d_s)
        np.testing.assert_allclose(got, (qnr, d_lambda, d_s), atol=1e-9)


def test_reykjavik_reference_is_consistent(shared_data):
    """The Reykjavik RR cells are imresize of Xm_im: the reference itself is consistent to rounding (> 100 dB)."""
    scene = read_scene(shared_data / "reykjavik_cell_RR.mat")
    r = evaluate_full_resolution(scene.reference, scene, degradation="bicubic")
    assert r.consistency_mean_sre > 100 and r.consistency_q2n == pytest.approx(1, abs=1e-6)
    assert r.matched_fine_bands == ("B03", "B08", "B08", "B08", "B08", "B04")
    with pytest.raises(SceneError, match="estimate is 128x128x6"):
        evaluate_full_resolution(np.zeros((128, 128, 6)), scene)


# ------------------------------------------------------------------------------------ window by window
def test_strips_and_tiles_equal_the_whole_image(shared_data):
    scene, fine, coarse = _rr(shared_data, "coastalA_cell_RR")
    estimate = read_estimate(shared_data / "paper_outputs" / "skipnetpanshapen_c.mat")
    whole = full_resolution_quality(estimate, fine, coarse, strip=1024)
    assert len(QualityAccumulator(estimate.shape[:2], strip=1024).strips()) == 1
    strips = full_resolution_quality(estimate, fine, coarse, strip=64)
    assert [s[:2] for s in QualityAccumulator(estimate.shape[:2], strip=64).strips()] == [
        (0, 64),
        (64, 128),
        (128, 204),
    ]
    hook = QualityHook(degradation="bicubic")
    bands = dict(scene.bands)

    def read(band, window):
        return bands[band][window.slices]

    for planned in plan_tiles(estimate.shape[:2], tile=60, halo=5):  # cores arrive in row-major order
        hook(planned.core, estimate[planned.core.slices], read, estimate.shape[:2])
    tiled = hook.result()
    for other in (strips, tiled):
        for key, value in whole.to_dict().items():
            if isinstance(value, float):
                assert getattr(other, key) == pytest.approx(value, rel=1e-8, abs=1e-12), key  # float rounding
            else:
                assert getattr(other, key) == getattr(whole, key) or np.allclose(getattr(other, key), value), key


def test_small_or_bad_input():
    with pytest.raises(SceneError, match="smaller than the 32-px quality windows"):
        QualityAccumulator((16, 64))
    with pytest.raises(OptionError, match="multiple of 64"):
        QualityAccumulator((64, 64), strip=100)
    with pytest.raises(OptionError, match="unknown degradation 'gauss'"):
        QualityAccumulator((64, 64), degradation="gauss")
    hook = QualityHook()
    hook(None, None, None, (16, 16))
    assert hook.result() is None and "smaller than" in hook.skipped
    fused, fine, coarse = _one_image_scene()
    with pytest.raises(SceneError, match="20 m bands are"):
        full_resolution_quality(fused, fine, coarse[:-1])
    accumulator = QualityAccumulator((64, 64))
    with pytest.raises(OptionError, match="never added"):
        accumulator.result()
    assert wald.DEGRADATION_METHODS == ("mtf", "bicubic")


def test_hook_scores_evenly_spaced_strips_on_a_large_scene():
    """With ``max_pixels`` the hook scores a sample of whole strips: the same values as feeding exactly those
    strips to an accumulator by hand, and different from the whole image."""
    rng = np.random.default_rng(7)
    fine = ndimage.gaussian_filter(rng.uniform(500, 3000, (512, 64, 4)), (2, 2, 0))
    fused = ndimage.gaussian_filter(rng.uniform(500, 3000, (512, 64, 6)), (2, 2, 0))
    coarse = wald.degrade(fused, method="bicubic") + rng.normal(0, 5, (256, 32, 6))
    sampled = QualityAccumulator((512, 64), degradation="bicubic", max_strips=2)
    assert [s[:2] for s in sampled.strips()] == [(0, 128), (384, 512)]
    for r0, _, a0, a1 in sampled.strips():
        sampled.add_match_strip(r0, fine[a0:a1], coarse[a0 // 2 : a1 // 2])
    for r0, _, a0, a1 in sampled.strips():
        sampled.add_strip(r0, fused[a0:a1], fine[a0:a1], coarse[a0 // 2 : a1 // 2])
    expected = sampled.result()
    bands = {b: fine[..., i] for i, b in enumerate(FINE_BANDS)} | {
        b: coarse[..., i] for i, b in enumerate(COARSE_BANDS)
    }

    def read(band, window):
        return bands[band][window.slices]

    hook = QualityHook(degradation="bicubic", max_pixels=2 * 128 * 64, fraction=None)
    for planned in plan_tiles((512, 64), tile=96, halo=5):
        hook(planned.core, fused[planned.core.slices], read, (512, 64))
    got = hook.result()
    assert got.consistency_mean_sre == pytest.approx(expected.consistency_mean_sre, rel=1e-6)
    assert got.d_rho == pytest.approx(expected.d_rho, rel=1e-6) and got.qnr == pytest.approx(expected.qnr, rel=1e-6)
    whole = full_resolution_quality(fused, fine, coarse, degradation="bicubic")
    assert whole.consistency_mean_sre != pytest.approx(got.consistency_mean_sre, rel=1e-6)


def test_hook_sample_is_the_cheaper_of_fraction_and_pixel_cap():
    """The default sample: 1/16 of the strips (at least one), capped at HOOK_PIXELS; a full tile scores 2 strips."""
    from ssc_edge.quality import HOOK_FRACTION, HOOK_PIXELS

    assert QualityHook()._strips((10980, 10980)) == 2 == HOOK_PIXELS // (128 * 10980)
    assert QualityHook()._strips((1024, 1024)) == 1  # 8 strips: 1/16 of them rounds to 0, at least one
    assert QualityHook()._strips((4096, 1024)) == round(HOOK_FRACTION * 32) == 2
    assert QualityHook(fraction=None)._strips((4096, 1024)) == HOOK_PIXELS // (128 * 1024)
    assert QualityHook(fraction=None, max_pixels=None)._strips((4096, 1024)) is None  # every strip
    assert QualityHook(fraction=0.5, max_pixels=None)._strips((4096, 1024)) == 16
    with pytest.raises(OptionError, match=r"fraction must be in \(0, 1\]"):
        QualityHook(fraction=0)


def test_a_60m_models_pair_metadata_is_not_read_as_a_20m_pair():
    """A 60 m model's registration metadata holds a RatioPairModel; the 20 m consistency check falls back to mtf."""
    from ssc_edge.bandset import SIXTY_INPUT_BANDS, RatioPairModel
    from ssc_edge.quality import model_degradation
    from ssc_edge.wald import Kernel

    pair = RatioPairModel(kernels={b: Kernel("gaussian", 3.0) for b in SIXTY_INPUT_BANDS}, offsets={"B01": (1.0, 0.0)})
    assert model_degradation({"degradation": "auto"}, {"pair_model": pair.to_dict()}) == "mtf"


def test_no_data_is_left_out_of_every_index_strip_by_strip_and_tile_by_tile(shared_data):
    """A no-data wedge (NaN in the product, 0 DN in the observed bands): every index is finite, strips and
    tiles equal the whole image, and the consistency stays that of the valid part instead of collapsing."""
    scene, fine, coarse = _rr(shared_data, "coastalA_cell_RR")
    estimate = read_estimate(shared_data / "paper_outputs" / "skipnetpanshapen_c.mat")
    rows, cols = np.mgrid[: coarse.shape[0], : coarse.shape[1]]
    wedge20 = rows + cols < 60  # 20 m pixels; their 10 m pixels are no-data too
    wedge10 = np.repeat(np.repeat(wedge20, 2, axis=0), 2, axis=1)
    holed_fine, holed_coarse = np.where(wedge10[..., None], 0, fine), np.where(wedge20[..., None], 0, coarse)
    holed = np.where(wedge10[..., None], np.nan, estimate)
    clean = full_resolution_quality(estimate, fine, coarse, degradation="bicubic")
    whole = full_resolution_quality(holed, holed_fine, holed_coarse, degradation="bicubic", strip=1024)
    assert all(np.isfinite(v) for v in whole.to_dict().values() if isinstance(v, float))
    assert abs(whole.consistency_mean_sre - clean.consistency_mean_sre) < 1.0
    zeros = full_resolution_quality(np.nan_to_num(holed), holed_fine, holed_coarse, degradation="bicubic")
    assert zeros == whole  # what a product holds where the scene observed nothing never counts
    dark = np.where(wedge10[:, ::-1, None], 0.0, holed)  # 0 DN in the product where the scene is observed
    assert full_resolution_quality(dark, holed_fine, holed_coarse).consistency_mean_sre < whole.consistency_mean_sre
    strips = full_resolution_quality(holed, holed_fine, holed_coarse, degradation="bicubic", strip=64)
    hook = QualityHook(degradation="bicubic", fraction=None, max_pixels=None)
    bands = {b: np.where(wedge10 if b in FINE_BANDS else wedge20, 0, scene.bands[b]) for b in FINE_BANDS + COARSE_BANDS}
    for planned in plan_tiles(holed.shape[:2], tile=60, halo=5):
        hook(planned.core, holed[planned.core.slices], lambda b, w: bands[b][w.slices], holed.shape[:2])
    for other in (strips, hook.result()):
        for key, value in whole.to_dict().items():
            if isinstance(value, float):
                assert getattr(other, key) == pytest.approx(value, rel=1e-8, abs=1e-12), key


def test_an_index_with_nothing_left_to_score_is_nan_not_an_error():
    """64 x 64 px: one Q2n block on the 20 m grid; one no-data pixel leaves it no block to score."""
    fused, fine, coarse = _one_image_scene(64)
    fused = np.array(fused, dtype=np.float64)
    fused[10, 10] = np.nan
    result = full_resolution_quality(fused, fine, coarse, degradation="bicubic")
    assert np.isnan(result.consistency_q2n)
    assert result.consistency_mean_sre == np.inf and np.isfinite(result.d_rho)  # the rest still scores (ideal)
