"""Tests of the quality metrics (ssc_edge/metrics.py).

References: the paper's Table 1 (recomputed from its published outputs, see ../shared/data/README.md),
scikit-image's SSIM, and direct, slow numpy formulas written here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import io as sio

from ssc_edge import metrics
from ssc_edge.errors import OptionError

# ---------------------------------------------------------------------------------------------
# The paper's Table 1 from its own outputs


# (reference file, paper output, mean SRE dB, per-band SRE dB or None, SAM degrees), from ../shared/data/README.md
TABLE_1 = [
    ("reykjavik_cell_RR.mat", "skipnetpanshapen_r", 28.03, [25.98, 28.76, 28.72, 29.55, 29.20, 25.95], 1.6765),
    ("coastalA_cell_RR.mat", "skipnetpanshapen_c", 33.93, [32.78, 34.67, 35.05, 36.11, 34.29, 30.66], 1.5166),
    ("reykjavik_cell_RR.mat", "resnetpanshapen_r", 26.67, None, 1.8524),
    ("coastalA_cell_RR.mat", "resnetpanshapen_c", 30.40, None, 2.0755),
]


@pytest.fixture(scope="module")
def references(shared_data):
    from ssc_edge.io import read_scene

    return {name: read_scene(shared_data / name).reference for name in {row[0] for row in TABLE_1}}


@pytest.mark.real_data
@pytest.mark.parametrize(("scene", "output", "mean_sre", "band_sre", "sam"), TABLE_1, ids=[r[1] for r in TABLE_1])
def test_table_1_from_the_paper_outputs(shared_data, references, scene, output, mean_sre, band_sre, sam):
    estimate = sio.loadmat(shared_data / "paper_outputs" / f"{output}.mat")["xpr"]
    reference = references[scene]
    assert estimate.shape == reference.shape
    sre = metrics.signal_to_reconstruction_error(reference, estimate)
    assert abs(sre.mean() - mean_sre) < 0.01
    if band_sre is not None:
        np.testing.assert_allclose(sre, band_sre, rtol=0, atol=0.02)
    assert abs(metrics.spectral_angle_mapper(reference, estimate) - sam) < 1e-3
    report = metrics.quality_report(reference, estimate, band_names=("B05", "B06", "B07", "B8A", "B11", "B12"))
    assert report.mean_sre == pytest.approx(sre.mean(), rel=1e-12)
    assert all(0.8 < q <= 1 for q in report.ssim + report.uiqi)


# ---------------------------------------------------------------------------------------------
# Random test images


def _pair(shape=(24, 20, 3), seed=0, noise=300.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.uniform(500, 4000, shape)
    return reference, reference + rng.normal(0, noise, shape)


# ---------------------------------------------------------------------------------------------
# SRE, RMSE, ERGAS, SAM against direct formulas


def test_sre_formula():
    reference, estimate = _pair()
    expected = [
        10 * math.log10(np.sum(reference[..., b] ** 2) / np.sum((reference[..., b] - estimate[..., b]) ** 2))
        for b in range(3)
    ]
    np.testing.assert_allclose(metrics.signal_to_reconstruction_error(reference, estimate), expected, rtol=1e-12)


def test_sre_is_scale_invariant_and_infinite_for_a_perfect_estimate():
    reference, estimate = _pair()
    sre = metrics.signal_to_reconstruction_error(reference, estimate)
    np.testing.assert_allclose(metrics.signal_to_reconstruction_error(7 * reference, 7 * estimate), sre, rtol=1e-12)
    perfect = metrics.signal_to_reconstruction_error(reference, reference)
    assert perfect.shape == (3,)
    assert np.all(np.isposinf(perfect))


def test_rmse_formula():
    reference, estimate = _pair()
    expected = [math.sqrt(np.mean((reference[..., b] - estimate[..., b]) ** 2)) for b in range(3)]
    np.testing.assert_allclose(metrics.root_mean_squared_error(reference, estimate), expected, rtol=1e-12)
    assert np.all(metrics.root_mean_squared_error(reference, reference) == 0)


@pytest.mark.parametrize("ratio", [2.0, 6.0])
def test_ergas_formula(ratio):
    reference, estimate = _pair()
    relative = [
        np.mean((reference[..., b] - estimate[..., b]) ** 2) / np.mean(reference[..., b]) ** 2 for b in range(3)
    ]
    expected = 100 / ratio * math.sqrt(sum(relative) / 3)
    assert metrics.ergas(reference, estimate, ratio=ratio) == pytest.approx(expected, rel=1e-12)
    assert metrics.ergas(reference, reference) == 0


def test_sam_formula():
    reference, estimate = _pair(shape=(9, 7, 6))
    angles = [
        math.degrees(math.acos(np.dot(r, e) / (np.linalg.norm(r) * np.linalg.norm(e))))
        for r, e in zip(reference.reshape(-1, 6), estimate.reshape(-1, 6), strict=True)
    ]
    assert metrics.spectral_angle_mapper(reference, estimate) == pytest.approx(np.mean(angles), rel=1e-10)


def test_sam_known_angles():
    reference, _ = _pair(shape=(9, 7, 6))
    assert metrics.spectral_angle_mapper(reference, 2 * reference) < 1e-5
    angle = np.radians(np.linspace(1, 89, 20)).reshape(4, 5)
    scale = np.random.default_rng(1).uniform(1, 100, (4, 5))  # the length of the vectors does not matter
    first = np.stack([np.ones_like(angle), np.zeros_like(angle), np.zeros_like(angle)], axis=-1)
    second = scale[..., None] * np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=-1)
    assert metrics.spectral_angle_mapper(first, second) == pytest.approx(45.0, rel=1e-12)
    assert metrics.spectral_angle_mapper(first, np.roll(first, 1, axis=-1)) == pytest.approx(90.0, rel=1e-12)


def test_sam_skips_zero_pixels():
    reference, estimate = _pair(shape=(6, 6, 4))
    holed = estimate.copy()
    holed[2, 3] = 0
    holed[0, 0] = 0
    keep = np.ones((6, 6), dtype=bool)
    keep[2, 3] = keep[0, 0] = False
    expected = metrics.spectral_angle_mapper(reference[keep][None], estimate[keep][None])
    assert metrics.spectral_angle_mapper(reference, holed) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# SSIM against scikit-image


@pytest.mark.parametrize("data_range", [None, 5000.0])
def test_ssim_equals_scikit_image(data_range):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    reference, estimate = _pair(shape=(40, 33, 3), noise=600.0)
    # Add structure so the score is not near zero.
    reference += np.linspace(0, 3000, 33)[None, :, None]
    estimate += np.linspace(0, 3000, 33)[None, :, None]
    ours = metrics.structural_similarity(reference, estimate, data_range=data_range)
    for b in range(3):
        band_range = reference[..., b].max() - reference[..., b].min() if data_range is None else data_range
        theirs = skimage_metrics.structural_similarity(
            reference[..., b],
            estimate[..., b],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=True,
            data_range=band_range,
        )
        assert ours[b] == pytest.approx(theirs, abs=1e-6)
    assert np.all(ours < 0.99)


def test_ssim_per_band_data_range_and_identity():
    reference, estimate = _pair(shape=(30, 30, 2))
    np.testing.assert_allclose(metrics.structural_similarity(reference, reference), 1.0, rtol=1e-12)
    per_band = metrics.structural_similarity(reference, estimate, data_range=[1000.0, 8000.0])
    assert per_band[0] == pytest.approx(metrics.structural_similarity(reference, estimate, data_range=1000.0)[0])
    assert per_band[1] == pytest.approx(metrics.structural_similarity(reference, estimate, data_range=8000.0)[1])


# ---------------------------------------------------------------------------------------------
# UIQI against a direct sliding-window implementation


def _uiqi_slow(reference: np.ndarray, estimate: np.ndarray, window: int) -> float:
    """Mean Q over every ``window x window`` window fully inside a 2-D image (Wang and Bovik 2002)."""
    scores = []
    for i in range(reference.shape[0] - window + 1):
        for j in range(reference.shape[1] - window + 1):
            x = reference[i : i + window, j : j + window].ravel()
            y = estimate[i : i + window, j : j + window].ravel()
            mx, my = x.mean(), y.mean()
            cov = np.mean((x - mx) * (y - my))
            scores.append(4 * cov * mx * my / ((x.var() + y.var()) * (mx**2 + my**2)))
    return float(np.mean(scores))


@pytest.mark.parametrize("window", [8, 5, 4])
def test_uiqi_equals_a_direct_sliding_window(window):
    reference, estimate = _pair(shape=(15, 13, 2), noise=800.0)
    ours = metrics.universal_image_quality_index(reference, estimate, window=window)
    for b in range(2):
        assert ours[b] == pytest.approx(_uiqi_slow(reference[..., b], estimate[..., b], window), rel=1e-9)


def test_uiqi_exact_values():
    reference, _ = _pair(shape=(16, 16, 2))
    np.testing.assert_allclose(metrics.universal_image_quality_index(reference, reference), 1.0, rtol=1e-12)
    # y = 2x: per window 4 * 2 var * 2 mean^2 / ((5 var) (5 mean^2)) = 16 / 25.
    np.testing.assert_allclose(metrics.universal_image_quality_index(reference, 2 * reference), 0.64, rtol=1e-9)
    # Constant windows with equal means score 1.
    flat = np.full((10, 10, 1), 300.0)
    np.testing.assert_allclose(metrics.universal_image_quality_index(flat, flat), 1.0)


def test_uiqi_window_larger_than_the_image():
    reference, estimate = _pair(shape=(6, 9, 1))
    with pytest.raises(OptionError, match=r"Q window of 8 px is larger than the 6x9 image"):
        metrics.universal_image_quality_index(reference, estimate)


# ---------------------------------------------------------------------------------------------
# Border cut, 2-D inputs, errors


@pytest.mark.parametrize(
    "metric",
    [
        metrics.signal_to_reconstruction_error,
        metrics.spectral_angle_mapper,
        metrics.root_mean_squared_error,
        metrics.ergas,
        metrics.structural_similarity,
        metrics.universal_image_quality_index,
    ],
)
def test_border_cut_equals_scoring_the_crop(metric):
    reference, estimate = _pair(shape=(36, 30, 3))
    border = 4
    cut = metric(reference, estimate, border=border)
    crop = metric(reference[border:-border, border:-border], estimate[border:-border, border:-border])
    np.testing.assert_array_equal(cut, crop)
    assert not np.array_equal(cut, metric(reference, estimate))


def test_two_dimensional_inputs_are_one_band():
    reference, estimate = _pair(shape=(20, 20))
    sre = metrics.signal_to_reconstruction_error(reference, estimate)
    assert sre.shape == (1,)
    assert sre[0] == metrics.signal_to_reconstruction_error(reference[..., None], estimate[..., None])[0]


def test_shape_mismatch():
    with pytest.raises(OptionError, match=r"estimate is 8x8x3, reference is 8x8x2: they must be the same \(H, W, B\)"):
        metrics.signal_to_reconstruction_error(np.ones((8, 8, 2)), np.ones((8, 8, 3)))
    with pytest.raises(OptionError, match=r"estimate is 8x7x1, reference is 8x8x1"):
        metrics.root_mean_squared_error(np.ones((8, 8)), np.ones((8, 7)))
    with pytest.raises(OptionError, match=r"they must be the same \(H, W, B\)"):
        metrics.spectral_angle_mapper(np.ones((2, 8, 8, 1)), np.ones((2, 8, 8, 1)))


@pytest.mark.parametrize("border", [-1, 4, 10])
def test_border_that_leaves_nothing(border):
    with pytest.raises(OptionError, match=rf"border of {border} px leaves nothing of a 8x12 image"):
        metrics.ergas(np.ones((8, 12, 2)), np.ones((8, 12, 2)), border=border)


def test_quality_report_collects_every_metric_and_round_trips():
    reference, estimate = _pair(shape=(32, 32, 2))
    report = metrics.quality_report(reference, estimate, band_names=("B05", "B06"), border=2)
    assert report.band_names == ("B05", "B06")
    assert report.border == 2
    np.testing.assert_array_equal(report.sre, metrics.signal_to_reconstruction_error(reference, estimate, border=2))
    assert report.mean_sre == float(np.mean(report.sre))
    assert report.sam == metrics.spectral_angle_mapper(reference, estimate, border=2)
    np.testing.assert_array_equal(report.rmse, metrics.root_mean_squared_error(reference, estimate, border=2))
    assert report.ergas == metrics.ergas(reference, estimate, border=2)
    np.testing.assert_array_equal(report.ssim, metrics.structural_similarity(reference, estimate, border=2))
    np.testing.assert_array_equal(report.uiqi, metrics.universal_image_quality_index(reference, estimate, border=2))
    data = report.to_dict()
    assert isinstance(data["sre"], list)
    assert metrics.QualityReport.from_dict(data) == report


# -- no-data: scored on the valid pixels only ------------------------------------------------------


def _with_nodata(seed: int = 0):
    rng = np.random.default_rng(seed)
    reference = rng.uniform(100, 5000, (40, 36, 4))
    estimate = reference + rng.normal(0, 150, reference.shape)
    valid = np.ones((40, 36), bool)
    valid[:, :9] = False  # a no-data border
    valid[30:, 20:] = False  # and a corner
    return reference, estimate, valid


def test_pixel_wise_metrics_on_valid_pixels_equal_those_of_the_valid_subset():
    from ssc_edge.metrics import ergas, root_mean_squared_error, signal_to_reconstruction_error, spectral_angle_mapper

    reference, estimate, valid = _with_nodata()
    subset = (reference[valid][:, None], estimate[valid][:, None])  # (N, 1, B): the valid pixels alone
    for metric in (signal_to_reconstruction_error, root_mean_squared_error):
        np.testing.assert_allclose(metric(reference, estimate, valid=valid), metric(*subset), rtol=1e-12)
    for metric in (spectral_angle_mapper, ergas):
        assert metric(reference, estimate, valid=valid) == pytest.approx(metric(*subset), rel=1e-12)


def test_nan_in_the_estimate_is_no_data_by_default():
    from ssc_edge.metrics import quality_report

    reference, estimate, valid = _with_nodata(1)
    masked = np.where(valid[..., None], estimate, np.nan)  # an output's no-data
    names = ("a", "b", "c", "d")
    assert quality_report(reference, masked, band_names=names) == quality_report(
        reference, estimate, band_names=names, valid=valid
    )


def test_windowed_metrics_ignore_every_window_that_touches_no_data():
    """SSIM and Q do not change when no-data pixels change (only windows wholly on valid pixels count)."""
    from ssc_edge.metrics import structural_similarity, universal_image_quality_index

    reference, estimate, valid = _with_nodata(2)
    other = estimate.copy()
    other[~valid] = np.random.default_rng(3).uniform(-1e4, 1e4, other[~valid].shape)
    for metric in (structural_similarity, universal_image_quality_index):
        got = metric(reference, estimate, valid=valid)
        np.testing.assert_array_equal(got, metric(reference, other, valid=valid))
        assert not np.array_equal(got, metric(reference, other))  # without the mask they would change


def test_all_no_data_is_refused():
    from ssc_edge.metrics import root_mean_squared_error

    reference, estimate, _ = _with_nodata()
    with pytest.raises(OptionError, match="no valid pixel to score in a 40x36 image"):
        root_mean_squared_error(reference, estimate, valid=np.zeros((40, 36), bool))
