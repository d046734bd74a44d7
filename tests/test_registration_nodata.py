"""No-data out of the band registration estimate (ssc_edge/registration.py, issue 31 item 3).

The real L1C crop with a 0 DN wedge over 18 % of it (an edge-of-swath tile) used to put the 20 m grid at
+0.08/+0.20 px with sigma 0.52 px, against +0.02/+0.01 px and 0.94 px from the same pixels without the
wedge: the wedge's edge is the strongest "texture" of the scene and the regression fitted it. A 20 m pixel
now enters only when it and its whole 10 x 10 neighbourhood of 10 m pixels are valid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssc_edge import registration
from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import SceneError
from ssc_edge.scene import Scene

CROP = "T31TDH_20150726T105026"


def _wedge(shape: tuple[int, int], share: float = 0.18) -> np.ndarray:
    """True in a triangle at the top-left corner covering ``share`` of a grid of ``shape`` (any resolution)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows + 0.5) / shape[0] + (cols + 0.5) / shape[1] < np.sqrt(2 * share)


@pytest.fixture(scope="module")
def crop_bands(shared_data) -> dict[str, np.ndarray]:
    rasterio = pytest.importorskip("rasterio")
    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        with rasterio.open(shared_data / "real" / "l1c_T31TDH_20150726_crop" / f"{CROP}_{band}.jp2") as src:
            bands[band] = src.read(1)
    return bands


@pytest.fixture(scope="module")
def clean_estimate(crop_bands) -> registration.RegistrationEstimate:
    return registration.estimate_scene_registration(Scene(bands=crop_bands))


