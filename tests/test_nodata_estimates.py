"""No-data out of the estimates made from a scene besides its registration (issue 31 item 3): the precision
gate's sample, the report's no-reference indexes and the fit's normalisation, on the real L1C crop with a
0 DN wedge over 18 % of it (an edge-of-swath tile). tests/test_registration_nodata.py has the registration."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge import nodata, registration, wald
from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.contract import ModelContract
from ssc_edge.quality import full_resolution_quality
from ssc_edge.runtime.precision import wald_gate_scene
from ssc_edge.scene import Scene

CROP = "T31TDH_20150726T105026"


def _wedge(shape: tuple[int, int], share: float = 0.18) -> np.ndarray:
    """True in a triangle at the top-left corner covering ``share`` of a grid of ``shape`` (any resolution)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows + 0.5) / shape[0] + (cols + 0.5) / shape[1] < np.sqrt(2 * share)


@pytest.fixture(scope="module")
def scenes(shared_data) -> tuple[Scene, Scene]:
    """The real crop and the same crop with every band 0 DN in the wedge (each band on its own grid), float32."""
    rasterio = pytest.importorskip("rasterio")
    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        with rasterio.open(shared_data / "real" / "l1c_T31TDH_20150726_crop" / f"{CROP}_{band}.jp2") as src:
            bands[band] = src.read(1).astype(np.float32)
    wedged = {band: np.where(_wedge(v.shape), np.float32(0), v) for band, v in bands.items()}
    return Scene(bands=bands, name="crop"), Scene(bands=wedged, name="wedged")


def _contract(pair: wald.PairModel | None, degradation: str = "auto") -> ModelContract:
    registration_meta = {"pair_model": pair.to_dict()} if pair is not None else {}
    return ModelContract(halo=6, scale=7000.0, training={"degradation": degradation}, registration=registration_meta)


@pytest.mark.real_data
@pytest.mark.parametrize("degradation", ["auto", "bicubic", "mtf"])
def test_the_gate_scores_valid_pixels_only_and_those_equal_the_clean_crops(scenes, degradation):
    """The gate's Wald pair of the wedged crop: a pixel whose degradation kernel read the wedge is no-data, so
    it is never scored; every pixel it scores is bit for bit the clean crop's (the rim along the wedge used to
    be a blend of 0 DN and the scene)."""
    clean, wedged = scenes
    pair = registration.pair_model(registration.estimate_scene_registration(clean)) if degradation == "auto" else None
    got, expected = (wald_gate_scene(s, _contract(pair, degradation)) for s in (wedged, clean))
    valid, everywhere = nodata.scene_valid(got), nodata.scene_valid(expected)
    assert everywhere.all() and 0.18 < 1 - valid.mean() < 0.30  # the wedge and its rim (kernel reach, 2 grids)
    for band in FINE_BANDS + COARSE_BANDS:
        ratio = got.shape[0] // got.bands[band].shape[0]
        kept = got.bands[band] != 0
        assert np.array_equal(got.bands[band][kept], expected.bands[band][kept]), band
        assert not kept[_wedge(kept.shape, 0.17)].any()  # nothing of the wedge itself is kept
        if ratio == 1:  # every 10 m pixel scored is valid in every band of both grids
            assert kept[valid].all()
    assert np.array_equal(got.reference[valid], expected.reference[valid])


def test_nodata_where_read_marks_every_pixel_whose_kernel_support_holds_nodata():
    """Coarse pixel ``i`` reads ``2 i - reach .. 2 i + reach``; without no-data the degraded bands themselves."""
    rng = np.random.default_rng(5)
    fine = 100 + rng.random((16, 16, 4))
    degraded = wald.decimate(fine, wald.Kernel("bicubic"))
    assert nodata.nodata_where_read(degraded, fine, reach=4) is degraded
    holed = fine.copy()
    holed[0, 15, 2] = 0.0  # one band of one pixel: coarse rows 0..2 (2 i - 4 <= 0), cols 6..7 (2 i + 4 >= 15)
    marked = nodata.nodata_where_read(degraded, holed, reach=4)
    expected = np.zeros((8, 8), dtype=bool)
    expected[:3, 6:] = True
    assert np.array_equal((marked == 0).all(axis=-1), expected)
    assert np.array_equal(marked[~expected], degraded[~expected])


@pytest.mark.real_data
def test_the_reports_indexes_ignore_what_a_product_holds_where_nothing_was_observed(scenes):
    """The train report scores the model's raw output, which holds values in the wedge: the indexes equal
    those of the same product with NaN there (what ``infer`` writes)."""
    _, wedged = scenes
    product = wald.full_scale_input(wedged)[..., : len(COARSE_BANDS)]  # bicubic: a product with values everywhere
    invalid = ~nodata.scene_valid(wedged)
    masked = np.where(invalid[..., None], np.float32(np.nan), product)
    raw = full_resolution_quality(product, wedged.fine(), wedged.coarse(), degradation="bicubic")
    assert raw == full_resolution_quality(masked, wedged.fine(), wedged.coarse(), degradation="bicubic")
    assert all(np.isfinite(v) for v in raw.to_dict().values() if isinstance(v, float))


@pytest.mark.real_data
def test_the_fits_normalisation_is_the_largest_valid_target_value(scenes):
    """No-data (0 DN) never sets the fit's scale: on the wedged crop it is the largest 20 m value left."""
    from ssc_edge.io.sources import BandSource
    from ssc_edge.train.fit import FitConfig
    from ssc_edge.train.windows import sample_patches

    clean, wedged = scenes
    config = FitConfig(patch_budget=64)
    drawn = {s.name: sample_patches(BandSource.from_scene(s), config) for s in (clean, wedged)}
    assert drawn["crop"].scale == float(clean.coarse().max())
    assert drawn["wedged"].scale == float(wedged.coarse()[nodata.measured(wedged.coarse())].max())
    assert drawn["wedged"].candidates < drawn["crop"].candidates  # patches near the wedge are left out
