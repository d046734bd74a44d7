"""Tests of the Wald-protocol degradation, upsampling and training pairs (ssc_edge/wald.py).

The references here are written independently of the module: MATLAB ``imresize`` is
re-implemented directly from its documented algorithm (Keys' kernel, ``u = x/s + 0.5(1 - 1/s)``,
antialiasing by stretching the kernel, index mirroring), one output pixel at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssc_edge import wald
from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, MTF_NYQUIST
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.scene import Scene

# ---------------------------------------------------------------------------------------------
# Independent, slow MATLAB imresize (bicubic) reference


def _keys(d: float) -> float:
    """Keys (1981) cubic convolution kernel, a = -0.5 (MATLAB's ``cubic``)."""
    d = abs(d)
    if d <= 1:
        return 1.5 * d**3 - 2.5 * d**2 + 1
    if d <= 2:
        return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    return 0.0


def _imresize_1d(signal: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(signal, scale, 'bicubic')`` along one axis, antialiasing on, pixel by pixel."""
    n = signal.size
    m = math.ceil(n * scale)
    if scale < 1:
        kernel, width = (lambda d: scale * _keys(scale * d)), 4.0 / scale
    else:
        kernel, width = _keys, 4.0
    mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])  # MATLAB 'symmetric' padding
    out = np.empty(m)
    for x in range(1, m + 1):  # one-based, as in MATLAB
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        weights = np.array([kernel(u - j) for j in taps])
        weights /= weights.sum()
        out[x - 1] = sum(w * signal[mirror[(j - 1) % (2 * n)]] for w, j in zip(weights, taps, strict=True))
    return out


def _imresize(image: np.ndarray, scale: float) -> np.ndarray:
    rows = np.stack([_imresize_1d(column, scale) for column in image.T], axis=1)
    return np.stack([_imresize_1d(row, scale) for row in rows])


# ---------------------------------------------------------------------------------------------
# (a) The Reykjavik RR cells are MATLAB imresize(x, 0.5) of the observed bands


@pytest.mark.real_data
def test_bicubic_degradation_reproduces_the_reykjavik_rr_cells(shared_data):
    from ssc_edge.io import read_scene

    scene = read_scene(shared_data / "reykjavik_cell_RR.mat")
    degraded = wald.degrade(scene.reference, ratio=2, method="bicubic")
    coarse = scene.coarse()
    assert degraded.shape == coarse.shape == (128, 128, 6)
    relative_rms = np.sqrt(np.mean((degraded - coarse) ** 2) / np.mean(coarse.astype(np.float64) ** 2))
    assert relative_rms < 1e-6
    # Not a property of any blur: the MTF degradation is far off.
    mtf = wald.degrade(scene.reference, ratio=2, method="mtf", mtf=[MTF_NYQUIST[b] for b in COARSE_BANDS])
    assert np.sqrt(np.mean((mtf - coarse) ** 2) / np.mean(coarse.astype(np.float64) ** 2)) > 1e-3


# ---------------------------------------------------------------------------------------------
# (b) Bicubic upsampling and degradation equal MATLAB imresize


@pytest.mark.parametrize("shape", [(7, 9), (12, 5)])
def test_bicubic_upsampling_equals_matlab_imresize(shape):
    image = np.random.default_rng(1).uniform(0, 5000, shape)
    np.testing.assert_allclose(
        wald.upsample(image, ratio=2, method="bicubic"), _imresize(image, 2), rtol=0, atol=1e-10 * 5000
    )


def test_bicubic_upsampling_by_3_equals_matlab_imresize():
    image = np.random.default_rng(2).uniform(0, 1, (6, 8))
    np.testing.assert_allclose(wald.upsample(image, ratio=3), _imresize(image, 3), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(16, 20), (18, 14)])
def test_bicubic_degradation_equals_matlab_imresize_with_antialiasing(shape):
    image = np.random.default_rng(3).uniform(0, 5000, shape)
    np.testing.assert_allclose(
        wald.degrade(image, ratio=2, method="bicubic"), _imresize(image, 0.5), rtol=0, atol=1e-10 * 5000
    )


def test_bicubic_degradation_by_3_equals_matlab_imresize():
    image = np.random.default_rng(4).uniform(0, 1, (18, 21))
    np.testing.assert_allclose(
        wald.degrade(image, ratio=3, method="bicubic"), _imresize(image, 1 / 3), rtol=0, atol=1e-10
    )


def test_channels_are_processed_independently():
    image = np.random.default_rng(5).uniform(0, 1, (16, 16, 3))
    gains = [0.2, 0.3, 0.4]
    stacked = wald.degrade(image, method="mtf", mtf=gains)
    for c, gain in enumerate(gains):
        np.testing.assert_array_equal(stacked[..., c], wald.degrade(image[..., c], method="mtf", mtf=gain))
    np.testing.assert_array_equal(wald.upsample(image)[..., 1], wald.upsample(image[..., 1]))


# ---------------------------------------------------------------------------------------------
# (c) The MTF degradation has the requested gain at the coarse Nyquist frequency


@pytest.mark.parametrize("ratio", [2, 3, 4, 6])
@pytest.mark.parametrize("gain", [*sorted(set(MTF_NYQUIST.values())), 0.1, 0.4])
def test_mtf_gain_at_coarse_nyquist(gain, ratio):
    """A cosine at the coarse Nyquist frequency, peaking on the coarse pixel centres, keeps ``gain`` of its amplitude.

    The kernel is a *sampled* Gaussian, whose gain differs from the continuous one by aliasing:
    below 0.1 % for the Sentinel-2 gains (0.22-0.38), 0.4 % at a gain of 0.5 (sigma 0.75 px).
    """
    n = 40 * ratio
    centre = (ratio - 1) / 2  # fine coordinate of the first coarse pixel centre
    wave = np.cos(np.pi / ratio * (np.arange(n) - centre))  # 1 / (2 ratio) cycles per fine pixel
    image = np.repeat(wave[:, None], 3 * ratio, axis=1)
    degraded = wald.degrade(image, ratio=ratio, method="mtf", mtf=gain)
    interior = degraded[8:-8, 1]
    alternating = (-1.0) ** np.arange(8, 40 - 8)
    np.testing.assert_allclose(interior * alternating, gain, rtol=2e-3)
    # The same along the other axis.
    np.testing.assert_allclose(
        wald.degrade(image.T, ratio=ratio, method="mtf", mtf=gain)[1, 8:-8], interior, rtol=1e-12
    )


def test_mtf_sigma_formula():
    # sigma = ratio * sqrt(-2 ln g) / pi: the Gaussian whose MTF exp(-2 pi^2 sigma^2 f^2) is g at f = 1 / (2 ratio).
    for ratio in (2, 6):
        sigma = wald.mtf_sigma(0.3, ratio=ratio)
        assert math.exp(-2 * math.pi**2 * sigma**2 / (2 * ratio) ** 2) == pytest.approx(0.3, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# (d) Exact invariants: constants stay constant, linear ramps are reproduced and stay aligned


@pytest.mark.parametrize("method", ["mtf", "bicubic"])
@pytest.mark.parametrize("ratio", [2, 3, 6])
def test_degrading_a_constant_gives_the_constant(method, ratio):
    image = np.full((6 * ratio, 4 * ratio, 2), 1234.5)
    out = wald.degrade(image, ratio=ratio, method=method, mtf=0.25)
    assert out.shape == (6, 4, 2)
    np.testing.assert_allclose(out, 1234.5, rtol=1e-12)


@pytest.mark.parametrize("method", ["bicubic", "spline"])
def test_upsampling_a_constant_gives_the_constant(method):
    # Not below ~10 px: scipy's "reflect" spline prefilter is then approximate (relative error ~1e-6 at 5 px).
    np.testing.assert_allclose(wald.upsample(np.full((20, 24), 42.0), method=method), 42.0, rtol=1e-12)
    np.testing.assert_allclose(wald.upsample(np.full((3, 2), 42.0), method="bicubic"), 42.0, rtol=1e-12)


@pytest.mark.parametrize("method", ["mtf", "bicubic"])
@pytest.mark.parametrize("ratio", [2, 3, 6])
def test_degrading_a_ramp_samples_it_at_the_coarse_pixel_centres(method, ratio):
    """Kernels are symmetric and centred per the grid convention: coarse pixel i sits at ``ratio*i + (ratio-1)/2``."""
    rows, cols = np.mgrid[0 : 12 * ratio, 0 : 12 * ratio].astype(np.float64)
    image = 3.0 * rows - 2.0 * cols + 7.0
    out = wald.degrade(image, ratio=ratio, method=method, mtf=0.3)
    centres = ratio * np.arange(12) + (ratio - 1) / 2
    expected = 3.0 * centres[:, None] - 2.0 * centres[None, :] + 7.0
    np.testing.assert_allclose(out[3:-3, 3:-3], expected[3:-3, 3:-3], rtol=0, atol=1e-9)


@pytest.mark.parametrize("ratio", [2, 3])
def test_bicubic_upsampling_reproduces_a_ramp_in_the_interior(ratio):
    rows, cols = np.mgrid[0:10, 0:11].astype(np.float64)
    coarse = 5.0 * rows + 0.5 * cols - 3.0
    fine = wald.upsample(coarse, ratio=ratio, method="bicubic")
    position = lambda n: (np.arange(n * ratio) + 0.5) / ratio - 0.5  # coarse coordinate of each fine pixel
    expected = 5.0 * position(10)[:, None] + 0.5 * position(11)[None, :] - 3.0
    interior = slice(2 * ratio, -2 * ratio)
    np.testing.assert_allclose(fine[interior, interior], expected[interior, interior], rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# (e) A window with a margin of 8 fine pixels gives the whole image's result bit for bit


@pytest.mark.parametrize("method", ["mtf", "bicubic"])
def test_degradation_is_exact_on_tiles_with_a_margin(method):
    image = np.random.default_rng(6).uniform(0, 10000, (96, 80, 3)).astype(np.float32)
    whole = wald.degrade(image, method=method, mtf=[0.22, 0.3, 0.38])
    r0, r1, c0, c1 = 10, 30, 7, 25  # coarse window
    margin = 8  # fine pixels
    window = image[2 * r0 - margin : 2 * r1 + margin, 2 * c0 - margin : 2 * c1 + margin]
    tile = wald.degrade(window, method=method, mtf=[0.22, 0.3, 0.38])
    half = margin // 2
    assert np.array_equal(tile[half:-half, half:-half], whole[r0:r1, c0:c1])


def test_bicubic_upsampling_is_exact_on_tiles_with_a_margin():
    image = np.random.default_rng(7).uniform(0, 10000, (48, 40, 6)).astype(np.float32)
    whole = wald.upsample(image, method="bicubic")
    r0, r1, c0, c1 = 9, 31, 5, 29  # coarse window
    margin = 4  # coarse pixels = 8 fine pixels
    tile = wald.upsample(image[r0 - margin : r1 + margin, c0 - margin : c1 + margin], method="bicubic")
    assert np.array_equal(
        tile[2 * margin : -2 * margin, 2 * margin : -2 * margin], whole[2 * r0 : 2 * r1, 2 * c0 : 2 * c1]
    )


# ---------------------------------------------------------------------------------------------
# (f) Training pairs


@pytest.fixture(scope="module")
def scene_256() -> Scene:
    return demo_scene(size=256, seed=11)


@pytest.fixture(scope="module")
def scene_204() -> Scene:
    return demo_scene(size=204, seed=12)


@pytest.mark.parametrize(
    ("name", "levels", "size"),
    [("scene_256", 1, 128), ("scene_256", 2, 64), ("scene_204", 1, 102), ("scene_204", 2, 50)],
)
def test_training_pair_shapes(request, name, levels, size):
    pair = wald.training_pair(request.getfixturevalue(name), levels=levels)
    assert pair.inputs.shape == (size, size, len(COARSE_BANDS) + len(FINE_BANDS))
    assert pair.target.shape == (size, size, len(COARSE_BANDS))
    assert pair.inputs.dtype == pair.target.dtype == np.float32


def test_training_pair_content(scene_256):
    gains = {b: MTF_NYQUIST[b] for b in COARSE_BANDS + FINE_BANDS}
    pair = wald.training_pair(scene_256, levels=1)
    coarse = scene_256.coarse()
    np.testing.assert_array_equal(pair.target, coarse)
    fine = wald.degrade(scene_256.fine(), method="mtf", mtf=[gains[b] for b in FINE_BANDS])
    up = wald.upsample(wald.degrade(coarse, method="mtf", mtf=[gains[b] for b in COARSE_BANDS]))
    np.testing.assert_allclose(pair.inputs, np.concatenate([up, fine], axis=-1), rtol=1e-6)

    two = wald.training_pair(scene_256, levels=2)
    expected = wald.degrade(coarse, method="mtf", mtf=[gains[b] for b in COARSE_BANDS])
    np.testing.assert_allclose(two.target, expected, rtol=1e-6)


def test_training_pair_mtf_override(scene_256):
    default = wald.training_pair(scene_256)
    changed = wald.training_pair(scene_256, mtf={"B05": 0.1})
    np.testing.assert_array_equal(changed.target, default.target)
    assert not np.array_equal(changed.inputs[..., 0], default.inputs[..., 0])
    np.testing.assert_array_equal(changed.inputs[..., 1:], default.inputs[..., 1:])


@pytest.mark.parametrize("levels", [1, 2])
def test_training_pair_never_reads_the_reference(scene_204, levels):
    without = Scene(bands=scene_204.bands, reference=None)
    other = np.random.default_rng(13).uniform(1, 9000, (204, 204, 6))
    with_random = Scene(bands=scene_204.bands, reference=other)
    a, b = wald.training_pair(without, levels=levels), wald.training_pair(with_random, levels=levels)
    c = wald.training_pair(scene_204, levels=levels)
    for pair in (b, c):
        assert np.array_equal(a.inputs, pair.inputs)
        assert np.array_equal(a.target, pair.target)


def test_model_input_and_full_scale_input(scene_204):
    full = wald.full_scale_input(scene_204)
    assert full.shape == (204, 204, 10)
    assert full.dtype == np.float32
    np.testing.assert_array_equal(full[..., 6:], scene_204.fine())
    np.testing.assert_allclose(full[..., :6], wald.upsample(scene_204.coarse()), rtol=1e-6)


def test_training_pair_of_a_too_small_scene():
    scene = demo_scene(size=12)
    wald.training_pair(scene, levels=1)  # 12 is a multiple of 4
    message = r"scene of 12x12 px is too small for 3 level\(s\) of degradation by 2 \(needs at least 16x16\)"
    with pytest.raises(SceneError, match=message):
        wald.training_pair(scene, levels=3)


def test_reduced_resolution_scene_of_a_synthetic_scene():
    from ssc_edge.scene import GeoReference

    base = demo_scene(size=102, seed=14)  # cropped to 100 x 100 (a multiple of 4)
    georef = GeoReference((10.0, 0.0, 500000.0, 0.0, -10.0, 7100000.0), "EPSG:32627")
    scene = Scene(bands=base.bands, reference=base.reference, georef=georef, name="demo")
    rr = wald.reduced_resolution_scene(scene)
    assert rr.shape == (50, 50) and rr.coarse().shape == (25, 25, 6)
    assert rr.fine_pixel_size == 20.0 and rr.reference is not None
    assert rr.georef == GeoReference((20.0, 0.0, 500000.0, 0.0, -20.0, 7100000.0), "EPSG:32627")
    assert rr.name == "demo-RR"
    np.testing.assert_array_equal(rr.reference, scene.coarse()[:50, :50])  # the observed 20 m bands
    np.testing.assert_allclose(rr.fine(), wald.degrade(scene.fine()[:100, :100], method="bicubic"), rtol=1e-6)
    np.testing.assert_allclose(rr.coarse(), wald.degrade(scene.coarse()[:50, :50], method="bicubic"), rtol=1e-6)
    mtf = wald.reduced_resolution_scene(scene, degradation="mtf")
    gains = [MTF_NYQUIST[b] for b in COARSE_BANDS]
    np.testing.assert_allclose(mtf.coarse(), wald.degrade(scene.coarse()[:50, :50], method="mtf", mtf=gains), rtol=1e-6)
    tiny = Scene(bands={b: a[:2, :2] if b in FINE_BANDS else a[:1, :1] for b, a in base.bands.items()})
    with pytest.raises(SceneError, match=r"scene of 2x2 px is too small to degrade by 2 \(needs 4x4\)"):
        wald.reduced_resolution_scene(tiny)


@pytest.mark.real_data
def test_the_paper_coastal_output_agrees_with_imresize_rr_cells_not_the_shipped_ones(shared_data):
    """Why the benchmarks simulate the Coastal RR scene: an independent check on the paper's own output.

    The simulated RR scene has exactly the shipped reference (``Xm_im`` is the observed 20 m bands).
    Its 20 m cells are MATLAB ``imresize(x, 0.5)`` of them; the shipped cells are not (35 dB apart). The
    paper's SSC-CNN output, degraded the same way, lands on the imresize cells (43 dB), not on the
    shipped ones it would reproduce had it been fitted to them (35 dB).
    """
    import scipy.io

    from ssc_edge.io import read_scene
    from ssc_edge.metrics import signal_to_reconstruction_error

    shipped = read_scene(shared_data / "coastalA_cell_RR.mat")
    simulated = wald.reduced_resolution_scene(read_scene(shared_data / "CoastalA_cell.mat"))
    np.testing.assert_array_equal(simulated.reference, shipped.reference)
    paper = scipy.io.loadmat(shared_data / "paper_outputs" / "skipnetpanshapen_c.mat")["xpr"].astype(np.float64)
    degraded = wald.degrade(paper, method="bicubic")

    def sre(reference: np.ndarray, estimate: np.ndarray) -> float:
        """SRE of all bands pooled: the project's per-band SRE of the arrays flattened to one band."""
        return float(signal_to_reconstruction_error(reference.reshape(1, -1), estimate.reshape(1, -1))[0])

    to_simulated = sre(simulated.coarse().astype(np.float64), degraded)
    to_shipped = sre(shipped.coarse().astype(np.float64), degraded)
    assert to_simulated > 42.0, to_simulated
    assert to_shipped < 36.0, to_shipped
    assert sre(simulated.coarse().astype(np.float64), shipped.coarse()) < 36.0


# ---------------------------------------------------------------------------------------------
# (g) Errors


@pytest.mark.parametrize("ratio", [1, 0, -2, 2.5, True])
def test_bad_ratio(ratio):
    with pytest.raises(OptionError, match=r"ratio must be an integer >= 2, got"):
        wald.degrade(np.ones((8, 8)), ratio=ratio, mtf=0.3)
    with pytest.raises(OptionError, match=r"ratio must be an integer >= 2, got"):
        wald.upsample(np.ones((8, 8)), ratio=ratio)


def test_bad_method():
    with pytest.raises(OptionError, match=r"unknown degradation method 'gaussian'; choose one of \('mtf', 'bicubic'\)"):
        wald.degrade(np.ones((8, 8)), method="gaussian", mtf=0.3)
    with pytest.raises(
        OptionError, match=r"unknown upsampling method 'nearest'; choose one of \('bicubic', 'spline'\)"
    ):
        wald.upsample(np.ones((8, 8)), method="nearest")
    with pytest.raises(OptionError, match=r"unknown degradation method 'box'"):
        wald.training_pair(demo_scene(size=16), degradation="box")


@pytest.mark.parametrize("mtf", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_bad_mtf(mtf):
    with pytest.raises(OptionError, match=r"MTF gain at Nyquist must be in \(0, 1\), got"):
        wald.degrade(np.ones((8, 8)), mtf=mtf)
    with pytest.raises(OptionError, match=r"MTF gain at Nyquist must be in \(0, 1\), got"):
        wald.mtf_sigma(mtf)


def test_missing_mtf():
    with pytest.raises(OptionError, match=r"method='mtf' needs the MTF gain at Nyquist \(mtf=\.\.\.\)"):
        wald.degrade(np.ones((8, 8)))


def test_bad_images():
    with pytest.raises(OptionError, match=r"image must be \(H, W\) or \(H, W, C\), got shape \(8,\)"):
        wald.degrade(np.ones(8), mtf=0.3)
    with pytest.raises(OptionError, match=r"image must be \(H, W\) or \(H, W, C\), got shape \(2, 4, 4, 1\)"):
        wald.upsample(np.ones((2, 4, 4, 1)))
    with pytest.raises(OptionError, match=r"image must be real-valued, got dtype complex128"):
        wald.upsample(np.ones((4, 4), dtype=complex))


def test_model_input_size_mismatch():
    with pytest.raises(SceneError, match=r"20 m bands are 5x4, not half the 10 m size 8x8"):
        wald.model_input(np.ones((8, 8, 4)), np.ones((5, 4, 6)))


# Edge cases found in review, each with its pinned message.


def test_mtf_list_of_wrong_length():
    with pytest.raises(OptionError, match="mtf has 3 values for an image of 6 channels"):
        wald.degrade(np.ones((8, 8, 6)), mtf=[0.3, 0.3, 0.3])


@pytest.mark.parametrize("levels", [0, -1, 1.5])
def test_training_pair_bad_levels(levels):
    with pytest.raises(OptionError, match="levels must be an integer >= 1"):
        wald.training_pair(demo_scene(size=16), levels=levels)


@pytest.mark.parametrize("ratio", [2.0, True, 1])
def test_non_integer_ratio_is_refused(ratio):
    with pytest.raises(OptionError, match="ratio must be an integer >= 2"):
        wald.degrade(np.ones((8, 8)), ratio=ratio, mtf=0.3)


def test_image_smaller_than_the_ratio():
    with pytest.raises(OptionError, match="image of 1x5 px is smaller than the ratio 2"):
        wald.degrade(np.ones((1, 5)), ratio=2, mtf=0.3)


# ---------------------------------------------------------------------------------------------
# (g) Exact kernels with an offset, and training pairs that keep a band offset (issue 14)


@pytest.mark.parametrize("kernel", [wald.Kernel("bicubic"), wald.Kernel("gaussian", wald.mtf_sigma(0.3))])
def test_decimate_without_shift_equals_degrade(kernel):
    image = np.random.default_rng(20).uniform(0, 10000, (40, 36, 2))
    method = "bicubic" if kernel.kind == "bicubic" else "mtf"
    np.testing.assert_allclose(wald.decimate(image, kernel), wald.degrade(image, method=method, mtf=0.3), rtol=1e-12)


@pytest.mark.parametrize("kernel", [wald.Kernel("bicubic"), wald.Kernel("gaussian", 0.9)])
def test_decimate_with_an_integer_shift_reads_the_image_further_on(kernel):
    # moving the coarse grid by 2 fine pixels is moving it by one coarse pixel; by 1, cropping one row
    image = np.random.default_rng(21).uniform(0, 10000, (64, 64))
    plain = wald.decimate(image, kernel)
    np.testing.assert_allclose(wald.decimate(image, kernel, shift=(2, 0))[4:-6], plain[5:-5], rtol=1e-12)
    np.testing.assert_allclose(
        wald.decimate(image, kernel, shift=(0, -1))[:, 4:-6], wald.decimate(image[:, 1:-1], kernel)[:, 3:-6], rtol=1e-12
    )


def test_kernel_taps_are_centred_on_the_moved_grid():
    for shift in (-1.0, -0.49, 0.0, 0.3, 1.0):
        taps, weights = wald.kernel_taps(wald.Kernel("gaussian", 0.8), shift=shift)
        assert weights.sum() == pytest.approx(1.0)
        # centroid = the pixel centre 2i + 0.5 + shift (to the aliasing of a Gaussian sampled at sigma 0.8)
        assert taps @ weights == pytest.approx(0.5 + shift, abs=1e-4)


def test_nominal_pair_model_reproduces_the_nominal_pair(scene_204):
    for method in ("bicubic", "mtf"):
        old = wald.training_pair(scene_204, degradation=method, levels=2)
        new = wald.training_pair(scene_204, model=wald.PairModel.nominal(method), levels=2)
        np.testing.assert_allclose(new.inputs, old.inputs, rtol=1e-5)
        np.testing.assert_array_equal(new.target, old.target)


def _centroid_offset(fine: np.ndarray, coarse: np.ndarray) -> float:
    """Row offset of ``coarse`` against ``fine``: centroid of a free 1-D regression kernel (not the estimator)."""
    taps = np.arange(-4, 6)
    rows = np.arange(3, coarse.shape[0] - 3)
    design = np.stack([fine[2 * rows + t, 0] for t in taps], axis=1)
    design = np.column_stack([design, np.ones(len(design))])
    weights = np.linalg.lstsq(design, coarse[rows, 0], rcond=None)[0][:-1]
    return float(taps @ weights / weights.sum() - 0.5)


@pytest.mark.parametrize("kernel", [wald.Kernel("bicubic"), wald.Kernel("gaussian", 0.9)])
def test_training_pair_keeps_the_offset_instead_of_halving_it(kernel):
    # a "20 m" band decimated from a field at 2i + 0.5, and a "10 m" band = the field cut one pixel on:
    # the 20 m grid sits at 2i - 0.5 of the 10 m grid, offset d = -1
    from scipy import ndimage

    signal = ndimage.gaussian_filter1d(np.random.default_rng(22).normal(size=4100), 0.7)
    field = np.repeat(signal[:, None], 4, axis=1)  # constant along rows: decimating columns changes nothing
    coarse, fine, truth = wald.decimate(field[:4096], kernel), field[1:4097], -1.0
    assert _centroid_offset(fine, coarse) == pytest.approx(truth, abs=0.02)
    plain_f, plain_c = wald.decimate(fine, kernel), wald.decimate(coarse, kernel)
    kept_f = wald.decimate(fine, kernel, shift=(-truth, 0))  # as training_pair does with offset d
    assert _centroid_offset(plain_f, plain_c) == pytest.approx(truth / 2, abs=0.1)  # a plain pair halves it
    assert _centroid_offset(kept_f, plain_c) == pytest.approx(truth, abs=0.1)  # the pair keeps it


@pytest.mark.parametrize("levels", [1, 2])
def test_pair_margin_makes_windows_exact(scene_256, levels):
    model = wald.PairModel(
        fine=(wald.Kernel("gaussian", 1.1),) * 4,
        coarse=(wald.Kernel("bicubic"),) * 3 + (wald.Kernel("gaussian", 0.7),) * 3,
        offset=(-0.49, 0.8),
    )
    margin = wald.pair_margin(model, levels=levels)
    step = 2**levels
    assert margin % (2 * step) == 0
    whole = wald.training_pair(scene_256, model=model, levels=levels)
    for r0, r1, c0, c1 in [(96, 160, 64, 128), (0, 64, 192, 256)]:  # interior; a corner
        top, left = max(0, r0 - margin), max(0, c0 - margin)
        cut = Scene(
            bands={
                b: a[top // (1 if b in FINE_BANDS else 2) : (r1 + margin) // (1 if b in FINE_BANDS else 2),
                     left // (1 if b in FINE_BANDS else 2) : (c1 + margin) // (1 if b in FINE_BANDS else 2)]
                for b, a in scene_256.bands.items()
                if b in FINE_BANDS + COARSE_BANDS
            }
        )  # fmt: skip
        window = wald.training_pair(cut, model=model, levels=levels)
        rows = slice((r0 - top) // step, (r1 - top) // step)
        cols = slice((c0 - left) // step, (c1 - left) // step)
        whole_rows, whole_cols = slice(r0 // step, r1 // step), slice(c0 // step, c1 // step)
        assert np.array_equal(window.inputs[rows, cols], whole.inputs[whole_rows, whole_cols])
        assert np.array_equal(window.target[rows, cols], whole.target[whole_rows, whole_cols])


def test_pair_model_json_and_errors():
    model = wald.PairModel.nominal("mtf")
    model = wald.PairModel(fine=model.fine, coarse=model.coarse, offset=(-0.5, 0.25))
    back = wald.PairModel.from_dict(model.to_dict())  # the JSON keeps sigmas to 1e-6 px and offsets to 1e-4
    assert back.offset == model.offset == (-0.5, 0.25)
    for read, written in zip(back.fine + back.coarse, model.fine + model.coarse, strict=True):
        assert read.kind == written.kind and read.sigma == pytest.approx(written.sigma, abs=5e-7)
    assert wald.PairModel.from_dict(back.to_dict()) == back  # exact once at the JSON's precision
    assert wald.PairModel.from_dict(model.to_dict()).to_dict() == model.to_dict()
    with pytest.raises(OptionError, match="a pair model needs 4 fine and 6 coarse kernels, got 4 and 5"):
        wald.PairModel(fine=model.fine, coarse=model.coarse[:5])
    with pytest.raises(OptionError, match=r"offset must be \(rows, cols\) within 4 fine pixels"):
        wald.PairModel(fine=model.fine, coarse=model.coarse, offset=(5.0, 0.0))
    with pytest.raises(OptionError, match="unknown kernel 'box'"):
        wald.Kernel("box")
    with pytest.raises(OptionError, match=r"Gaussian kernel sigma must be in \[0.05, 8\] pixels, got 0.0"):
        wald.Kernel("gaussian")
    with pytest.raises(OptionError, match="pair model is missing 'B05'"):
        wald.PairModel.from_dict({"fine": model.to_dict()["fine"], "coarse": {}})
    with pytest.raises(OptionError, match="upsampling 'spline' is not tile-exact"):
        wald.pair_margin(model, upsampling="spline")


@pytest.mark.parametrize("degradation", ["mtf", "bicubic"])
def test_pair_margin_of_the_nominal_pair(scene_256, degradation):
    margin = wald.pair_margin()  # no model: the nominal pairs
    whole = wald.training_pair(scene_256, degradation=degradation)
    r0, r1 = 96, 160
    cut = Scene(
        bands={
            b: a[(r0 - margin) // (1 if b in FINE_BANDS else 2) : (r1 + margin) // (1 if b in FINE_BANDS else 2)]
            for b, a in scene_256.bands.items()
            if b in FINE_BANDS + COARSE_BANDS
        }
    )
    window = wald.training_pair(cut, degradation=degradation)
    inner = slice(margin // 2, margin // 2 + (r1 - r0) // 2)
    assert np.array_equal(window.inputs[inner], whole.inputs[r0 // 2 : r1 // 2])
    assert np.array_equal(window.target[inner], whole.target[r0 // 2 : r1 // 2])