def _wedged(bands: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every band 0 DN in the wedge, each on its own grid (the 20 m wedge covers the same ground)."""
    return {band: np.where(_wedge(values.shape), 0, values).astype(values.dtype) for band, values in bands.items()}


def _close_to(estimate: registration.RegistrationEstimate, clean: registration.RegistrationEstimate) -> None:
    assert np.allclose(estimate.offset, clean.offset, atol=0.05), (estimate.offset, clean.offset)
    assert estimate.kernel.kind == clean.kernel.kind == "gaussian"
    assert abs(estimate.kernel.sigma - clean.kernel.sigma) < 0.05, (estimate.kernel, clean.kernel)


@pytest.mark.real_data
def test_a_nodata_wedge_gives_the_clean_crops_offset_and_blur(crop_bands, clean_estimate):
    clean = clean_estimate
    wedged = _wedged(crop_bands)
    assert 0.17 < np.mean(wedged["B02"] == 0) < 0.19 and 0.17 < np.mean(wedged["B11"] == 0) < 0.19
    estimate = registration.estimate_scene_registration(Scene(bands=wedged))
    _close_to(estimate, clean)
    # the wedge and every 20 m pixel within reach of it are left out, nothing else
    assert 0.75 * clean.samples < estimate.samples < 0.82 * clean.samples
    fine = np.stack([wedged[b] for b in FINE_BANDS], axis=-1)
    coarse = np.stack([wedged[b] for b in COARSE_BANDS], axis=-1)
    assert registration.estimate_registration(fine, coarse) == estimate
    # NaN is no-data as 0 DN is
    nan_fine, nan_coarse = (np.where(x == 0, np.nan, x.astype(np.float64)) for x in (fine, coarse))
    assert registration.estimate_registration(nan_fine, nan_coarse) == estimate
    # the fit's training pair, from the scene as it reads it
    from ssc_edge.io.sources import BandSource
    from ssc_edge.train.fit import FitConfig, pair_model_for

    pair = pair_model_for(BandSource.from_scene(Scene(bands=wedged)), FitConfig())
    assert pair.offset == estimate.offset and set(pair.coarse) == {estimate.kernel}


@pytest.mark.real_data
def test_info_on_a_wedged_band_folder_gives_the_clean_crops_offset_and_blur(
    tmp_path, run_cli, crop_bands, clean_estimate, shared_data
):
    """Band files as a granule's IMG_DATA names them (GeoTIFF, no nodata tag: 0 DN is no-data)."""
    rasterio = pytest.importorskip("rasterio")
    for band, values in _wedged(crop_bands).items():
        with rasterio.open(shared_data / "real" / "l1c_T31TDH_20150726_crop" / f"{CROP}_{band}.jp2") as src:
            crs, transform = src.crs, src.transform
        profile = {"driver": "GTiff", "height": values.shape[0], "width": values.shape[1], "count": 1}
        with rasterio.open(tmp_path / f"{CROP}_{band}.tif", "w", **profile, dtype="uint16", crs=crs,
                           transform=transform) as dst:  # fmt: skip
            dst.write(values, 1)
    done = run_cli("info", "--json", tmp_path)
    assert done.returncode == 0, done.stderr
    _close_to(registration.RegistrationEstimate.from_dict(json.loads(done.stdout)["registration"]), clean_estimate)


@pytest.mark.real_data
def test_the_60m_estimate_leaves_the_wedge_out_too(shared_data):
    """Ratio 6 (30 x 30 neighbourhoods): the full Coastal scene with the wedge keeps its 60 m offset and blur,
    and its crop's quadrants still agree (each quadrant regressed on its own valid pixels)."""
    from ssc_edge.io import read_scene

    coastal = read_scene(shared_data / "CoastalA_cell.mat")
    clean = registration.estimate_scene_registration(coastal, ratio=6, max_samples=2048)
    wedged = Scene(bands=_wedged(coastal.bands))
    estimate = registration.estimate_scene_registration(wedged, ratio=6, max_samples=2048)
    _close_to(estimate, clean)
    assert estimate.samples < clean.samples and estimate.stable


def _random_scene(size: int = 64, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random 10 m scene and its 20 m bands (2 x 2 means of it), DN."""
    rng = np.random.default_rng(seed)
    fine = 1000 + 200 * rng.random((size, size, len(FINE_BANDS)))
    mixed = fine[..., [2, 3, 3, 3, 0, 1]]
    coarse = mixed.reshape(size // 2, 2, size // 2, 2, len(COARSE_BANDS)).mean(axis=(1, 3))
    return fine, coarse + rng.random(coarse.shape)


def test_a_pixel_enters_only_with_its_whole_neighbourhood_valid():
    fine, coarse = _random_scene()
    whole = registration.estimate_registration(fine, coarse)
    assert whole.samples == 28 * 28  # 20 m rows and cols 2..29: neighbourhoods 2i - 4 .. 2i + 5 inside 64 px
    holed = fine.copy()
    holed[20, 20, 1] = np.nan  # one band of one 10 m pixel: in the neighbourhood of 20 m rows/cols 8..12
    assert registration.estimate_registration(holed, coarse).samples == 28 * 28 - 5 * 5
    holed[40, 41, 3] = 0.0  # 0 DN: 20 m rows 18..22, cols 18..22 (2 * 18 - 4 <= 41 <= 2 * 22 + 5)
    assert registration.estimate_registration(holed, coarse).samples == 28 * 28 - 2 * 5 * 5
    dark = coarse.copy()
    dark[5, 6, 4] = 0.0  # a 20 m pixel with no-data in one band
    assert registration.estimate_registration(fine, dark).samples == 28 * 28 - 1


def test_nodata_that_no_sampled_neighbourhood_reaches_changes_nothing_bit_for_bit():
    """The last 20 m rows and cols are never regressed (their neighbourhoods leave the 10 m grid): no-data
    there gives exactly the estimate of the scene without it, as does a scene without any no-data."""
    fine, coarse = _random_scene()
    whole = registration.estimate_registration(fine, coarse, max_samples=200)
    dark = coarse.copy()
    dark[30:, :] = 0.0
    dark[:, 31] = np.nan
    assert registration.estimate_registration(fine, dark, max_samples=200) == whole


def test_too_much_nodata_is_refused_with_a_message_that_says_so():
    fine, coarse = _random_scene()
    fine[12:] = 0.0  # only 20 m rows 2..3 keep a valid neighbourhood: 2 x 28 pixels
    message = r"only 56 20 m pixels of the 64x64 px scene are valid with their 10x10 neighbourhood of 10 m pixels"
    with pytest.raises(SceneError, match=message + r" \(no-data: 0 DN or NaN in any band\)"):
        registration.estimate_registration(fine, coarse)
