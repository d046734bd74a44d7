"""Windowed band sources (``ssc_edge.io.sources``) and the scene identity, on real Sentinel-2 files.

The SAFE product is assembled from the real L2A metadata and the real L1C crop (``real_safe.py``):
its pixels carry the baseline-04.00 offset of +1000 DN, so reading it back must give the crop's own
values exactly (lossless JPEG 2000, offset and quantification undone).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import detect_format, read_scene
from ssc_edge.io.geotiff import band_of_file_name
from ssc_edge.io.sources import ArrayBandSource, BandSource, open_band_source, scene_identity
from ssc_edge.tiling import Tile

from .real_safe import CROP_PREFIX, build_real_safe, crop_band, crop_folder

pytest.importorskip("rasterio")


@pytest.fixture(scope="module")
def real_safe(shared_data, tmp_path_factory) -> Path:
    return build_real_safe(shared_data, tmp_path_factory.mktemp("safe"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_real_safe_reads_the_crops_values_window_by_window(real_safe, shared_data):
    with open_band_source(real_safe) as source:
        assert source.shape == (300, 300)
        assert source.bands == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
        assert source.name.startswith("S2A_MSIL2A_20221005T115411")
        assert source.georef.transform == (10.0, 0.0, 399960.0, 0.0, -10.0, 4693200.0)  # the crop's own grid
        for band in FINE_BANDS + COARSE_BANDS:
            expected = crop_band(shared_data, band).astype(np.float32)
            tile = Tile(7, 11, 40, 33)
            np.testing.assert_array_equal(source.read(band, tile), expected[tile.slices])
            np.testing.assert_array_equal(source.read_band(band), expected)
    whole = read_scene(real_safe)  # the in-memory reader agrees
    np.testing.assert_array_equal(whole.bands["B8A"], crop_band(shared_data, "B8A").astype(np.float32))


def test_real_jp2_band_folder_reads_as_a_scene(shared_data):
    folder = crop_folder(shared_data)
    assert detect_format(folder) == "band-folder"
    with open_band_source(folder) as source:
        assert source.shape == (300, 300)
        # TCI (3-band quicklook) and B10 (not used) are skipped; the 60 m bands are served on their grid
        assert source.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
        assert source.band_shape("B05") == (150, 150) and source.band_shape("B09") == (50, 50)
        np.testing.assert_array_equal(source.read("B12", Tile(100, 0, 50, 150)), crop_band(shared_data, "B12")[100:])
        scene = source.to_scene()
    in_memory = read_scene(folder)
    for band in FINE_BANDS + COARSE_BANDS:
        np.testing.assert_array_equal(scene.bands[band], in_memory.bands[band])
    assert in_memory.georef == scene.georef


def test_band_names_as_in_safe_granules():
    assert band_of_file_name(Path(f"{CROP_PREFIX}_B05.jp2")) == ("B05", None)
    assert band_of_file_name(Path("T29UNU_20221005T115411_B8A_20m.jp2")) == ("B8A", 20)
    assert band_of_file_name(Path("B2.tif")) == ("B02", None)
    assert band_of_file_name(Path(f"{CROP_PREFIX}_TCI.jp2")) is None
    assert band_of_file_name(Path(f"{CROP_PREFIX}_B10.jp2")) is None
    assert band_of_file_name(Path("T29UNU_20221005T115411_SCL_20m.jp2")) is None


def test_l2a_style_names_and_native_resolution_copies(shared_data, real_safe, tmp_path):
    """A folder of an L2A granule's R10m + R20m files: ``_B02_20m`` (a resampled copy) is skipped."""
    folder = tmp_path / "l2a"
    folder.mkdir()
    for file in (real_safe / "GRANULE").rglob("*.jp2"):
        shutil.copy(file, folder / file.name)
    shutil.copy(folder / "T29UNU_20221005T115411_B05_20m.jp2", folder / "T29UNU_20221005T115411_B02_20m.jp2")
    with open_band_source(folder) as source:
        assert source.bands == tuple(b for b in source.bands if b in FINE_BANDS + COARSE_BANDS)
        assert len(source.bands) == 10
        np.testing.assert_array_equal(source.read_band("B02"), crop_band(shared_data, "B02") + 1000.0)


