"""GeoTIFF streaming: same numbers as in memory, georeferencing kept, atomic output, bad input."""

from __future__ import annotations

import errno

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS  # noqa: E402
from ssc_edge.errors import OutputError, SceneError  # noqa: E402
from ssc_edge.io import open_band_source, read_scene  # noqa: E402
from ssc_edge.io.geotiff import write_geotiff  # noqa: E402
from ssc_edge.runtime import Sharpener  # noqa: E402
from ssc_edge.runtime import stream as stream_module  # noqa: E402
from ssc_edge.runtime.stream import sharpen_stream  # noqa: E402
from ssc_edge.scene import GeoReference  # noqa: E402

from .conftest import random_scene  # noqa: E402

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7200000.0), "EPSG:32627")


def stream(sharpener, scene, output, **options):
    """:func:`sharpen_stream` of the scene at ``scene``, opened through the one door."""
    with open_band_source(scene) as source:
        return sharpen_stream(sharpener, source, output, **options)


def write_scene_folder(folder, scene, *, georef=GEOREF, dtype="uint16"):
    """A scene as two multi-band GeoTIFFs (10 m and 20 m), like a cropped Sentinel-2 product."""
    folder.mkdir()
    fine = np.rint(scene.fine()) if dtype == "uint16" else scene.fine()
    coarse = np.rint(scene.coarse()) if dtype == "uint16" else scene.coarse()
    write_geotiff(folder / "T27WVM_10m.tif", fine, band_names=FINE_BANDS, georef=georef, dtype=dtype)
    write_geotiff(folder / "T27WVM_20m.tif", coarse, band_names=COARSE_BANDS, georef=georef.scaled(2), dtype=dtype)
    return folder


@pytest.fixture()
def scene_folder(tmp_path):
    return write_scene_folder(tmp_path / "scene", random_scene(70, 58, seed=7))


@pytest.mark.parametrize("tile", [16, 29, 512])
def test_stream_equals_in_memory_and_keeps_georeferencing(tmp_path, scene_folder, nhwc_model, tile):
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=tile, batch=2)
    result = stream(sharpener, scene_folder, tmp_path / "out.tif")
    expected = Sharpener(nhwc_model, provider="cpu", tile=512).sharpen(read_scene(scene_folder))
    with rasterio.open(result.path) as out:
        got = np.moveaxis(out.read(), 0, -1)
        assert out.descriptions == COARSE_BANDS
        assert out.crs.to_epsg() == 32627
        assert tuple(out.transform)[:6] == GEOREF.transform
        assert out.dtypes == ("float32",) * 6
    assert np.array_equal(got, expected)
    assert result.shape == (70, 58)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "scene"]  # no temporary file left


def test_with_fine_writes_the_ten_band_product_in_uint16(tmp_path, scene_folder, nhwc_model):
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=24)
    result = stream(sharpener, scene_folder, tmp_path / "full.tif", with_fine=True, dtype="uint16")
    scene = read_scene(scene_folder)
    sharpened = sharpener.sharpen(scene)
    with rasterio.open(result.path) as out:
        names = out.descriptions
        data = np.moveaxis(out.read(), 0, -1)
        assert out.dtypes == ("uint16",) * 10
    assert names == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    for i, band in enumerate(names):
        if band in FINE_BANDS:
            assert np.array_equal(data[..., i], scene.bands[band].astype(np.uint16))
        else:
            expected = np.clip(np.rint(sharpened[..., COARSE_BANDS.index(band)]), 1, 65535).astype(np.uint16)
            assert np.array_equal(data[..., i], expected)


def test_full_disk_leaves_nothing_behind(tmp_path, scene_folder, nhwc_model, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stream_module._StripWriter, "_commit", full)
    out = tmp_path / "out" / "full.tif"
    out.parent.mkdir()
    with pytest.raises(OutputError, match=r"full\.tif: cannot write \(No space left on device\)"):
        stream(Sharpener(nhwc_model, provider="cpu", tile=32), scene_folder, out)
    assert list(out.parent.iterdir()) == []


def test_nan_in_a_geotiff_band_is_refused(tmp_path, nhwc_model):
    scene = random_scene(40, 40, seed=8)
    folder = write_scene_folder(tmp_path / "nan", scene, dtype="float32")
    with rasterio.open(folder / "T27WVM_20m.tif", "r+") as dataset:
        data = dataset.read(2)
        data[5, 6] = np.nan
        dataset.write(data, 2)
    with pytest.raises(SceneError, match=r"T27WVM_20m\.tif: band B06 has non-finite values"):
        stream(Sharpener(nhwc_model, provider="cpu", tile=16), folder, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_existing_output_is_refused(tmp_path, scene_folder, nhwc_model):
    (tmp_path / "o.tif").write_bytes(b"keep")
    with pytest.raises(OutputError, match="output exists; pass --force"):
        stream(Sharpener(nhwc_model, provider="cpu"), scene_folder, tmp_path / "o.tif")
    assert (tmp_path / "o.tif").read_bytes() == b"keep"


def test_tall_scene_flushes_whole_blocks_and_still_matches(tmp_path, nhwc_model):
    """580 rows: two 256-row blocks are flushed mid-stream, the rest at the end."""
    folder = write_scene_folder(tmp_path / "tall", random_scene(580, 30, seed=11))
    result = stream(Sharpener(nhwc_model, provider="cpu", tile=64, batch=3), folder, tmp_path / "o.tif")
    expected = Sharpener(nhwc_model, provider="cpu", tile=600).sharpen(read_scene(folder))
    with rasterio.open(result.path) as out:
        assert np.array_equal(np.moveaxis(out.read(), 0, -1), expected, equal_nan=True)  # 0 DN pixels: NaN


def test_scene_lacking_a_model_band_is_refused(tmp_path, nhwc_model):
    scene = random_scene(40, 40, seed=13)
    folder = tmp_path / "five"
    folder.mkdir()
    write_geotiff(folder / "T_10m.tif", scene.fine(), band_names=FINE_BANDS, georef=GEOREF)
    write_geotiff(folder / "T_20m.tif", scene.coarse()[..., :5], band_names=COARSE_BANDS[:5], georef=GEOREF.scaled(2))
    with pytest.raises(SceneError, match=r"five: the model needs band\(s\) B12, which the scene lacks"):
        stream(Sharpener(nhwc_model, provider="cpu"), folder, tmp_path / "o.tif")
