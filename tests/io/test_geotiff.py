"""GeoTIFF scenes (folder of single-band files, multi-band files with descriptions) and the writer."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import read_scene
from ssc_edge.io.geotiff import geotiff_band_sources, read_geotiff_image, write_geotiff
from ssc_edge.scene import GeoReference

rasterio = pytest.importorskip("rasterio")

FINE_GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7100040.0), "EPSG:32627")


def _bands(height: int = 32, width: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {b: rng.integers(100, 5000, (height, width)).astype(np.uint16) for b in FINE_BANDS}
    out.update({b: rng.integers(100, 5000, (height // 2, width // 2)).astype(np.uint16) for b in COARSE_BANDS})
    return out


def _write_folder(folder, bands, *, prefix="T27WVM_20190610_", dtype="uint16") -> None:
    folder.mkdir(exist_ok=True)
    for name, array in bands.items():
        georef = FINE_GEOREF if name in FINE_BANDS else FINE_GEOREF.scaled(2)
        write_geotiff(folder / f"{prefix}{name}.tif", array[..., None], band_names=(name,), georef=georef, dtype=dtype)


def test_folder_of_single_band_files(tmp_path):
    bands = _bands()
    _write_folder(tmp_path / "scene", bands)
    (tmp_path / "scene" / "notes.txt").write_text("not a band")
    write_geotiff(tmp_path / "scene" / "TCI.tif", np.ones((4, 4, 3)), band_names=("r", "g", "b"))  # skipped
    scene = read_scene(tmp_path / "scene")
    assert scene.shape == (32, 48) and scene.fine_pixel_size == 10.0
    for name, array in bands.items():
        np.testing.assert_array_equal(scene.bands[name], array.astype(np.float32))
    assert scene.georef is not None
    assert scene.georef.transform == FINE_GEOREF.transform
    assert rasterio.crs.CRS.from_wkt(scene.georef.crs).to_epsg() == 32627


def test_band_sources(tmp_path):
    _write_folder(tmp_path / "scene", _bands(), prefix="")
    sources = geotiff_band_sources(tmp_path / "scene")
    assert set(sources) == set(FINE_BANDS + COARSE_BANDS)
    assert sources["B8A"] == (tmp_path / "scene" / "B8A.tif", 1)


def test_folder_of_two_multi_band_files(tmp_path):
    bands = _bands()
    folder = tmp_path / "grouped"
    folder.mkdir()
    fine = np.stack([bands[b] for b in FINE_BANDS], -1)
    coarse = np.stack([bands[b] for b in COARSE_BANDS], -1)
    write_geotiff(folder / "s10.tif", fine, band_names=FINE_BANDS, georef=FINE_GEOREF, dtype="uint16")
    write_geotiff(folder / "s20.tif", coarse, band_names=COARSE_BANDS, georef=FINE_GEOREF.scaled(2), dtype="uint16")
    sources = geotiff_band_sources(folder)
    assert sources["B04"] == (folder / "s10.tif", 3) and sources["B11"] == (folder / "s20.tif", 5)
    scene = read_scene(folder)
    np.testing.assert_array_equal(scene.coarse(), coarse.astype(np.float32))
    np.testing.assert_array_equal(scene.fine(), fine.astype(np.float32))


def test_rr_pixel_size_comes_from_the_transform(tmp_path):
    rr = GeoReference((20.0, 0.0, 399960.0, 0.0, -20.0, 7100040.0), "EPSG:32627")
    folder = tmp_path / "rr"
    folder.mkdir()
    for name, array in _bands().items():
        georef = rr if name in FINE_BANDS else rr.scaled(2)
        write_geotiff(folder / f"{name}.tif", array[..., None], band_names=(name,), georef=georef)
    scene = read_scene(folder)
    assert scene.fine_pixel_size == 20.0 and scene.gsd("B12") == 40.0


def test_one_multi_band_file_cannot_hold_both_grids(tmp_path):
    """One file has one grid: 20 m bands stored at the 10 m size fail the half-size check."""
    image = np.random.default_rng(0).uniform(1, 100, (32, 48, 10))
    write_geotiff(tmp_path / "all.tif", image, band_names=FINE_BANDS + COARSE_BANDS)
    assert len(geotiff_band_sources(tmp_path / "all.tif")) == 10
    with pytest.raises(SceneError, match=r"all\.tif: 20 m band B05 is 32x48, not half the 10 m size 32x48"):
        read_scene(tmp_path / "all.tif")


def test_write_geotiff_round_trip(tmp_path):
    image = np.random.default_rng(3).uniform(0, 1e4, (40, 30, 6)).astype(np.float32)
    write_geotiff(tmp_path / "r.tif", image, band_names=COARSE_BANDS, georef=FINE_GEOREF)
    read, descriptions, georef, _ = read_geotiff_image(tmp_path / "r.tif")
    np.testing.assert_array_equal(read, image)
    assert descriptions == COARSE_BANDS and georef.transform == FINE_GEOREF.transform
    with rasterio.open(tmp_path / "r.tif") as dataset:
        assert dataset.profile["tiled"] and dataset.compression.name.lower() == "deflate"
        assert dataset.crs.to_epsg() == 32627 and dataset.dtypes == ("float32",) * 6


def test_missing_band_in_folder(tmp_path):
    bands = _bands()
    del bands["B8A"]
    _write_folder(tmp_path / "s", bands)
    with pytest.raises(SceneError, match=r"s: missing band B8A"):
        read_scene(tmp_path / "s")


def test_duplicate_band_in_folder(tmp_path):
    _write_folder(tmp_path / "s", _bands())
    write_geotiff(tmp_path / "s" / "B05.tif", np.ones((16, 24, 1)), band_names=("B05",))
    with pytest.raises(SceneReadError, match=r"s: band B05 is in both"):
        geotiff_band_sources(tmp_path / "s")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_multi_band_file_without_descriptions(tmp_path):
    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=4, height=4, count=3, dtype="uint8") as ds:
        ds.write(np.ones((3, 4, 4), dtype=np.uint8))
    with pytest.raises(SceneReadError, match=r"m\.tif: band 1 description None is not a Sentinel-2 band name"):
        read_scene(tmp_path / "m.tif")


def test_folder_without_bands(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneReadError, match=r"empty: no raster named by a Sentinel-2 band"):
        read_scene(tmp_path / "empty")


def test_corrupt_tiff(tmp_path):
    (tmp_path / "c.tif").write_bytes(b"II*\x00" + b"\xff" * 100)
    with pytest.raises(SceneReadError, match=r"c\.tif: cannot read raster"):
        read_scene(tmp_path / "c.tif")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "B02.tif").write_bytes(b"garbage")
    with pytest.raises(SceneReadError, match=r"B02\.tif: cannot read raster"):
        read_scene(folder)


def test_non_finite_band(tmp_path):
    bands = {k: v.astype(np.float32) for k, v in _bands().items()}
    bands["B06"][0, 0] = np.nan
    _write_folder(tmp_path / "s", bands, dtype="float32")
    with pytest.raises(
        SceneError,
        match=r"s/T27WVM_20190610_B06\.tif: band B06 has non-finite values \(NaN or inf\) near row 0, column 0",
    ):
        read_scene(tmp_path / "s")