def test_two_files_claiming_one_band_are_refused(shared_data, tmp_path):
    folder = tmp_path / "twice"
    shutil.copytree(crop_folder(shared_data), folder)
    shutil.copy(folder / f"{CROP_PREFIX}_B05.jp2", folder / "B05.tif")
    with pytest.raises(
        SceneReadError, match=r"twice: band B05 is in both B05\.tif and T31TDH_20150726T105026_B05\.jp2"
    ):
        open_band_source(folder)
    with pytest.raises(SceneReadError, match=r"band B05 is in both"):
        read_scene(folder)


def test_identity_of_files_folders_and_safe_products(real_safe, tmp_path):
    # a folder or SAFE: sha256 over "BAND <sha256 of its file>" lines, 10 m then 20 m bands
    files = {f.name.split("_")[2]: f for f in (real_safe / "GRANULE").rglob("*.jp2")}
    text = "".join(f"{band} {_sha(files[band])}\n" for band in FINE_BANDS + COARSE_BANDS)
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert scene_identity(real_safe) == expected
    assert scene_identity(real_safe / "MTD_MSIL2A.xml") == expected
    archive = tmp_path / f"{real_safe.stem}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(real_safe.rglob("*")):
            zf.write(file, file.relative_to(real_safe.parent).as_posix())
    assert scene_identity(archive) == expected  # the zip holds the same band files
    flat = tmp_path / "flat"
    flat.mkdir()
    for file in files.values():
        shutil.copy(file, flat / file.name)
    (flat / "notes.txt").write_text("not a band")
    assert scene_identity(flat) == expected  # metadata and other files do not count
    with open_band_source(flat) as source:
        assert source.identity == expected
    shutil.copy(files["B12"], flat / files["B11"].name)  # one band's content changes: so does the identity
    assert scene_identity(flat) != expected
    npz = tmp_path / "s.npz"
    np.savez(npz, B02=np.ones((2, 2)))
    assert scene_identity(npz) == _sha(npz)  # a single file: the sha256 of its bytes


def test_npz_and_mat_are_served_from_memory(shared_data, tmp_path):
    path = shared_data / "reykjavik_cell_RR.mat"
    with open_band_source(path) as source:
        assert isinstance(source, ArrayBandSource)
        scene = read_scene(path)
        assert source.shape == scene.shape and source.fine_pixel_size == 20.0
        tile = Tile(3, 5, 17, 19)
        np.testing.assert_array_equal(source.read("B11", tile), scene.bands["B11"][tile.slices])
        assert source.identity == _sha(path)
    assert not any(b in VERY_COARSE_BANDS for b in scene.bands)  # Reykjavik's all-zero 60 m placeholders dropped


def test_windows_outside_a_band_and_unknown_bands_are_refused(shared_data):
    with open_band_source(crop_folder(shared_data)) as source:
        with pytest.raises(SceneError, match=r"window .* lies outside band B05's 150x150 grid"):
            source.read("B05", Tile(140, 0, 20, 20))
        with pytest.raises(SceneError, match=r"has no band B10"):
            source.read("B10", Tile(0, 0, 1, 1))
        with pytest.raises(SceneError, match=r"the model needs band\(s\) B10, which the scene lacks"):
            source.require(["B02", "B10"])


def test_an_all_nodata_band_is_found(shared_data, tmp_path):
    from .real_safe import write_lossless_jp2

    real_safe = build_real_safe(shared_data, tmp_path)
    like = next((real_safe / "GRANULE").rglob("*_B02_10m.jp2"))
    write_lossless_jp2(like, np.zeros((300, 300), np.uint16), like)
    with open_band_source(real_safe) as source:
        with pytest.raises(SceneError, match=r"\.SAFE: band B02 is all no-data"):
            source.check_has_data(FINE_BANDS)
        source.check_has_data(COARSE_BANDS)
    source = BandSource.from_scene(read_scene(crop_folder(shared_data)))
    source.check_has_data(FINE_BANDS + COARSE_BANDS)
