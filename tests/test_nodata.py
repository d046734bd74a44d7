"""No-data end to end: the fill, tiled == whole with a wedge, the exact invariant beyond the receptive
field, nodata in every output, and a SAFE product with a wedge and a GeoTIFF band folder with a border."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from scipy import ndimage

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.contract import INPUT_NAME
from ssc_edge.nodata import fill_margin, fill_nearest, read_filled, scene_valid, valid_pixels
from ssc_edge.runtime import Sharpener
from ssc_edge.scene import Scene
from ssc_edge.tiling import Tile
from ssc_edge.wald import model_input

from .runtime._models import write_model
from .runtime.conftest import random_scene

HALO = 5  # of the test model (2 blocks)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("nodata") / "m.onnx", blocks=2, width=8, layout="NHWC", seed=1)


def _wedge(shape, *, ratio=1, slope=0.7, cut=30.0) -> np.ndarray:
    """True inside a no-data wedge of a grid of ``shape`` whose pixels are ``ratio`` 10 m pixels."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows + 0.5) * ratio + slope * (cols + 0.5) * ratio < cut


def _with_nodata(scene: Scene, nodata_of) -> Scene:
    """``scene`` with 0 DN (no-data) where ``nodata_of(shape, ratio)`` is True on each band's grid."""
    bands = {}
    for band, values in scene.bands.items():
        ratio = scene.shape[0] // values.shape[0]
        bands[band] = np.where(nodata_of(values.shape, ratio), np.float32(0), values)
    return Scene(bands=bands, name="nodata")


def _far_from(invalid: np.ndarray, halo: int, ratio: int = 2) -> np.ndarray:
    """10 m pixels farther than the receptive reach (halo + the Keys kernel's 2 coarse px + 1) from no-data."""
    reach = halo + ratio * 3
    return ~ndimage.binary_dilation(invalid, structure=np.ones((2 * reach + 1, 2 * reach + 1), bool))


# -- the fill ---------------------------------------------------------------------------------------


def test_fill_takes_the_nearest_valid_pixel_and_keeps_valid_ones():
    rng = np.random.default_rng(0)
    values = rng.uniform(1, 100, (30, 40, 3)).astype(np.float32)
    valid = rng.random((30, 40)) > 0.6
    filled = fill_nearest(values, valid)
    assert np.array_equal(filled[valid], values[valid])
    rows, cols = np.nonzero(valid)
    for r, c in zip(*np.nonzero(~valid), strict=True):  # brute force: the nearest valid distance
        d = np.hypot(rows - r, cols - c)
        nearest = d == d.min()
        assert any(
            np.array_equal(filled[r, c], values[a, b]) for a, b in zip(rows[nearest], cols[nearest], strict=True)
        )


def test_fill_of_a_window_equals_the_whole_image_fill_where_it_can_matter():
    """A window grown by fill_margin(reach) fills every pixel within reach of a valid pixel as the whole image does."""
    rng = np.random.default_rng(1)
    reach = 6
    for trial in range(60):
        values = rng.uniform(1, 100, (70, 80, 2)).astype(np.float32)
        if trial % 2:
            valid = ndimage.binary_opening(rng.random((70, 80)) > 0.3)
        else:
            valid = ~_wedge((70, 80), slope=rng.uniform(0.2, 3), cut=rng.uniform(20, 90))
        whole = fill_nearest(values, valid)
        near = ndimage.binary_dilation(valid, structure=np.ones((2 * reach + 1, 2 * reach + 1), bool))
        tile = Tile(int(rng.integers(0, 50)), int(rng.integers(0, 60)), 20, 20)

        def read(band, t, values=values):
            return values[t.slices][..., int(band)]

        def read_valid(band, t, valid=valid):
            return valid[t.slices]

        got, got_valid = read_filled(read, read_valid, ["0", "1"], tile, (70, 80), margin=fill_margin(reach))
        assert np.array_equal(got_valid, valid[tile.slices])
        assert np.array_equal(got[near[tile.slices]], whole[tile.slices][near[tile.slices]])


# -- the sharpener ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tile", [11, 16, 23, 30])
def test_tiled_equals_whole_image_with_a_nodata_wedge(model, tile):
    scene = _with_nodata(random_scene(62, 46, seed=3), lambda shape, ratio: _wedge(shape, ratio=ratio))
    whole = Sharpener(model, provider="cpu", tile=64).sharpen(scene)
    tiled = Sharpener(model, provider="cpu", tile=tile, batch=2).sharpen(scene)
    assert np.array_equal(tiled, whole, equal_nan=True)
    assert 0.1 < np.isnan(whole[..., 0]).mean() < 0.5


