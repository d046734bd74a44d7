"""Sentinel-2 SAFE products (L1C, L2A; folder and zip), built here as tiny synthetic products.

The band files are real JPEG 2000 files written losslessly with GDAL's JP2OpenJPEG driver, and
the metadata follows the layout of ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` (PSD 14.9, baseline 05.09).
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, GSD
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import read_scene
from ssc_edge.io.safe import is_safe_product, read_safe_product

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

SIZE = 16  # 10 m pixels
ORIGIN = (600000.0, 5100000.0)
TILE = "T32TQM"
DATE = "20230101T100409"
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
OFFSET = -1000
QUANT = 10000


def _band_dn(band: str) -> np.ndarray:
    """Distinct uint16 DN per band, with one nodata (0) pixel in the corner."""
    side = SIZE * 10 // GSD[band]
    rng = np.random.default_rng(sum(map(ord, band)))
    dn = rng.integers(1001, 5000, size=(side, side)).astype(np.uint16)
    dn[0, 0] = 0
    return dn


def _image_files(level: str, granule: str) -> dict[str, str]:
    """Band -> IMAGE_FILE entry (relative, no extension), as the metadata lists them."""
    files = {}
    for band in FINE_BANDS + COARSE_BANDS:
        if level == "L1C":
            files[band] = f"GRANULE/{granule}/IMG_DATA/{TILE}_{DATE}_{band}"
        else:
            res = GSD[band]
            files[band] = f"GRANULE/{granule}/IMG_DATA/R{res}m/{TILE}_{DATE}_{band}_{res}m"
    if level == "L2A":  # L2A also lists 20 m versions of the 10 m bands and 60 m versions: decoys
        files["B02_20"] = f"GRANULE/{granule}/IMG_DATA/R20m/{TILE}_{DATE}_B02_20m"
        files["B05_60"] = f"GRANULE/{granule}/IMG_DATA/R60m/{TILE}_{DATE}_B05_60m"
    return files


def _metadata(level: str, files: dict[str, str], *, quant: float = QUANT, offset: float = OFFSET) -> str:
    image_files = "\n".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in files.values())
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    offsets = "\n".join(f'<{offset_tag} band_id="{i}">{offset}</{offset_tag}>' for i in range(13))
    if level == "L1C":
        quantification = f'<QUANTIFICATION_VALUE unit="none">{quant}</QUANTIFICATION_VALUE>'
        offset_list = f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>"
        root = "Level-1C_User_Product"
    else:
        quantification = (
            f'<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">{quant}</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>'
        )
        offset_list = f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>"
        root = "Level-2A_User_Product"
    spectral = "\n".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}"/>' for i, b in enumerate(BAND_IDS)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{level}.xsd">
<n1:General_Info><Product_Info>
<PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>
<Product_Organisation><Granule_List><Granule granuleIdentifier="G1" imageFormat="JPEG2000">
{image_files}
</Granule></Granule_List></Product_Organisation>
</Product_Info>
<Product_Image_Characteristics>
<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
{quantification}
{offset_list}
<Spectral_Information_List>{spectral}</Spectral_Information_List>
</Product_Image_Characteristics>
</n1:General_Info>
</n1:{root}>
"""


