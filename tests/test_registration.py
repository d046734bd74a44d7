"""Tests of the band registration estimate (ssc_edge/registration.py).

Truth comes from geometry, not from the estimator's kernels: an RR scene is cut from a full-resolution
scene with its 10 m bands starting ``s`` source pixels further than twice its 20 m bands' origin, which
puts the RR 20 m grid exactly ``-s / 2`` RR fine pixels from the nominal one. The shipped Reykjavik
cells sit half a pixel off (the coordinator's free-kernel regression: centroid at ``2 i``, issue 14),
the shipped Coastal cells on the nominal grid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssc_edge import registration, wald
from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.io import read_scene
from ssc_edge.scene import Scene

_MARGIN = 4


def _rr_scene(scene: Scene, kernels: tuple, shift: tuple[int, int]) -> Scene:
    """The RR scene of ``scene`` with its 10 m crop moved ``shift`` source pixels (20 m grid at ``-shift/2``)."""
    fine_k, coarse_k = kernels
    size = (min(scene.shape) - 2 * _MARGIN) // 8 * 8
    r, c = _MARGIN + shift[0], _MARGIN + shift[1]
    fine = wald.decimate(scene.fine()[r : r + size, c : c + size], fine_k)
    observed = scene.coarse()[_MARGIN // 2 : (_MARGIN + size) // 2, _MARGIN // 2 : (_MARGIN + size) // 2]
    coarse = wald.decimate(observed, coarse_k)
    bands = {b: fine[..., i] for i, b in enumerate(FINE_BANDS)} | {
        b: coarse[..., i] for i, b in enumerate(COARSE_BANDS)
    }
    return Scene(bands=bands, fine_pixel_size=20.0, reference=observed)


@pytest.fixture(scope="module")
def coastal_full(shared_data) -> Scene:
    return read_scene(shared_data / "CoastalA_cell.mat")


@pytest.fixture(scope="module")
def real_crop(shared_data) -> Scene:
    rasterio = pytest.importorskip("rasterio")
    folder = shared_data / "real" / "l1c_T31TDH_20150726_crop"
    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        with rasterio.open(folder / f"T31TDH_20150726T105026_{band}.jp2") as src:
            bands[band] = src.read(1)
    return Scene(bands=bands)


_IMRESIZE = (wald.PairModel.nominal("bicubic").fine, wald.PairModel.nominal("bicubic").coarse)
_NOMINAL = (wald.PairModel.nominal("mtf").fine, wald.PairModel.nominal("mtf").coarse)
_MTF_02 = ((wald.Kernel("gaussian", wald.mtf_sigma(0.2)),) * 4, (wald.Kernel("gaussian", wald.mtf_sigma(0.2)),) * 6)


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("scene_name", "kernels", "shift", "kind"),
    [
        ("coastal_full", _IMRESIZE, (1, -2), "bicubic"),
        ("coastal_full", _NOMINAL, (0, 0), "gaussian"),
        ("real_crop", _MTF_02, (-2, 1), "gaussian"),
        ("real_crop", _IMRESIZE, (2, 2), "bicubic"),
    ],
)
def test_offset_of_a_shifted_crop_is_found_within_a_tenth_of_a_pixel(request, scene_name, kernels, shift, kind):
    rr = _rr_scene(request.getfixturevalue(scene_name), kernels, shift)
    estimate = registration.estimate_scene_registration(rr, max_samples=8192)
    truth = (-shift[0] / 2, -shift[1] / 2)
    assert np.allclose(estimate.offset, truth, atol=0.1), (estimate.offset, truth)
    assert estimate.kernel.kind == kind  # imresize is told apart from a Gaussian
    for band in estimate.bands:
        if band.band in ("B06", "B07", "B8A"):  # the well-explained bands, one by one
            assert np.allclose(band.offset, truth, atol=0.1), (band.band, band.offset)


@pytest.mark.real_data
def test_gaussian_width_grows_as_the_mtf_gain_falls(real_crop):
    sigmas = []
    for gain in (0.6, 0.4, 0.2):
        kernel = wald.Kernel("gaussian", wald.mtf_sigma(gain))
        rr = _rr_scene(real_crop, ((kernel,) * 4, (kernel,) * 6), (0, 0))
        sigmas.append(registration.estimate_scene_registration(rr, max_samples=8192).kernel.sigma)
    assert sigmas[0] < sigmas[1] < sigmas[2]


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "offset"), [("reykjavik_cell_RR.mat", -0.5), ("coastalA_cell_RR.mat", 0.0)])
def test_shipped_rr_scenes(shared_data, name, offset):
    estimate = registration.estimate_scene_registration(read_scene(shared_data / name), max_samples=8192)
    assert np.allclose(estimate.offset, (offset, offset), atol=0.1), estimate.offset
    assert [b.band for b in estimate.bands] == list(COARSE_BANDS)
    assert all(set(b.residual) == {"gaussian", "bicubic"} for b in estimate.bands)
    # the residual decided the kernel
    assert all(b.residual[b.kernel.kind] == min(b.residual.values()) for b in estimate.bands)


@pytest.mark.real_data
def test_scene_estimate_reads_a_bounded_central_crop(coastal_full):
    estimate = registration.estimate_scene_registration(coastal_full, max_fine_pixels=128 * 128, max_samples=1000)
    assert estimate.samples <= 1000
    fine = coastal_full.fine()[140:268, 140:268]  # the central 128 x 128, even origin
    coarse = coastal_full.coarse()[70:134, 70:134]
    assert registration.estimate_registration(fine, coarse, max_samples=1000) == estimate


def test_json_round_trip_and_pair_models():
    kernel = wald.Kernel("gaussian", 0.9)
    bands = tuple(
        registration.BandEstimate(
            band=b,
            predictors=registration.PREDICTORS[b],
            offset=(-0.5, 0.25),
            kernel=kernel,
            residual={"gaussian": 0.1, "bicubic": 0.2},
            offsets={"gaussian": (-0.5, 0.25), "bicubic": (-0.4, 0.2)},
            sigma_gaussian=0.9,
        )
        for b in COARSE_BANDS
    )
    estimate = registration.RegistrationEstimate(bands=bands, offset=(-0.5, 0.25), kernel=kernel, samples=100)
    data = estimate.to_dict()
    assert registration.RegistrationEstimate.from_dict(data).to_dict() == data
    auto = registration.pair_model(estimate)
    assert auto.offset == (-0.5, 0.25) and set(auto.fine + auto.coarse) == {kernel}
    fixed = registration.pair_model(estimate, degradation="bicubic", registration="none")
    assert fixed == wald.PairModel.nominal("bicubic")
    shifted = registration.pair_model(estimate, degradation="mtf")
    assert shifted.offset == (-0.5, 0.25) and shifted.coarse == wald.PairModel.nominal("mtf").coarse
    with pytest.raises(OptionError, match="degradation or registration 'auto' needs a registration estimate"):
        registration.pair_model(None, degradation="bicubic")
    with pytest.raises(OptionError, match=r"registration must be 'auto' or 'none', got 'yes'"):
        registration.pair_model(estimate, registration="yes")


def test_bad_input_messages():
    fine, coarse = np.ones((64, 64, 4)), np.ones((32, 32, 6))
    with pytest.raises(OptionError, match=r"fine must be \(H, W, 4\), got shape \(64, 64\)"):
        registration.estimate_registration(fine[..., 0], coarse)
    with pytest.raises(SceneError, match="20 m bands are 31x32, not half the 10 m size 64x64"):
        registration.estimate_registration(fine, coarse[1:])
    with pytest.raises(SceneError, match="too small to estimate the band registration"):
        registration.estimate_registration(fine[:16, :16], coarse[:8, :8])
    with pytest.raises(SceneError, match=r"band\(s\) B05, B06, B07, B8A, B11, B12, B02, B03, B04, B08 constant"):
        registration.estimate_registration(fine, coarse)


@pytest.mark.real_data
def test_info_prints_the_estimates(run_cli, shared_data):
    done = run_cli("info", "--json", shared_data / "reykjavik_cell_RR.mat")
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)["registration"]
    assert np.allclose(estimate["offset"], (-0.5, -0.5), atol=0.1)
    assert [b["band"] for b in estimate["bands"]] == list(COARSE_BANDS)
    text = run_cli("info", shared_data / "coastalA_cell_RR.mat").stdout
    assert "registration of the 20 m bands" in text and "scene: offset of the 20 m grid" in text


@pytest.mark.real_data
def test_fit_config_chooses_the_pair(shared_data):
    from ssc_edge.train.fit import FitConfig, pair_model_for, training_data

    scene = read_scene(shared_data / "reykjavik_cell_RR.mat")
    assert FitConfig().degradation == "auto" and FitConfig().registration == "auto"
    assert pair_model_for(scene, FitConfig(protocol="paper")) is None
    assert pair_model_for(scene, FitConfig(degradation="bicubic", registration="none")) is None
    auto = pair_model_for(scene, FitConfig())
    assert np.allclose(auto.offset, (-0.5, -0.5), atol=0.1) and auto.fine[0].kind == "bicubic"
    nominal = pair_model_for(scene, FitConfig(degradation="mtf", registration="none"), estimate=None)
    assert nominal is None
    shifted = pair_model_for(scene, FitConfig(degradation="mtf"))
    assert shifted.coarse == wald.PairModel.nominal("mtf").coarse and shifted.offset == auto.offset
    inputs, target = training_data(scene, FitConfig(), pair=auto)
    expected = wald.training_pair(scene, model=auto)
    assert np.array_equal(inputs, expected.inputs) and np.array_equal(target, expected.target)
    with pytest.raises(OptionError, match=r"registration must be one of \('auto', 'none'\), got 'on'"):
        FitConfig(registration="on")


def test_registration_travels_in_the_model_metadata():
    from ssc_edge.contract import ModelContract

    pair = wald.PairModel(
        fine=wald.PairModel.nominal("bicubic").fine, coarse=wald.PairModel.nominal("bicubic").coarse, offset=(-0.5, 0)
    )
    contract = ModelContract(halo=6, scale=7000.0, registration={"pair_model": pair.to_dict()})
    metadata = contract.to_metadata()
    assert json.loads(metadata["ssc_edge.registration"])["pair_model"]["offset"] == [-0.5, 0.0]
    back = ModelContract.from_metadata(metadata)
    assert wald.PairModel.from_dict(back.registration["pair_model"]) == pair
    del metadata["ssc_edge.registration"]  # a model of an earlier version
    assert ModelContract.from_metadata(metadata).registration == {}


def _sixty_bands(scene: Scene, kernel: wald.Kernel, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The scene's 10 m bands and two simulated 60 m bands whose grid sits ``shift`` 10 m px from the nominal one.

    Truth from construction (:func:`ssc_edge.wald.decimate` centres 60 m pixel ``i`` at ``6 i + 2.5 + shift``),
    from real texture that is not the predictors': "B01" from B03 (regressed on B02), "B09" from B8A brought to
    10 m (regressed on B08).
    """
    size = min(scene.shape) // 6 * 6
    b8a = wald.upsample(scene.bands["B8A"][: size // 2, : size // 2].astype(np.float64), ratio=2)
    b03 = scene.bands["B03"][:size, :size].astype(np.float64)
    coarse = np.stack([wald.decimate(band, kernel, ratio=6, shift=shift) for band in (b03, b8a)], axis=-1)
    return scene.fine()[:size, :size], coarse


@pytest.mark.real_data
@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.5, -1.0), (-3.0, 0.5)])
@pytest.mark.parametrize("kernel", [wald.Kernel("gaussian", wald.mtf_sigma(0.32, ratio=6)), wald.Kernel("bicubic")])
def test_60m_offset_of_simulated_bands_is_found_within_a_tenth_of_a_pixel(coastal_full, kernel, shift):
    """Ratio 6 (B01 on B02, B09 on B08): the scene offset within 0.1 10 m px, the kernel family told apart."""
    fine, coarse = _sixty_bands(coastal_full, kernel, shift)
    estimate = registration.estimate_registration(fine, coarse, ratio=6)
    assert estimate.ratio == 6 and [b.band for b in estimate.bands] == ["B01", "B09"]
    assert np.max(np.abs(np.subtract(estimate.offset, shift))) < 0.1, estimate.offset
    assert estimate.kernel.kind == kernel.kind
    as_json = estimate.to_dict()
    assert registration.RegistrationEstimate.from_dict(as_json).to_dict() == as_json
    assert "scene: offset of the 60 m grid" in estimate.lines()[-1]