@pytest.mark.parametrize("tile,batch", [(16, 1), (16, 3), (23, 2)])
def test_windows_whose_core_is_all_nodata_skip_the_network_and_match_the_whole_image(model, tile, batch):
    scene = _with_nodata(random_scene(62, 46, seed=3), lambda shape, ratio: _wedge(shape, ratio=ratio, cut=45.0))
    whole_sharpener = Sharpener(model, provider="cpu", tile=64)
    whole = whole_sharpener.sharpen(scene)
    assert whole_sharpener.last_skipped == 0  # one window, with data: the network runs
    sharpener = Sharpener(model, provider="cpu", tile=tile, batch=batch)
    tiled = sharpener.sharpen(scene)
    assert np.array_equal(tiled, whole, equal_nan=True)
    valid = scene_valid(scene)  # independent of the engine: the cores with no valid 10 m pixel
    expected = sum(not valid[p.core.slices].any() for p in sharpener.plan(scene.shape))
    assert expected >= 2 and sharpener.last_skipped == expected


def test_nodata_output_is_nan_and_valid_pixels_beyond_the_receptive_field_are_unchanged(model):
    clean = random_scene(62, 46, seed=3)
    scene = _with_nodata(clean, lambda shape, ratio: _wedge(shape, ratio=ratio))
    sharpener = Sharpener(model, provider="cpu", tile=20)
    got, reference = sharpener.sharpen(scene), sharpener.sharpen(clean)
    valid = scene_valid(scene)
    assert np.array_equal(valid_pixels(got), valid)  # NaN exactly where a band the model reads is no-data
    assert np.isnan(got[~valid]).all() and np.isfinite(got[valid]).all()
    far = _far_from(~valid, HALO)
    assert far.sum() > 500 and np.array_equal(got[far], reference[far])  # exact: the receptive field is clean
    near = valid & ~far  # filled inputs, not zeros: the values stay those of a sharpened scene
    assert np.abs(got[near] - reference[near]).max() < 2500


def test_no_nodata_pixel_is_filled_with_a_made_up_value_in_any_band(model):
    """A pixel where only one 20 m band is no-data is no-data in every output band."""
    clean = random_scene(40, 40, seed=5)
    bands = dict(clean.bands)
    bands["B11"] = bands["B11"].copy()
    bands["B11"][5:9, 10:14] = 0  # 20 m pixels: 10 m rows 10..17, cols 20..27
    got = Sharpener(model, provider="cpu", tile=20).sharpen(Scene(bands=bands, name="b11"))
    assert np.isnan(got[10:18, 20:28]).all()
    assert np.isfinite(got[:10]).all() and np.isfinite(got[18:]).all()


def test_a_scene_without_nodata_gives_the_same_numbers_as_before(model):
    """The fill is not touched when every pixel is valid: the plain onnxruntime reference of test_sharpen holds."""
    scene = random_scene(40, 34, seed=2)
    assert scene_valid(scene).all()
    got = Sharpener(model, provider="cpu", tile=16).sharpen(scene)
    x = model_input(scene.fine(), scene.coarse())[None] / np.float32(10000)  # NHWC, the model's scale
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert np.array_equal(got, session.run(None, {INPUT_NAME: x})[0][0] * np.float32(10000))


# -- files: a GeoTIFF band folder with a nodata border, a SAFE product with a wedge ----------------

rasterio = pytest.importorskip("rasterio")


