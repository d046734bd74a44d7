"""Evaluation: the paper's Table 1 from its own outputs, the upsampling baselines, and the report table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.evaluation import bicubic_baseline, evaluate_estimate, format_quality_table
from ssc_edge.io import read_estimate, read_scene
from ssc_edge.scene import Scene

from . import _reference as independent

# README of ../shared/data: the paper's outputs scored against the RR references.
TABLE_1 = {
    ("skipnetpanshapen_c", "coastalA_cell_RR"): (33.93, [32.78, 34.67, 35.05, 36.11, 34.29, 30.66], 1.5166),
    ("skipnetpanshapen_r", "reykjavik_cell_RR"): (28.03, [25.98, 28.76, 28.72, 29.55, 29.20, 25.95], 1.6765),
    ("resnetpanshapen_c", "coastalA_cell_RR"): (30.40, None, 2.0755),
    ("resnetpanshapen_r", "reykjavik_cell_RR"): (26.67, None, 1.8524),
}


@pytest.fixture(scope="module")
def rr_scenes(shared_data) -> dict[str, Scene]:
    return {name: read_scene(shared_data / f"{name}.mat") for name in ("coastalA_cell_RR", "reykjavik_cell_RR")}


@pytest.mark.parametrize(("output", "scene_name"), list(TABLE_1))
def test_paper_table_1(shared_data, rr_scenes, output, scene_name):
    mean_sre, band_sre, sam = TABLE_1[output, scene_name]
    report = evaluate_estimate(read_estimate(shared_data / "paper_outputs" / f"{output}.mat"), rr_scenes[scene_name])
    assert report.band_names == COARSE_BANDS
    assert report.mean_sre == pytest.approx(mean_sre, abs=0.01)
    if band_sre is not None:
        np.testing.assert_allclose(report.sre, band_sre, atol=0.02)
    assert report.sam == pytest.approx(sam, abs=1e-3)
    assert 0 < report.ergas < 3 and all(0.9 < s <= 1 for s in report.ssim)


# The README's scipy.ndimage.zoom(order=3) figures (corner-aligned grid).
README_ZOOM = {"coastalA_cell_RR": 21.58, "reykjavik_cell_RR": 18.27}


@pytest.mark.parametrize("scene_name", list(README_ZOOM))
def test_upsampling_baselines(rr_scenes, scene_name):
    """Each baseline against an independent one: MATLAB imresize(x, 2) as tests/_reference.py transcribes it for
    ``bicubic``, scikit-image's order-3 spline resize for ``spline``, and the README's figure for scipy's zoom."""
    from skimage.transform import resize

    scene = rr_scenes[scene_name]
    coarse, ref = scene.coarse().astype(np.float64), scene.reference
    bicubic = bicubic_baseline(scene)
    assert np.abs(bicubic - independent.imresize(coarse, 2)).max() < 1e-3
    expected = np.mean(independent.sre(ref, independent.imresize(coarse, 2)))
    assert evaluate_estimate(bicubic, scene).mean_sre == pytest.approx(expected, abs=1e-4)
    spline = resize(coarse, ref.shape, order=3, mode="symmetric", anti_aliasing=False)
    expected = np.mean(independent.sre(ref, spline))
    assert evaluate_estimate(bicubic_baseline(scene, method="spline"), scene).mean_sre == pytest.approx(
        expected, abs=0.01
    )
    # Independent check of the metric: scipy's zoom with its default (corner-aligned) grid gives the README numbers.
    zoomed = ndimage.zoom(scene.coarse(), (2, 2, 1), order=3)
    assert evaluate_estimate(zoomed, scene).mean_sre == pytest.approx(README_ZOOM[scene_name], abs=0.01)


def test_sre_is_an_independent_formula(rr_scenes):
    """SRE_b = 10 log10(sum x^2 / sum (x - x^)^2), computed here from scratch on the baseline."""
    scene = rr_scenes["reykjavik_cell_RR"]
    estimate = bicubic_baseline(scene).astype(np.float64)
    reference = scene.reference.astype(np.float64)
    expected = [
        10 * np.log10(np.sum(reference[..., b] ** 2) / np.sum((reference[..., b] - estimate[..., b]) ** 2))
        for b in range(6)
    ]
    np.testing.assert_allclose(evaluate_estimate(estimate, scene).sre, expected, rtol=1e-9)


def test_border_changes_the_scored_area(rr_scenes):
    scene = rr_scenes["reykjavik_cell_RR"]
    estimate = bicubic_baseline(scene)
    assert evaluate_estimate(estimate, scene, border=4).border == 4
    assert evaluate_estimate(estimate, scene, border=4).mean_sre != evaluate_estimate(estimate, scene).mean_sre
    with pytest.raises(OptionError, match=r"border of 128 px leaves nothing of a 256x256 image"):
        evaluate_estimate(estimate, scene, border=128)


