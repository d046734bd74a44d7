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
