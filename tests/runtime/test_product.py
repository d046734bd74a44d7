"""The 60 m model at run time: tiles at ratio 6 equal whole-image inference bit for bit; the 20 m and
60 m models together write the 12-band 10 m product (band order, descriptions, georeferencing)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.bandset import SIXTY_INPUT_BANDS, stack_bands
from ssc_edge.errors import SceneError
from ssc_edge.runtime import Sharpener
from ssc_edge.runtime.product import CombinedSharpener
from ssc_edge.scene import GeoReference, Scene

from ._models import write_model

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7200000.0), "EPSG:32627")


def scene_with_60m(height: int, width: int, *, seed: int = 0) -> Scene:
    """Random textured bands on the 10, 20 and 60 m grids (DN 0..6000)."""
    rng = np.random.default_rng(seed)
    bands = {}
    for band in ALL_BANDS:
        ratio = {"B01": 6, "B09": 6}.get(band, 2 if band in COARSE_BANDS else 1)
        bands[band] = rng.uniform(0, 6000, (height // ratio, width // ratio)).astype(np.float32)
    return Scene(bands=bands, name="random-12", georef=GEOREF)


@pytest.fixture(scope="module")
def sixty_model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("m60") / "m_60m.onnx", blocks=2, width=8, seed=5, sixty=True)


@pytest.fixture(scope="module")
def twenty_model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("m20") / "m.onnx", blocks=3, width=8, seed=6)


def _whole(model_path, scene, input_bands) -> np.ndarray:
    """Independent reference: the whole input (every band upsampled at once) through plain onnxruntime."""
    x = stack_bands(scene.bands, input_bands, scene.shape, upsampling="bicubic")[None] / np.float32(10000.0)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(["sharpened"], {"bands": x})[0][0] * np.float32(10000.0)


@pytest.mark.parametrize(("tile", "batch"), [(11, 1), (16, 3), (23, 2), (37, 1), (96, 1)])
def test_60m_tiles_equal_the_whole_image_bit_for_bit(sixty_model, tile, batch):
    """Tiles of 11..37 px start at rows that are not multiples of 6; the 60 m windows still upsample exactly."""
    scene = scene_with_60m(66, 54, seed=1)
    sharpener = Sharpener(sixty_model, provider="cpu", tile=tile, batch=batch)
    assert sharpener.contract.ratio == 6 and sharpener.contract.output_bands == VERY_COARSE_BANDS
    got = sharpener.sharpen(scene)
    whole = _whole(sixty_model, scene, SIXTY_INPUT_BANDS)
    assert got.shape == (66, 54, 2)
    assert np.array_equal(got, whole), f"max difference {np.abs(got - whole).max()}"


def test_combined_models_equal_each_whole_image_result(sixty_model, twenty_model):
    scene = scene_with_60m(60, 72, seed=2)
    combined = CombinedSharpener(
        [Sharpener(twenty_model, provider="cpu", tile=19), Sharpener(sixty_model, provider="cpu", tile=19)]
    )
    assert combined.contract.output_bands == COARSE_BANDS + VERY_COARSE_BANDS
    assert combined.contract.halo == 7  # the larger of 7 (blocks 3) and 5 (blocks 2)
    got = combined.sharpen(scene)
    assert np.array_equal(got[..., :6], _whole(twenty_model, scene, COARSE_BANDS + FINE_BANDS))
    assert np.array_equal(got[..., 6:], _whole(sixty_model, scene, SIXTY_INPUT_BANDS))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_combined_models_share_one_io_thread_and_read_each_window_once(sixty_model, twenty_model, prefetch):
    import threading
    from collections import Counter

    scene = scene_with_60m(60, 72, seed=3)
    sharpeners = [Sharpener(m, provider="cpu", tile=19, prefetch=prefetch) for m in (twenty_model, sixty_model)]
    combined = CombinedSharpener(sharpeners)
    out = np.zeros((60, 72, 8), np.float32)
    callers, reads, cores = set(), Counter(), []

    def read(band, tile):
        callers.add(threading.get_ident())
        reads[band, tile] += 1
        return scene.bands[band][tile.slices]

    def write(core, values):
        callers.add(threading.get_ident())
        cores.append(core)
        out[core.slices] = values

    tiles = combined.sharpen_windows(scene.shape, read, write)
    assert np.array_equal(out[..., :6], _whole(twenty_model, scene, COARSE_BANDS + FINE_BANDS))
    assert np.array_equal(out[..., 6:], _whole(sixty_model, scene, SIXTY_INPUT_BANDS))
    assert cores == [p.core for p in combined.plan(scene.shape)] and len(cores) == tiles
    # both models need each tile's 10 m and 20 m windows: read once (neighbouring tiles of this small scene
    # may share a 60 m window, so those may be read by more than one tile)
    assert max(n for (band, _), n in reads.items() if band not in VERY_COARSE_BANDS) == 1
    assert {band for band, _ in reads} == set(ALL_BANDS)
    assert len(callers) == 1 and (threading.get_ident() in callers) == (prefetch == 0)  # one I/O thread


def test_10m_size_not_a_multiple_of_6_is_refused(sixty_model):
    with pytest.raises(SceneError, match=r"62x54 px: the 10 m size must be a multiple of 6 \(the 60 m grid\)"):
        Sharpener(sixty_model, provider="cpu", tile=16).sharpen(scene_with_60m(62, 54))


def test_scene_without_60m_bands_is_refused(sixty_model):
    scene = scene_with_60m(60, 60)
    bands = {b: v for b, v in scene.bands.items() if b not in VERY_COARSE_BANDS}
    with pytest.raises(SceneError, match="the model needs band\\(s\\) B01, B09, which the scene lacks"):
        Sharpener(sixty_model, provider="cpu", tile=16).sharpen(Scene(bands=bands, name="no60"))


def test_twelve_band_product_streams_with_order_descriptions_and_georeference(tmp_path, sixty_model, twenty_model):
    rasterio = pytest.importorskip("rasterio")
    from ssc_edge.io.geotiff import write_geotiff
    from ssc_edge.runtime.infer import sharpen_file
    from ssc_edge.runtime.options import OutputOptions, RunOptions

    scene = scene_with_60m(72, 60, seed=3)
    scene = Scene(bands={b: np.maximum(v, 1) for b, v in scene.bands.items()}, name="valid")  # 0 DN is no-data
    folder = tmp_path / "scene"
    folder.mkdir()
    for group, factor, name in ((FINE_BANDS, 1, "10m"), (COARSE_BANDS, 2, "20m"), (VERY_COARSE_BANDS, 6, "60m")):
        stack = np.stack([np.rint(scene.bands[b]) for b in group], axis=-1)
        georef = GEOREF.scaled(factor) if factor > 1 else GEOREF
        write_geotiff(folder / f"T27WVM_{name}.tif", stack, band_names=group, georef=georef, dtype="uint16")
    result = sharpen_file(twenty_model, folder, tmp_path / "all.tif", run=RunOptions(provider="cpu", tile=20),
                          out=OutputOptions(with_fine=True), model_60m=sixty_model)  # fmt: skip
    assert result.streamed
    expected_names = tuple(b for b in ALL_BANDS)  # B01..B12 without B10 (never in ALL_BANDS)
    assert result.band_names == expected_names and len(expected_names) == 12
    rounded = Scene(bands={b: np.rint(v) for b, v in scene.bands.items()}, name="rounded")
    with rasterio.open(result.output) as out:
        assert out.descriptions == expected_names
        assert out.crs.to_epsg() == 32627
        assert tuple(out.transform)[:6] == GEOREF.transform
        got = np.moveaxis(out.read(), 0, -1)
    by_name = {b: got[..., i] for i, b in enumerate(expected_names)}
    for band in FINE_BANDS:
        assert np.array_equal(by_name[band], rounded.bands[band])
    sixty = _whole(sixty_model, rounded, SIXTY_INPUT_BANDS)
    twenty = _whole(twenty_model, rounded, COARSE_BANDS + FINE_BANDS)
    assert np.array_equal(np.stack([by_name[b] for b in VERY_COARSE_BANDS], -1), sixty)
    assert np.array_equal(np.stack([by_name[b] for b in COARSE_BANDS], -1), twenty)


def test_each_model_marks_its_own_bands_where_a_band_it_reads_is_no_data(sixty_model, twenty_model):
    """B01 no-data in one 60 m pixel: the 60 m model's B01/B09 are NaN there, the 20 m model's bands are not;
    the combined tiles equal each model's own whole-image run (fill included) bit for bit."""
    scene = scene_with_60m(60, 72, seed=4)
    bands = dict(scene.bands)
    bands["B01"] = bands["B01"].copy()
    bands["B01"][3:5, 4:6] = 0  # 10 m rows 18..29, cols 24..35
    holed = Scene(bands=bands, name="holed", georef=GEOREF)
    combined = CombinedSharpener(
        [Sharpener(twenty_model, provider="cpu", tile=19), Sharpener(sixty_model, provider="cpu", tile=19)]
    )
    got = combined.sharpen(holed)
    assert np.isnan(got[18:30, 24:36, 6:]).all() and np.isfinite(got[..., :6]).all()
    assert np.isnan(got[..., 6:]).sum() == 2 * 12 * 12
    alone = [Sharpener(m, provider="cpu", tile=72).sharpen(holed) for m in (twenty_model, sixty_model)]
    assert np.array_equal(got, np.concatenate(alone, axis=-1), equal_nan=True)
