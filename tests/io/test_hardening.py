"""Hostile or damaged inputs: declared sizes over the limit, paths out of a SAFE product, damaged zips.

Every case is a real file built here (a zip whose ``.npy`` header declares 80 GB, an HDF5 file with a
10^10-element dataset and no data, a SAFE zip holding a deflate bomb...) and must give one error line naming
the file, before anything large is read.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.errors import SceneReadError
from ssc_edge.io import detect_format, limits, read_scene
from ssc_edge.io.safe import read_safe_product

from .real_safe import GRANULE, L2A_PREFIX, build_real_safe

HUGE = (100_000, 100_000)  # float64: 80 GB declared


def _npy_bytes(shape, descr="<f8", payload=b"") -> bytes:
    """An .npy file's bytes: a real header declaring ``shape``, then ``payload`` (not the array it declares)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return np.lib.format.magic(1, 0) + buffer.getvalue()[len(np.lib.format.magic(1, 0)) :] + payload


def _npz_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_npz_header_declaring_80_gb_is_refused_before_reading(tmp_path):
    small = io.BytesIO()
    np.save(small, np.ones((4, 4), np.float32))
    path = _npz_with(tmp_path / "bomb.npz", {"B02.npy": _npy_bytes(HUGE), "B03.npy": small.getvalue()})
    message = r"bomb\.npz: array 'B02': declares a 100000x100000 float64 array of 80 GB"
    with pytest.raises(SceneReadError, match=message):
        read_scene(path)


def test_npz_below_the_limit_still_reads(tmp_path):
    np.savez_compressed(tmp_path / "ok.npz", B02=np.zeros((2000, 2000), np.float64))  # 32 MB of zeros: 1000:1
    from ssc_edge.io.npz import read_npz_arrays

    assert read_npz_arrays(tmp_path / "ok.npz")["B02"].shape == (2000, 2000)


def test_npz_limit_counts_the_dtype(tmp_path, monkeypatch):
    """The same shape is accepted as uint8 and refused as float64 when the limit lies between them."""
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 1000 * 1000 * 4)
    np.savez(tmp_path / "u8.npz", B02=np.zeros((1000, 1000), np.uint8))
    np.savez(tmp_path / "f8.npz", B02=np.zeros((1000, 1000), np.float64))
    from ssc_edge.io.npz import read_npz_arrays

    assert read_npz_arrays(tmp_path / "u8.npz")["B02"].dtype == np.uint8
    with pytest.raises(SceneReadError, match=r"f8\.npz: array 'B02': declares a 1000x1000 float64 array of 0\.008 GB"):
        read_npz_arrays(tmp_path / "f8.npz")


def test_hdf5_mat_with_a_huge_declared_dataset_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.mat"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("im10", shape=(4, *HUGE), dtype="f8", chunks=(1, 100, 100))  # no chunk written
        h5.create_dataset("im20", data=np.zeros((6, 2, 2)))
    assert path.stat().st_size < 100_000 and detect_format(path) == "mat"
    with pytest.raises(SceneReadError, match=r"huge\.mat: dataset im10: declares a 4x100000x100000 float64 array"):
        read_scene(path)


def test_v5_mat_variable_inflating_past_the_limit_is_refused(tmp_path, monkeypatch):
    """A real compressed v5 file (scipy.io.savemat) whose variable inflates past the limit: counted, not held."""
    from scipy import io as sio

    path = tmp_path / "zeros.mat"
    sio.savemat(path, {"Yim": np.zeros((3000, 3000))}, do_compression=True)  # 72 MB inflated, ~70 kB on disk
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 50_000_000)
    message = r"zeros\.mat: variable at byte 128: holds more than 0\.05 GB once inflated"
    with pytest.raises(SceneReadError, match=message):
        read_scene(path)
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 80_000_000)
    from ssc_edge.io.mat import read_mat_arrays

    assert read_mat_arrays(path)["Yim"].shape == (3000, 3000)


@pytest.fixture()
def real_safe(shared_data, tmp_path) -> Path:
    return build_real_safe(shared_data, tmp_path)


