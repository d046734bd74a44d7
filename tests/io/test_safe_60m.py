"""The 60 m bands (B01, B09) of a real SAFE product, from ``IMG_DATA/R60m``: read, streamed, fitted, sharpened.

The product is assembled from the real L2A metadata and the real L1C crop (``tests/io/real_safe.py``), here
with the crop's B01 and B09 written at the ``R60m`` paths ``MTD_MSIL2A.xml`` names.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.errors import SceneError
from ssc_edge.io import read_scene
from ssc_edge.io.safe import read_safe_product
from ssc_edge.io.sources import open_band_source, scene_identity
from ssc_edge.tiling import Tile

from .real_safe import GRANULE, L2A_PREFIX, build_real_safe, crop_band, write_lossless_jp2

pytest.importorskip("rasterio")
pytestmark = pytest.mark.real_data


def _zip(product: Path) -> Path:
    archive = product.parent / f"{product.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(product.rglob("*")):
            zf.write(file, f"{product.name}/{file.relative_to(product)}")
    return archive


@pytest.fixture(scope="module")
def safe_12(shared_data, tmp_path_factory) -> Path:
    """The real L2A product with all 12 band files (B01 and B09 at R60m)."""
    return build_real_safe(shared_data, tmp_path_factory.mktemp("safe12"), bands=ALL_BANDS)


@pytest.fixture(scope="module")
def safe_12_zip(safe_12) -> Path:
    return _zip(safe_12)


def test_product_lists_the_60m_files_from_R60m(safe_12):
    product = read_safe_product(safe_12)
    assert tuple(product.band_files) == FINE_BANDS + COARSE_BANDS + VERY_COARSE_BANDS
    assert product.band_files["B01"].endswith(f"IMG_DATA/R60m/{L2A_PREFIX}_B01_60m.jp2")
    assert product.band_files["B09"].endswith(f"IMG_DATA/R60m/{L2A_PREFIX}_B09_60m.jp2")


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_read_gives_the_crop_60m_bands(shared_data, safe_12, safe_12_zip, as_zip):
    scene = read_scene(safe_12_zip if as_zip else safe_12)
    assert sorted(scene.bands) == sorted(ALL_BANDS)
    for band in (*VERY_COARSE_BANDS, "B02", "B05"):
        # stored DN + 1000 with BOA_ADD_OFFSET -1000: the crop's own values, exactly
        np.testing.assert_array_equal(scene.bands[band], crop_band(shared_data, band).astype(np.float32))
    assert scene.bands["B01"].shape == (50, 50) and scene.shape == (300, 300)


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_band_source_serves_the_60m_bands_by_window(shared_data, safe_12, safe_12_zip, as_zip):
    with open_band_source(safe_12_zip if as_zip else safe_12) as source:
        assert source.bands == ALL_BANDS
        assert source.band_shape("B09") == (50, 50)
        window = source.read("B09", Tile(10, 20, 15, 12))
        np.testing.assert_array_equal(window, crop_band(shared_data, "B09")[10:25, 20:32].astype(np.float32))
        whole = source.to_scene()
    assert set(VERY_COARSE_BANDS) <= set(whole.bands)


def test_identity_is_unchanged_by_the_60m_files(shared_data, safe_12, tmp_path):
    """The documented identity hashes the 10 m and 20 m band files only: adding R60m files keeps it."""
    without = build_real_safe(shared_data, tmp_path)
    assert scene_identity(safe_12) == scene_identity(without)


def test_missing_60m_files_give_the_10_band_scene(shared_data, tmp_path):
    """The metadata lists R60m files the product lacks: read without them, as before (20 m models need none)."""
    scene = read_scene(build_real_safe(shared_data, tmp_path))
    assert sorted(scene.bands) == sorted(FINE_BANDS + COARSE_BANDS)


def test_all_nodata_60m_band_is_left_out(shared_data, tmp_path):
    product = build_real_safe(shared_data, tmp_path, bands=ALL_BANDS)
    b09 = product / "GRANULE" / GRANULE / "IMG_DATA" / "R60m" / f"{L2A_PREFIX}_B09_60m.jp2"
    like = shared_data / "real" / "l1c_T31TDH_20150726_crop" / "T31TDH_20150726T105026_B09.jp2"
    write_lossless_jp2(b09, np.zeros((50, 50), np.uint16), like)  # NODATA everywhere
    assert "B09" not in read_scene(product).bands and "B01" in read_scene(product).bands


def test_60m_band_of_the_wrong_size_is_refused(shared_data, tmp_path):
    product = build_real_safe(shared_data, tmp_path, bands=ALL_BANDS)
    b01 = product / "GRANULE" / GRANULE / "IMG_DATA" / "R60m" / f"{L2A_PREFIX}_B01_60m.jp2"
    like = shared_data / "real" / "l1c_T31TDH_20150726_crop" / "T31TDH_20150726T105026_B01.jp2"
    write_lossless_jp2(b01, np.full((40, 40), 2000, np.uint16), like)
    message = r"_B01_60m\.jp2: 60 m band B01 is 40x40, not a sixth of the 10 m size 300x300"
    with pytest.raises(SceneError, match=message):
        read_scene(product)
    with pytest.raises(SceneError, match=message):
        open_band_source(product)


def test_60m_band_off_the_10m_grid_is_refused(shared_data, tmp_path):
    """B09 written one 60 m pixel east of the 10 m grid's corner: refused whole and by window."""
    import rasterio
    from rasterio.transform import Affine

    product = build_real_safe(shared_data, tmp_path, bands=ALL_BANDS)
    b09 = product / "GRANULE" / GRANULE / "IMG_DATA" / "R60m" / f"{L2A_PREFIX}_B09_60m.jp2"
    with rasterio.open(b09) as dataset:
        dn, transform, crs = dataset.read(1), dataset.transform, dataset.crs
    b09.unlink()
    profile = dict(driver="JP2OpenJPEG", width=50, height=50, count=1, dtype="uint16", crs=crs,
                   transform=Affine.translation(60, 0) * transform, QUALITY=100, REVERSIBLE="YES")  # fmt: skip
    with rasterio.open(b09, "w", **profile) as dataset:
        dataset.write(dn, 1)
    message = r"_B09_60m\.jp2: band B09 grid .* is not aligned with the 10 m grid .*: its extent differs by 60 CRS"
    with pytest.raises(SceneError, match=message):
        read_scene(product)
    with pytest.raises(SceneError, match=message):
        open_band_source(product)