def test_60m_bad_input_messages():
    fine = np.ones((120, 120, 4))
    with pytest.raises(SceneError, match="60 m bands are 19x20, not 1/6 of the 10 m size 120x120"):
        registration.estimate_registration(fine, np.ones((19, 20, 2)), ratio=6)
    with pytest.raises(SceneError, match="too small to estimate the band registration of the 60 m bands"):
        registration.estimate_registration(fine[:60, :60], np.ones((10, 10, 2)), ratio=6)
    with pytest.raises(OptionError, match="ratio must be 2"):
        registration.estimate_registration(fine, np.ones((30, 30, 2)), ratio=4)
    no_sixty = Scene(bands={b: np.random.default_rng(0).random((120, 120)) for b in FINE_BANDS} | {
        b: np.random.default_rng(1).random((60, 60)) for b in COARSE_BANDS})  # fmt: skip
    with pytest.raises(SceneError, match="no usable B01, B09"):
        registration.estimate_scene_registration(no_sixty, ratio=6)


def test_sixty_pair_model_kernels_and_offsets():
    """auto keeps the estimate's offsets per band group; Gaussian widths add in variance (see sixty_pair_model)."""
    b = registration.BandEstimate
    gauss60 = wald.Kernel("gaussian", 3.0)
    e60 = registration.RegistrationEstimate(
        bands=(b("B01", ("B02",), (1.0, -0.5), gauss60, {"gaussian": 0.2, "bicubic": 0.3}, {}, 3.0),),
        offset=(1.0, -0.5), kernel=gauss60, samples=100, ratio=6)  # fmt: skip
    gauss20 = wald.Kernel("gaussian", 0.8)
    e20 = registration.RegistrationEstimate(
        bands=(b("B05", ("B04",), (0.2, 0.1), gauss20, {"gaussian": 0.1, "bicubic": 0.2}, {}, 0.8),),
        offset=(0.2, 0.1), kernel=gauss20, samples=100)  # fmt: skip
    model = registration.sixty_pair_model(e60, e20)
    assert model.kernels["B02"] == model.kernels["B09"] == gauss60
    assert model.kernels["B05"].sigma == pytest.approx(np.sqrt((35 * 0.8**2 + 3.0**2) / 4))
    assert model.offsets["B01"] == (1.0, -0.5) and model.offsets["B12"] == (0.2, 0.1)
    assert model.shift("B02", ("B01", "B09"), 6) == (-5.0, 2.5)  # the 10 m bands move -(r - 1) d_60
    nominal = registration.sixty_pair_model(None, None, degradation="mtf", registration="none")
    assert nominal.offsets == {} and nominal.kernels["B01"].sigma == pytest.approx(wald.mtf_sigma(0.32, ratio=6))
    with pytest.raises(OptionError, match="needs the 60 m and 20 m registration estimates"):
        registration.sixty_pair_model(None, e20)