def _zip_product(product: Path, archive: Path, *, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(product.rglob("*")):
            relative = f"{product.name}/{file.relative_to(product)}"
            if extra and relative in extra:
                continue
            zf.write(file, relative)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


@pytest.mark.real_data
def test_safe_zip_band_member_that_is_a_deflate_bomb_is_refused(real_safe, tmp_path):
    member = f"{real_safe.name}/GRANULE/{GRANULE}/IMG_DATA/R10m/{L2A_PREFIX}_B03_10m.jp2"
    archive = _zip_product(real_safe, tmp_path / f"{real_safe.name}.zip", extra={member: bytes(200_000_000)})
    assert archive.stat().st_size < 2_000_000
    with pytest.raises(SceneReadError, match=rf"\.SAFE\.zip: member {re.escape(member)} would decompress \d+ times"):
        read_scene(archive)


@pytest.mark.real_data
def test_safe_zip_metadata_member_over_its_limit_is_refused(real_safe, tmp_path):
    member = f"{real_safe.name}/MTD_MSIL2A.xml"
    huge_xml = (real_safe / "MTD_MSIL2A.xml").read_bytes() + b" " * (65 * 1024 * 1024)
    archive = _zip_product(real_safe, tmp_path / "product.zip", extra={member: huge_xml})
    with pytest.raises(SceneReadError, match=rf"product\.zip: member {re.escape(member)} declares 0\.0\d+ GB"):
        read_safe_product(archive)


@pytest.mark.real_data
@pytest.mark.parametrize(
    "replacement",
    ["../../outside/T29UNU_B02_10m", "GRANULE/../../outside/T29UNU_B02_10m", "/etc/T29UNU_B02_10m"],
    ids=["dotdot", "inner-dotdot", "absolute"],
)
def test_safe_image_file_outside_the_product_is_refused(real_safe, tmp_path, replacement):
    xml = real_safe / "MTD_MSIL2A.xml"
    entry = f"GRANULE/{GRANULE}/IMG_DATA/R10m/{L2A_PREFIX}_B02_10m"
    text = xml.read_text()
    assert entry in text
    xml.write_text(text.replace(entry, replacement))
    message = rf"\.SAFE: product metadata IMAGE_FILE '{re.escape(replacement)}' points outside the product; refused"
    with pytest.raises(SceneReadError, match=message):
        read_scene(real_safe)
    with pytest.raises(SceneReadError, match=message.replace(r"\.SAFE:", r"\.SAFE\.zip:")):
        read_scene(_zip_product(real_safe, tmp_path / f"{real_safe.name}.zip"))


@pytest.mark.real_data
def test_safe_image_file_with_harmless_dots_still_reads(real_safe):
    """``GRANULE/G/./IMG_DATA/../IMG_DATA/...`` stays inside the product: normalised, not refused."""
    xml = real_safe / "MTD_MSIL2A.xml"
    entry = f"GRANULE/{GRANULE}/IMG_DATA/R10m/{L2A_PREFIX}_B02_10m"
    detour = f"GRANULE/{GRANULE}/./IMG_DATA/../IMG_DATA/R10m/{L2A_PREFIX}_B02_10m"
    xml.write_text(xml.read_text().replace(entry, detour))
    assert read_safe_product(real_safe).band_files["B02"] == f"{real_safe}/{entry}.jp2"


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.zip", "product.zip"])
def test_truncated_safe_zip_is_reported_as_a_damaged_safe_zip(real_safe, tmp_path, name):
    """Cut in half (no central directory): named as a SAFE, or its first member in a .SAFE folder."""
    whole = _zip_product(real_safe, tmp_path / "whole.zip").read_bytes()
    cut = tmp_path / name
    cut.write_bytes(whole[: len(whole) // 2])
    assert detect_format(cut) == "safe"
    with pytest.raises(SceneReadError, match=rf"{re.escape(name)}: damaged SAFE zip \(File is not a zip file\)"):
        read_scene(cut)


def test_truncated_npz_is_still_an_npz(tmp_path):
    np.savez(tmp_path / "whole.npz", B02=np.ones((64, 64)))
    cut = tmp_path / "cut.npz"
    cut.write_bytes((tmp_path / "whole.npz").read_bytes()[:300])
    with pytest.raises(SceneReadError, match=r"cut\.npz: cannot read \.npz file \(BadZipFile"):
        read_scene(cut)


@pytest.mark.real_data
def test_cli_reports_a_bomb_and_a_damaged_safe_zip_in_one_line(run_cli, real_safe, tmp_path):
    bomb = _npz_with(tmp_path / "bomb.npz", {"B02.npy": _npy_bytes(HUGE)})
    whole = _zip_product(real_safe, tmp_path / "whole.zip").read_bytes()
    cut = tmp_path / f"{real_safe.name}.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    out.mkdir()
    for scene, message in ((bomb, "array 'B02': declares a 100000x100000 float64 array"), (cut, "damaged SAFE zip")):
        result = run_cli("infer", scene, "-o", out / "x.tif", "--provider", "cpu")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ssc-edge: error: {scene}: ") and message in lines[0]
    assert list(out.iterdir()) == []


@pytest.mark.real_data
def test_cli_reports_a_corrupt_band_member_of_a_safe_zip_in_one_line(run_cli, real_safe, tmp_path):
    """200 bytes of B03's deflate stream flipped: GDAL's own error lines stay quiet, the error is one line."""
    archive = _zip_product(real_safe, tmp_path / f"{real_safe.name}.zip")
    with zipfile.ZipFile(archive) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("_B03_10m.jp2"))
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    data[start : start + 200] = bytes(b ^ 0x5A for b in data[start : start + 200])
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    model = Path(__file__).resolve().parents[2] / "models" / "demo.onnx"
    result = run_cli("infer", model, archive, "-o", out / "x.tif", "--provider", "cpu")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ssc-edge: error: {archive}: cannot read ") and "_B03_10m.jp2" in lines[0]
    assert list(out.iterdir()) == []


def test_geotiff_band_declaring_a_grid_over_the_limit_is_refused_before_reading(tmp_path):
    """A 100000 x 100000 float32 band (40 GB declared, a few kB on disk: no tile written) in a band folder."""
    rasterio = pytest.importorskip("rasterio")
    from ssc_edge.io.sources import RasterBandSource

    folder = tmp_path / "folder"
    folder.mkdir()
    profile = dict(driver="GTiff", count=1, dtype="float32", tiled=True, blockxsize=512, blockysize=512)
    with rasterio.open(folder / "B02.tif", "w", width=100_000, height=100_000, SPARSE_OK=True, **profile):
        pass
    assert (folder / "B02.tif").stat().st_size < 1_000_000
    with pytest.raises(SceneReadError, match=r"B02\.tif: band B02: declares a 100000x100000 float32 array of 40 GB"):
        RasterBandSource.folder(folder)