def _write_jp2(path: Path, dn: np.ndarray, pixel: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="JP2OpenJPEG", width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16",
        crs="EPSG:32632", transform=from_origin(*ORIGIN, pixel, pixel), QUALITY=100, REVERSIBLE="YES",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(dn, 1)


def make_safe(folder: Path, level: str = "L1C", **metadata) -> Path:
    """Write a tiny single-granule SAFE product under ``folder`` and return the ``.SAFE`` path."""
    product = folder / f"S2A_MSI{level}_{DATE}_N0509_R122_{TILE}_{DATE}.SAFE"
    granule = f"{level}_{TILE}_A039406_{DATE}"
    files = _image_files(level, granule)
    for key, relative in files.items():
        band = key.split("_")[0]
        res = int(key.split("_")[1]) if "_" in key else GSD[band]
        dn = _band_dn(band) if res == GSD[band] else np.full((SIZE * 10 // res,) * 2, 9, np.uint16)
        _write_jp2(product / f"{relative}.jp2", dn, float(res))
    (product / f"MTD_MSI{level}.xml").write_text(_metadata(level, files, **metadata))
    return product


def zip_safe(product: Path) -> Path:
    archive = product.parent / f"{product.stem}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(product.rglob("*")):
            zf.write(file, file.relative_to(product.parent).as_posix())
    return archive


def _expected(band: str, *, offset: float = OFFSET, quant: float = QUANT) -> np.ndarray:
    dn = _band_dn(band).astype(np.float64)
    expected = (dn + offset) / quant * 10000
    expected[dn == 0] = 0
    return expected


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_folder_values_after_offset_and_georef(tmp_path, level, caplog):
    product = make_safe(tmp_path, level)
    with caplog.at_level(logging.WARNING, logger="ssc_edge.io.safe"):
        scene = read_scene(product)
    assert scene.shape == (SIZE, SIZE)
    for band in FINE_BANDS + COARSE_BANDS:
        assert scene.bands[band].dtype == np.float32
        np.testing.assert_allclose(scene.bands[band], _expected(band), atol=1e-3)
    assert scene.bands["B02"][0, 0] == 0  # nodata -> 0, not -1000
    # 1 of 256 (10 m), 1 of 64 (20 m)
    assert "nodata pixels (read as 0 DN, left no-data in the product) in B02 0.39%, B03 0.39%" in caplog.text
    assert "B05 1.56%" in caplog.text
    assert scene.georef.transform == (10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    assert "32632" in scene.georef.crs or "UTM zone 32N" in scene.georef.crs
    assert scene.name == product.stem
    assert scene.source == product


def test_product_metadata(tmp_path):
    product = read_safe_product(make_safe(tmp_path, "L2A"))
    assert (product.level, product.baseline, product.quantification, product.nodata) == ("L2A", "05.09", 10000, 0)
    assert product.offsets["B8A"] == -1000
    assert product.band_files["B05"].endswith("R20m/T32TQM_20230101T100409_B05_20m.jp2")
    assert product.band_files["B02"].endswith("R10m/T32TQM_20230101T100409_B02_10m.jp2")


def test_zip_equals_folder(tmp_path):
    product = make_safe(tmp_path, "L2A")
    from_folder = read_scene(product)
    archive = zip_safe(product)
    shutil.rmtree(product)
    assert is_safe_product(archive)
    from_zip = read_scene(archive)
    assert from_zip.name == from_folder.name
    assert from_zip.georef == from_folder.georef
    for band in FINE_BANDS + COARSE_BANDS:
        np.testing.assert_array_equal(from_zip.bands[band], from_folder.bands[band])


def test_metadata_xml_path_and_other_quantification(tmp_path):
    product = make_safe(tmp_path, "L1C", quant=2000, offset=0)
    scene = read_scene(product / "MTD_MSIL1C.xml")
    np.testing.assert_allclose(scene.bands["B11"], _expected("B11", offset=0, quant=2000), atol=1e-3)


def test_is_safe_product(tmp_path):
    product = make_safe(tmp_path, "L1C")
    assert is_safe_product(product)
    assert not is_safe_product(tmp_path)
    assert not is_safe_product(tmp_path / "missing.zip")


def test_not_a_safe_product(tmp_path):
    empty = tmp_path / "empty.SAFE"
    empty.mkdir()
    with pytest.raises(SceneReadError, match=r"empty\.SAFE: not a Sentinel-2 SAFE product \(no MTD_MSIL1C"):
        read_safe_product(empty)
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(SceneReadError, match=r"plain\.zip: not a Sentinel-2 SAFE product \(no MTD_MSIL1C\.xml"):
        read_safe_product(plain)
    text = tmp_path / "text.zip"
    text.write_text("not a zip")
    with pytest.raises(SceneReadError, match=r"text\.zip: not a Sentinel-2 SAFE product"):
        read_safe_product(text)
    with pytest.raises(SceneReadError, match=r"nothing\.SAFE: no such file or folder"):
        read_scene(tmp_path / "nothing.SAFE")  # the one door checks that the path exists


def test_metadata_errors(tmp_path):
    product = make_safe(tmp_path, "L1C")
    xml = product / "MTD_MSIL1C.xml"
    text = xml.read_text()
    xml.write_text(text.replace('<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>', ""))
    with pytest.raises(SceneReadError, match=r"\.SAFE: product metadata has no QUANTIFICATION_VALUE"):
        read_scene(product)
    xml.write_text(text[:200])
    with pytest.raises(SceneReadError, match=r"\.SAFE: product metadata is not valid XML"):
        read_scene(product)
    xml.write_text(text.replace("_B12</IMAGE_FILE>", "_XX</IMAGE_FILE>"))
    with pytest.raises(SceneReadError, match=r"\.SAFE: product metadata lists no file for band\(s\) B12"):
        read_scene(product)


def test_an_l1c_product_listing_b10_and_the_true_colour_image_reads_its_bands(tmp_path):
    """A real L1C's metadata lists every band file, B10 (cirrus, which ssc-edge never uses) and TCI included: those
    are passed over, the bands used are read as without them."""
    product = make_safe(tmp_path, "L1C")
    xml = product / "MTD_MSIL1C.xml"
    text = xml.read_text()
    b12 = next(line for line in text.splitlines() if line.endswith("_B12</IMAGE_FILE>"))
    extra = "\n".join(b12.replace("_B12<", f"_{name}<") for name in ("B10", "TCI"))
    xml.write_text(text.replace(b12, f"{extra}\n{b12}"))
    scene = read_scene(product)
    assert set(scene.bands) == set(FINE_BANDS + COARSE_BANDS)
    np.testing.assert_allclose(scene.bands["B12"], _expected("B12"), rtol=1e-6)


def test_band_file_missing(tmp_path):
    product = make_safe(tmp_path, "L2A")
    (next(product.rglob("*_B8A_20m.jp2"))).unlink()
    with pytest.raises(SceneReadError, match=r"\.SAFE: band B8A file .*_B8A_20m\.jp2 is missing"):
        read_scene(product)
    archive = zip_safe(make_safe(tmp_path / "z", "L1C"))
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if not m.endswith("_B04.jp2")]
        data = {m: zf.read(m) for m in members}
    with zipfile.ZipFile(archive, "w") as zf:
        for member, content in data.items():
            zf.writestr(member, content)
    with pytest.raises(SceneReadError, match=r"\.zip: band B04 file /vsizip/.*_B04\.jp2 is missing"):
        read_scene(archive)


def test_corrupt_band_file(tmp_path):
    product = make_safe(tmp_path, "L1C")
    next(product.rglob("*_B06.jp2")).write_bytes(b"garbage")
    with pytest.raises(SceneReadError, match=r"\.SAFE/.*_B06\.jp2: cannot read raster"):
        read_scene(product)


def test_all_nodata_band_is_rejected(tmp_path):
    product = make_safe(tmp_path, "L1C")
    _write_jp2(next(product.rglob("*_B07.jp2")), np.zeros((SIZE // 2, SIZE // 2), np.uint16), 20.0)
    with pytest.raises(SceneError, match=r"\.SAFE: band B07 is all zeros"):
        read_scene(product)


def test_misaligned_20m_band(tmp_path):
    product = make_safe(tmp_path, "L1C")
    path = next(product.rglob("*_B05.jp2"))
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=SIZE // 2, height=SIZE // 2, count=1, dtype="uint16",
                       crs="EPSG:32632", transform=from_origin(ORIGIN[0] + 10, ORIGIN[1], 20, 20),
                       QUALITY=100, REVERSIBLE="YES") as dataset:  # fmt: skip
        dataset.write(_band_dn("B05"), 1)
    with pytest.raises(
        SceneError, match=r"_B05\.jp2: band B05 grid .* is not aligned with the 10 m grid .*: its extent"
    ):
        read_scene(product)


def test_product_before_baseline_4_has_no_offset(tmp_path):
    product = make_safe(tmp_path, "L1C")
    xml = product / "MTD_MSIL1C.xml"
    text = xml.read_text()
    start, end = text.index("<Radiometric_Offset_List>"), text.index("</Radiometric_Offset_List>")
    xml.write_text(text[:start] + text[end + len("</Radiometric_Offset_List>") :])
    assert read_safe_product(product).offsets["B02"] == 0
    np.testing.assert_allclose(read_scene(product).bands["B02"], _expected("B02", offset=0), atol=1e-3)


def test_read_scene_and_detect_format_dispatch_to_the_safe_reader(tmp_path):
    from ssc_edge.io import detect_format

    product = make_safe(tmp_path)
    archive = zip_safe(product)
    assert detect_format(product) == "safe"
    assert detect_format(archive) == "safe"  # a zip, yet not taken for an .npz
    scene = read_scene(archive)
    np.testing.assert_array_equal(scene.bands["B05"], read_scene(product).bands["B05"])