def _tiny_scene(**kwargs) -> Scene:
    rng = np.random.default_rng(0)
    bands = {b: rng.uniform(100, 200, (16, 16)) for b in FINE_BANDS}
    bands.update({b: rng.uniform(100, 200, (8, 8)) for b in COARSE_BANDS})
    return Scene(bands=bands, **kwargs)


def test_needs_a_reference(shared_data):
    scene = read_scene(shared_data / "CoastalA_cell.mat")
    with pytest.raises(SceneError, match=r"CoastalA_cell\.mat: scene has no reference \(Xm_im\)"):
        evaluate_estimate(np.ones((408, 408, 6)), scene)


def test_shape_mismatch():
    scene = _tiny_scene(reference=np.ones((16, 16, 6)))
    with pytest.raises(SceneError, match=r"estimate is 16x16x5, but the reference is 16x16x6"):
        evaluate_estimate(np.ones((16, 16, 5)), scene)


def test_perfect_estimate_and_constant_baseline():
    reference = np.random.default_rng(5).uniform(100, 200, (16, 16, 6))
    scene = _tiny_scene(reference=reference)
    report = evaluate_estimate(scene.reference, scene)
    assert np.all(np.isinf(report.sre)) and report.ergas == 0.0
    assert report.sam == pytest.approx(0.0, abs=1e-5) and report.ssim == pytest.approx((1.0,) * 6)
    constant = _tiny_scene(reference=reference)
    flat = Scene(bands={**constant.bands, **{b: np.full((8, 8), 7.0) for b in COARSE_BANDS}})
    np.testing.assert_allclose(bicubic_baseline(flat), 7.0)  # interpolation keeps constants
    assert bicubic_baseline(flat).shape == (16, 16, 6) and bicubic_baseline(flat).dtype == np.float32


def test_format_quality_table(rr_scenes):
    scene = rr_scenes["reykjavik_cell_RR"]
    reports = {
        "bicubic": evaluate_estimate(bicubic_baseline(scene), scene),
        "spline": evaluate_estimate(bicubic_baseline(scene, method="spline"), scene),
    }
    table = format_quality_table(reports)
    lines = table.splitlines()
    assert lines[0] == "| band | method | SRE (dB) | RMSE (DN) | SSIM | Q |"
    assert sum(line.startswith("| B8A |") for line in lines) == 2
    bicubic, spline = reports["bicubic"], reports["spline"]
    assert f"| mean | bicubic | {bicubic.mean_sre:.2f} | {np.mean(bicubic.rmse):.1f} |" in table
    assert f"| B8A | spline | {spline.sre[3]:.2f} | {spline.rmse[3]:.1f} | {spline.ssim[3]:.4f} |" in table
    assert f"| spline | {spline.mean_sre:.2f} | {spline.sam:.4f} | {spline.ergas:.4f} | 0 |" in lines
    assert format_quality_table({}) == ""


def test_evaluation_leaves_no_data_out(rr_scenes):
    """0 DN in the scene or NaN in the estimate (an output's no-data) is not scored: the report equals the
    metrics of the valid pixels alone, and it does not depend on the values there."""
    from ssc_edge.metrics import quality_report
    from ssc_edge.nodata import scene_valid

    scene = next(iter(rr_scenes.values()))
    estimate = bicubic_baseline(scene)
    bands = dict(scene.bands)
    bands["B11"] = bands["B11"].copy()
    bands["B11"][:, :20] = 0  # a no-data border of the 20 m grid: 10 m columns 0..39
    holed = Scene(bands=bands, reference=scene.reference, name="holed")
    masked = estimate.copy()
    masked[-30:, -30:] = np.nan  # and an output no-data corner
    valid = scene_valid(holed) & np.isfinite(masked).all(axis=-1)
    assert not valid[:, :40].any() and not valid[-30:, -30:].any() and valid.mean() > 0.5
    got = evaluate_estimate(masked, holed)
    assert got == quality_report(scene.reference, estimate, band_names=COARSE_BANDS, valid=valid)
    garbage = masked.copy()
    garbage[:, :40] = 1e6  # values under the scene's no-data do not count
    assert evaluate_estimate(garbage, holed) == quality_report(
        scene.reference, garbage, band_names=COARSE_BANDS, valid=valid
    )
    assert evaluate_estimate(garbage, holed).mean_sre != evaluate_estimate(garbage, scene).mean_sre