@pytest.mark.slow
def test_fit_all_and_infer_the_12_band_product_from_a_safe_folder_and_its_zip(run_cli, safe_12, safe_12_zip, tmp_path):
    """``fit-and-export SAFE --bands all`` fits both models; ``infer --model-60m --with-fine`` on the folder and on
    its zip writes the same 12-band GeoTIFF, whose 10 m bands are the product's own."""
    pytest.importorskip("tensorflow")
    import rasterio

    model = tmp_path / "m.onnx"
    tiny = ("--epochs", "2", "--width", "8", "--skip-width", "4", "--stage-iterations", "0", "--no-keras", "--quiet")
    result = run_cli("fit-and-export", safe_12, "-o", model, *tiny, "--bands", "all")
    assert result.returncode == 0, result.stderr
    assert "no usable 60 m bands" not in result.stderr and "wrote" in result.stdout and "B01 B09" in result.stdout
    sixty = tmp_path / "m_60m.onnx"
    assert sixty.is_file()
    products = []
    for scene in (safe_12, safe_12_zip):
        out = tmp_path / f"{scene.name}.tif"
        args = ("infer", model, scene, "--model-60m", sixty, "--with-fine", "-o", out, "--provider", "cpu")
        result = run_cli(*args, "--tile", "60", "--quiet")
        assert result.returncode == 0, result.stderr
        assert f"300x300 px, {' '.join(ALL_BANDS)}, float32" in result.stdout
        with rasterio.open(out) as dataset:
            assert dataset.descriptions == ALL_BANDS
            products.append(dataset.read())
    np.testing.assert_array_equal(products[0], products[1])
    b02 = read_scene(safe_12).bands["B02"]
    np.testing.assert_array_equal(products[0][ALL_BANDS.index("B02")], b02)
    assert np.all(np.isfinite(products[0])) and products[0][ALL_BANDS.index("B01")].std() > 0
    shutil.rmtree(tmp_path)