@pytest.mark.real_data
def test_info_prints_the_60m_estimate_where_the_scene_has_60m_bands(run_cli, shared_data):
    done = run_cli("info", "--json", shared_data / "real" / "l1c_T31TDH_20150726_crop")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["registration_60m"]["ratio"] == 6 and summary["registration"]["ratio"] == 2
    text = run_cli("info", shared_data / "CoastalA_cell.mat").stdout
    assert "registration of the 60 m bands" in text and "scene: offset of the 60 m grid" in text
    assert "60 m" not in run_cli("info", shared_data / "reykjavik_cell_RR.mat").stdout  # placeholders, dropped


@pytest.mark.real_data
def test_60m_estimate_is_used_only_where_the_crop_quadrants_agree(coastal_full):
    """Simulated 60 m bands with one offset everywhere: the quadrants agree and the pair keeps the estimate.
    60 m bands of noise, unrelated to the 10 m bands: the offset means nothing, the quadrants disagree, and the
    60 m pair falls back to the nominal MTF kernels and grid."""
    fine, coarse = _sixty_bands(coastal_full, wald.Kernel("gaussian", 3.0), (1.5, -1.0))
    n = fine.shape[0]
    bands = {b: fine[..., i] for i, b in enumerate(FINE_BANDS)}
    bands |= {b: coastal_full.bands[b][: n // 2, : n // 2] for b in COARSE_BANDS}
    simulated = Scene(bands=bands | {"B01": coarse[..., 0], "B09": coarse[..., 1]})
    estimate = registration.estimate_scene_registration(simulated, ratio=6)
    assert estimate.stable and estimate.spread < 0.2
    e20 = registration.estimate_scene_registration(simulated)
    model = registration.sixty_pair_model(estimate, e20)
    assert model.offsets["B01"] == estimate.offset

    noise = np.random.default_rng(0).normal(1000, 100, coarse.shape)
    unrelated = Scene(bands=bands | {"B01": noise[..., 0], "B09": noise[..., 1]})
    estimate = registration.estimate_scene_registration(unrelated, ratio=6)
    assert not estimate.stable and estimate.spread > registration.MAX_SPREAD
    assert "NOT stable" in estimate.lines()[-1]
    model = registration.sixty_pair_model(estimate, e20)
    assert "B01" not in model.offsets and model.offsets["B05"] == e20.offset
    assert model.kernels["B01"].sigma == pytest.approx(wald.mtf_sigma(0.32, ratio=6))
    as_json = estimate.to_dict()
    assert registration.RegistrationEstimate.from_dict(as_json).to_dict() == as_json