def _write_folder(folder, scene, *, nodata_value=None, border=0):
    """The scene as two uint16 GeoTIFFs, a ``border`` (10 m px) of ``nodata_value`` (tagged) on the left."""
    from ssc_edge.io.geotiff import write_geotiff
    from ssc_edge.scene import GeoReference

    georef = GeoReference((10.0, 0.0, 500000.0, 0.0, -10.0, 7000000.0), "EPSG:32627")
    folder.mkdir()
    for group, ratio, name in ((FINE_BANDS, 1, "10m"), (COARSE_BANDS, 2, "20m")):
        stack = np.stack([np.maximum(np.rint(scene.bands[b]), 1) for b in group], axis=-1)
        if border:
            stack[:, : border // ratio] = nodata_value
        path = folder / f"T27WVM_{name}.tif"
        write_geotiff(path, stack, band_names=group, georef=georef.scaled(ratio) if ratio > 1 else georef,
                      dtype="uint16", nodata=nodata_value)  # fmt: skip
    return folder


def _stream(sharpener, scene, output, **options):
    """:func:`~ssc_edge.runtime.stream.sharpen_stream` of the scene at ``scene``, opened through the one door."""
    from ssc_edge.io.sources import open_band_source
    from ssc_edge.runtime.stream import sharpen_stream

    with open_band_source(scene) as source:
        return sharpen_stream(sharpener, source, output, **options)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_geotiff_folder_with_a_tagged_nodata_border(tmp_path, model, dtype):
    scene = random_scene(60, 50, seed=8)
    bordered = _write_folder(tmp_path / "bordered", scene, nodata_value=65535, border=12)
    clean = _write_folder(tmp_path / "clean", scene)
    sharpener = Sharpener(model, provider="cpu", tile=24)
    out = _stream(sharpener, bordered, tmp_path / "b.tif", dtype=dtype, with_fine=True).path
    ref = _stream(sharpener, clean, tmp_path / "c.tif", dtype=dtype, with_fine=True).path
    with rasterio.open(out) as a, rasterio.open(ref) as b:
        got, expected = np.moveaxis(a.read(), 0, -1), np.moveaxis(b.read(), 0, -1)
        nodata = a.nodatavals
    if dtype == "uint16":
        assert nodata == (0.0,) * 10
        assert (got[:, :12] == 0).all() and (got[:, 12:] > 0).all()  # 0 only at no-data, every band
    else:
        assert all(np.isnan(v) for v in nodata)
        assert np.isnan(got[:, :12]).all() and np.isfinite(got[:, 12:]).all()
    invalid = np.zeros((60, 50), bool)
    invalid[:, :12] = True
    far = _far_from(invalid, HALO)
    assert np.array_equal(got[far], expected[far])


def test_safe_product_with_a_nodata_wedge(tmp_path, model, shared_data):
    from ssc_edge.io import read_scene
    from ssc_edge.io.sources import open_band_source

    from .io.real_safe import build_real_safe

    def wedge(band, dn):
        ratio = 300 // dn.shape[0]
        return np.where(_wedge(dn.shape, ratio=ratio, slope=1.3, cut=160.0), 0, dn)

    safe = build_real_safe(shared_data, tmp_path / "wedge", edit=wedge)
    clean = build_real_safe(shared_data, tmp_path / "clean")
    with open_band_source(safe) as source:
        tile = Tile(0, 0, 150, 150)
        valid = source.valid("B05", tile)
        assert np.array_equal(valid, ~_wedge((150, 150), ratio=2, slope=1.3, cut=160.0))
        assert (source.read("B05", tile)[~valid] == 0).all()  # no-data reads as 0 DN, not offset to -1000
    sharpener = Sharpener(model, provider="cpu", tile=64)
    got_path = _stream(sharpener, safe, tmp_path / "w.tif").path
    ref_path = _stream(sharpener, clean, tmp_path / "c.tif").path
    with rasterio.open(got_path) as a, rasterio.open(ref_path) as b:
        got, expected = np.moveaxis(a.read(), 0, -1), np.moveaxis(b.read(), 0, -1)
        assert np.isnan(a.nodatavals[0])
    invalid = ~scene_valid(read_scene(safe))
    assert 0.1 < invalid.mean() < 0.5
    assert np.array_equal(np.isnan(got).any(axis=-1), invalid)
    far = _far_from(invalid, HALO)
    assert np.array_equal(got[far], expected[far])
    in_memory = sharpener.sharpen(read_scene(safe))  # the 0 DN rule of an in-memory scene: the same numbers
    assert np.array_equal(in_memory, got, equal_nan=True)


def test_row_bands_with_a_nodata_wedge_stitch_to_the_whole_image_result(model):
    """Workers hold the rows the no-data fill reads beyond their windows (ssc_edge.runtime.split)."""
    from ssc_edge.runtime.split import sharpen_in_row_bands, sharpen_row_band

    scene = _with_nodata(random_scene(90, 40, seed=6), lambda shape, ratio: _wedge(shape, ratio=ratio, cut=60.0))
    sharpener = Sharpener(model, provider="cpu", tile=20)
    whole = sharpener.sharpen(scene)
    got = sharpen_in_row_bands(
        scene, sharpener.contract, count=4, tile=20, run=lambda parts: [sharpen_row_band(sharpener, p) for p in parts]
    )
    assert np.array_equal(got, whole, equal_nan=True) and np.isnan(whole).any()


def test_an_all_nodata_band_is_refused_naming_the_files_nodata_value(tmp_path, model):
    from ssc_edge.errors import SceneError

    scene = random_scene(40, 40, seed=9)
    folder = _write_folder(tmp_path / "s", scene, nodata_value=65535, border=40)  # every pixel is the tag
    with pytest.raises(SceneError, match=r"s: band B05 is all no-data \(every pixel the nodata value 65535\)"):
        _stream(Sharpener(model, provider="cpu"), folder, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()
