"""One door in: every check :func:`ssc_edge.io.sources.open_band_source` makes when a scene is opened.

Each case is a real file built here, most of them tiny files that declare huge contents (sparse HDF5 datasets, sparse
GeoTIFFs, ``.npy`` headers without their data, a sparse metadata XML), and each must be refused with one line
naming the file, before anything large is allocated: sizes summed over the whole file, georeferencing (one CRS,
finite north-up pixels, extents equal within half a pixel), regular files only. Accepted layouts (an L2A
``IMG_DATA`` folder, members no band uses) must read.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import limits, read_scene
from ssc_edge.io.geotiff import write_geotiff
from ssc_edge.io.sources import open_band_source
from ssc_edge.scene import GeoReference

from .real_safe import GRANULE, L2A_PREFIX, OFFSET_DN, build_real_safe, crop_band

rasterio = pytest.importorskip("rasterio")
h5py = pytest.importorskip("h5py")

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 4693200.0), "EPSG:32629")
SIZE = 16


def _npy(shape, descr="<f4", payload=b"") -> bytes:
    """An .npy file's bytes: a real header declaring ``shape``, then ``payload`` (not the array it declares)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def _npy_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _bands(size: int = SIZE) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {b: rng.uniform(100, 3000, (size, size)).astype(np.float32) for b in FINE_BANDS}
    out |= {b: rng.uniform(100, 3000, (size // 2, size // 2)).astype(np.float32) for b in COARSE_BANDS}
    return out


def _folder(path: Path, grids: dict[str, GeoReference | None] | None = None) -> Path:
    """A GeoTIFF band folder on GEOREF's grid; ``grids`` replaces some bands' georeferencing."""
    path.mkdir()
    for band, values in _bands().items():
        georef = GEOREF if band in FINE_BANDS else GEOREF.scaled(2)
        if grids and band in grids:
            georef = grids[band]
        write_geotiff(path / f"{band}.tif", values[..., None], band_names=(band,), georef=georef)
    return path


# -- the bytes a whole file can make us allocate ------------------------------------------------------------------


def test_hdf5_mat_whose_datasets_each_fit_but_not_together_is_refused(tmp_path, monkeypatch):
    """Two sparse datasets of 64 MB each against a 100 MB limit: the file's total, not each array, is checked."""
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 100_000_000)
    path = tmp_path / "two.mat"
    with h5py.File(path, "w") as h5:  # MATLAB's (bands, W, H); nothing written: a few kB on disk
        h5.create_dataset("im10", shape=(4, 2000, 2000), dtype="f4", chunks=(1, 100, 100))
        h5.create_dataset("im20", shape=(6, 1000, 1000), dtype="f8", chunks=(1, 100, 100))
    assert path.stat().st_size < 100_000
    message = r"two\.mat: dataset im20 brings what the file declares to 0\.136 GB, more than the 0\.1 GB"
    with pytest.raises(SceneReadError, match=message):
        read_scene(path)


def test_mat_cell_of_3000_references_to_one_dataset_counts_each_reference(tmp_path):
    """MATLAB's ``Yim`` cell pointing 3000 times at one sparse 32 MB dataset: 96 GB if each were read."""
    path = tmp_path / "cells.mat"
    with h5py.File(path, "w") as h5:
        target = h5.create_dataset("#refs#/a", shape=(2000, 2000), dtype="f8", chunks=(100, 100))
        cells = h5.create_dataset("Yim", shape=(3000, 1), dtype=h5py.ref_dtype)
        cells[:, 0] = [target.ref] * 3000
        cells.attrs["MATLAB_class"] = np.bytes_("cell")
    assert path.stat().st_size < 200_000
    message = r"cells\.mat: dataset Yim\{\d+\} brings what the file declares to [\d.]+ GB, more than the [\d.]+ GB"
    with pytest.raises(SceneReadError, match=message):
        read_scene(path)


def test_npz_member_named_without_npy_is_checked_as_an_array(tmp_path):
    path = _npz(tmp_path / "plain.npz", {"B02": _npy((100_000, 100_000), "<f8"), "B03.npy": _npy_of(np.ones(4))})
    with pytest.raises(SceneReadError, match=r"plain\.npz: array 'B02': declares a 100000x100000 float64 array"):
        read_scene(path)


def test_npz_member_that_no_band_uses_is_never_read(tmp_path):
    """A member declaring 80 GB with a corrupt body: the scene reads, because nothing decompresses it."""
    members = {f"{band}.npy": _npy_of(values) for band, values in _bands().items()}
    members["junk.npy"] = _npy((100_000, 100_000), "<f8", payload=b"not the data")
    scene = read_scene(_npz(tmp_path / "extra.npz", members))
    assert set(scene.bands) == set(FINE_BANDS + COARSE_BANDS) and scene.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(scene.bands["B05"], _bands()["B05"])


def test_npz_member_under_the_limit_but_over_the_memory_is_refused(tmp_path, monkeypatch):
    """A 3.6 GB member under the 5.79 GB limit on a machine with 2 GB to give: refused, not a MemoryError."""
    monkeypatch.setattr(limits, "available_memory", lambda: 2_000_000_000)
    path = _npz(tmp_path / "big.npz", {"B02.npy": _npy((30_000, 30_000), "<f4")})
    message = r"big\.npz: array 'B02' brings what the file declares to 3\.6 GB, more than the 2 GB of memory available"
    with pytest.raises(SceneReadError, match=message):
        read_scene(path)


def test_cli_caps_what_a_file_declares_at_the_address_space_limit(run_cli, tmp_path):
    """The same 3.6 GB member under ``ulimit -v`` of 3 GB, the real command: one line, exit 2, no traceback."""
    import resource

    path = _npz(tmp_path / "big.npz", {"B02.npy": _npy((30_000, 30_000), "<f4")})
    limit = 3 * 1024**3

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    exe = Path(sys.executable).parent / "ssc-edge"
    done = subprocess.run([exe, "info", "--no-registration", path], capture_output=True, text=True, preexec_fn=cap,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "big.npz: array 'B02' brings what the file declares to 3.6 GB" in done.stderr
    assert "of memory available; refused before reading" in done.stderr


def test_sparse_60000_px_band_folder_read_whole_is_refused_before_reading(tmp_path):
    """Sparse GeoTIFFs (a few kB) declaring 60000^2 uint8 10 m bands: each under the limit, 21 GB together."""
    folder = tmp_path / "huge"
    folder.mkdir()
    for band in FINE_BANDS + COARSE_BANDS:
        side = 60_000 if band in FINE_BANDS else 30_000
        georef = GEOREF if band in FINE_BANDS else GEOREF.scaled(2)
        profile = dict(driver="GTiff", width=side, height=side, count=1, dtype="uint8", tiled=True, SPARSE_OK=True,
                       crs=georef.crs, transform=rasterio.Affine(*georef.transform))  # fmt: skip
        with rasterio.open(folder / f"{band}.tif", "w", **profile):
            pass
    assert sum(f.stat().st_size for f in folder.iterdir()) < 50_000_000
    with open_band_source(folder) as source:  # streaming reads a window at a time: opened
        assert source.shape == (60_000, 60_000)
    message = r"huge: band B0[2-8] brings what the file declares to [\d.]+ GB, more than the"
    with pytest.raises(SceneReadError, match=message):
        read_scene(folder)  # what infer does for an .npz or .mat output


@pytest.mark.real_data
def test_sparse_3_gb_metadata_xml_is_refused_before_reading(run_cli, shared_data, tmp_path):
    product = build_real_safe(shared_data, tmp_path, bands=())
    with open(product / "MTD_MSIL2A.xml", "r+b") as f:
        f.truncate(3 * 10**9)  # sparse: no block written
    done = run_cli("info", product, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{product}: MTD_MSIL2A.xml is 3e+03 MB, more than the 67.1 MB a product's metadata can take" in done.stderr


# -- georeferencing -----------------------------------------------------------------------------------------------


def test_20m_band_in_another_crs_is_refused(tmp_path):
    other = GeoReference(GEOREF.scaled(2).transform, "EPSG:32630")
    folder = _folder(tmp_path / "s", {"B11": other})
    with pytest.raises(SceneError, match=r"s/B11\.tif: band B11 is in another CRS than B02"):
        open_band_source(folder)
    with pytest.raises(SceneError, match=r"s/B11\.tif: band B11 is in another CRS than B02"):
        read_scene(folder)


def test_20m_band_without_a_crs_is_refused(tmp_path):
    folder = _folder(tmp_path / "s", {"B06": None})
    with pytest.raises(SceneError, match=r"s/B06\.tif: band B06 has no CRS while B02 has one"):
        read_scene(folder)


@pytest.mark.parametrize("shift_m", [5_000.0, 100_000.0])
def test_20m_band_away_from_the_10m_grid_is_refused_by_both_readers(tmp_path, shift_m):
    a, b, c, d, e, f = GEOREF.scaled(2).transform
    folder = _folder(tmp_path / "s", {"B8A": GeoReference((a, b, c + shift_m, d, e, f), GEOREF.crs)})
    message = rf"s/B8A\.tif: band B8A grid .* is not aligned with the 10 m grid .*: its extent differs by {shift_m:g}"
    with pytest.raises(SceneError, match=message):
        open_band_source(folder)  # the streamed path (a .tif output)
    with pytest.raises(SceneError, match=message):
        read_scene(folder)  # the in-memory path (an .npz or .mat output)


def test_20m_band_within_half_a_pixel_is_accepted(tmp_path):
    a, b, c, d, e, f = GEOREF.scaled(2).transform
    folder = _folder(tmp_path / "s", {"B12": GeoReference((a, b, c + 9.0, d, e, f), GEOREF.crs)})
    assert read_scene(folder).georef.transform == GEOREF.transform


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        ((0.0, 0.0, 399960.0, 0.0, -10.0, 4693200.0), r"pixel size 0 x -10"),
        ((1e300, 0.0, 399960.0, 0.0, -1e300, 4693200.0), r"pixel size 1e\+300 x -1e\+300"),
        ((10.0, 0.0, float("nan"), 0.0, -10.0, 4693200.0), r"must be 6 finite numbers"),
        ((10.0, 2.0, 399960.0, 2.0, -10.0, 4693200.0), r"is rotated or sheared \(b=2, d=2\)"),
        ((10.0, 0.0, 399960.0, 0.0, 10.0, 4693200.0), r"a negative height \(north-up\)"),
    ],
)
def test_npz_transform_that_is_not_finite_north_up_is_refused(tmp_path, transform, problem):
    path = tmp_path / "g.npz"
    np.savez(path, **_bands(), transform=np.array(transform), crs=np.array("EPSG:32629"))
    with pytest.raises(SceneError, match=rf"g\.npz: 'transform': transform .* {problem}"):
        read_scene(path)


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        ((1e300, 0.0, 399960.0, 0.0, -1e300, 4693200.0), r"pixel size 1e\+300 x -1e\+300"),
        ((10.0, 3.0, 399960.0, 3.0, -10.0, 4693200.0), r"is rotated or sheared"),
    ],
)
def test_geotiff_folder_whose_grids_are_not_finite_north_up_is_refused(tmp_path, transform, problem):
    """The same transform on every band (so the extents agree): refused at open, never copied into a product."""
    folder = tmp_path / "s"
    folder.mkdir()
    for band, values in _bands().items():
        scale = 1 if band in FINE_BANDS else 2
        t = (transform[0] * scale, transform[1] * scale, transform[2], transform[3] * scale, transform[4] * scale,
             transform[5])  # fmt: skip
        profile = dict(driver="GTiff", width=values.shape[1], height=values.shape[0], count=1, dtype="float32",
                       crs="EPSG:32629", transform=rasterio.Affine(*t))  # fmt: skip
        with rasterio.open(folder / f"{band}.tif", "w", **profile) as dataset:
            dataset.write(values, 1)
    with pytest.raises(SceneError, match=rf"s/B\w+\.tif: band B\w+: transform .* {problem}"):
        open_band_source(folder)


# -- regular files only -------------------------------------------------------------------------------------------


def test_cli_refuses_a_fifo_at_once(run_cli, tmp_path):
    fifo = tmp_path / "scene.npz"
    os.mkfifo(fifo)
    done = run_cli("info", fifo, timeout=30)  # today's open() of a FIFO waits for a writer forever
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{fifo}: is a FIFO (named pipe), not a regular file; refused" in done.stderr


def test_a_device_is_refused():
    with pytest.raises(SceneReadError, match=r"/dev/zero: is a device, not a regular file; refused"):
        read_scene(Path("/dev/zero"))


@pytest.mark.real_data
def test_a_fifo_or_a_folder_where_a_band_file_is_expected_is_refused(shared_data, tmp_path):
    product = build_real_safe(shared_data, tmp_path)
    b02 = product / "GRANULE" / GRANULE / "IMG_DATA" / "R10m" / f"{L2A_PREFIX}_B02_10m.jp2"
    b02.unlink()
    os.mkfifo(b02)
    with pytest.raises(SceneReadError, match=r"_B02_10m\.jp2: is a FIFO \(named pipe\), not a regular file; refused"):
        open_band_source(product)
    b02.unlink()
    b02.mkdir()
    with pytest.raises(SceneReadError, match=r"_B02_10m\.jp2: is a folder, not a regular file; refused"):
        read_scene(product)


# -- accepted layouts ---------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_l2a_img_data_folder_reads_each_band_at_its_native_resolution(shared_data, tmp_path):
    product = build_real_safe(shared_data, tmp_path, bands=FINE_BANDS + COARSE_BANDS + VERY_COARSE_BANDS)
    img_data = product / "GRANULE" / GRANULE / "IMG_DATA"
    r20 = img_data / "R20m"
    # the resampled copy of a 10 m band that a real R20m folder holds: skipped, not a second B02
    (r20 / f"{L2A_PREFIX}_B02_20m.jp2").write_bytes((r20 / f"{L2A_PREFIX}_B05_20m.jp2").read_bytes())
    with open_band_source(img_data) as source:
        assert source.format == "band-folder" and source.shape == (300, 300)
        assert source.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
        assert source.band_shape("B05") == (150, 150) and source.band_shape("B09") == (50, 50)
        expected = crop_band(shared_data, "B11").astype(np.float32) + OFFSET_DN  # stored DN: no offset applied
        np.testing.assert_array_equal(source.read_band("B11"), expected)


def test_rasterio_is_in_the_base_install():
    """The runtime reads and writes real products without an extra (docs/inputs.md says why)."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("rasterio") for dep in project["dependencies"])


def test_the_opened_scene_carries_its_format_identity_and_gate_crop(tmp_path):
    """What the runtime takes from the one opened object instead of detecting and opening again."""
    import hashlib

    from ssc_edge.io.sources import streams

    npz = tmp_path / "s.npz"
    np.savez(npz, **_bands())
    folder = _folder(tmp_path / "f")
    single = tmp_path / "one.tif"
    write_geotiff(single, np.stack([_bands()[b] for b in FINE_BANDS], -1), band_names=FINE_BANDS, georef=GEOREF)
    file_hashes = {b: hashlib.sha256((folder / f"{b}.tif").read_bytes()).hexdigest() for b in FINE_BANDS + COARSE_BANDS}
    folder_identity = hashlib.sha256("".join(f"{b} {file_hashes[b]}\n" for b in FINE_BANDS + COARSE_BANDS).encode())
    with open_band_source(npz) as source:
        assert (source.format, source.windowed) == ("npz", False)
        assert source.identity == hashlib.sha256(npz.read_bytes()).hexdigest()
        assert not streams(source, tmp_path / "out.tif")
        crop = source.crop(8)
        assert crop.shape == (8, 8) and crop.bands["B05"].shape == (4, 4)
        np.testing.assert_array_equal(crop.bands["B02"], _bands()["B02"][4:12, 4:12])
        np.testing.assert_array_equal(crop.bands["B05"], _bands()["B05"][2:6, 2:6])
    with open_band_source(folder) as source:
        assert (source.format, source.windowed) == ("band-folder", True)
        assert source.identity == folder_identity.hexdigest()
        assert streams(source, tmp_path / "out.tif") and not streams(source, tmp_path / "out.npz")
        np.testing.assert_array_equal(source.crop(8).bands["B8A"], _bands()["B8A"][2:6, 2:6])
    with open_band_source(single) as source:  # 10 m bands only: opens, the identity is the file's bytes
        assert source.format == "geotiff" and source.identity == hashlib.sha256(single.read_bytes()).hexdigest()


def _rotated_npz(tmp_path: Path) -> Path:
    path = tmp_path / "rotated.npz"
    transform = np.array([10.0, 2.0, 399960.0, 2.0, -10.0, 4693200.0])
    np.savez(path, **_bands(), transform=transform, crs=np.array("EPSG:32629"))
    return path


def _shifted_folder(tmp_path: Path) -> Path:
    a, b, c, d, e, f = GEOREF.scaled(2).transform
    return _folder(tmp_path / "shifted", {"B05": GeoReference((a, b, c + 5_000.0, d, e, f), GEOREF.crs)})


def _other_crs_folder(tmp_path: Path) -> Path:
    return _folder(tmp_path / "utm30", {"B12": GeoReference(GEOREF.scaled(2).transform, "EPSG:32630")})


def _plain_named_npz(tmp_path: Path) -> Path:
    return _npz(tmp_path / "plain.npz", {"B02": _npy((100_000, 100_000), "<f8")})


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.npz")
    return tmp_path / "pipe.npz"


@pytest.mark.parametrize(
    ("make", "suffix", "line"),
    [
        (_rotated_npz, ".tif", r"rotated\.npz: 'transform': transform .* is rotated or sheared"),
        (_shifted_folder, ".npz", r"shifted/B05\.tif: band B05 grid .* is not aligned with the 10 m grid"),
        (_shifted_folder, ".tif", r"shifted/B05\.tif: band B05 grid .* is not aligned with the 10 m grid"),
        (_other_crs_folder, ".npz", r"utm30/B12\.tif: band B12 is in another CRS than B02"),
        (_plain_named_npz, ".npz", r"plain\.npz: array 'B02': declares a 100000x100000 float64 array"),
        (_fifo, ".npz", r"pipe\.npz: is a FIFO \(named pipe\), not a regular file; refused"),
    ],
)
def test_infer_refuses_at_open_in_one_line_and_writes_nothing(run_cli, tmp_path, make, suffix, line):
    """The real command with the shipped model: exit 2, one line naming the file, the output folder left empty."""
    import re

    scene = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    model = Path(__file__).resolve().parents[2] / "models" / "demo.onnx"
    done = run_cli("infer", model, scene, "-o", out / f"product{suffix}", timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert re.search(line, done.stderr), done.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_georeference_is_read_and_checked(tmp_path, version):
    """A .mat scene's ``transform`` and ``crs`` (what write_result stores) pass the same checks as an .npz's."""
    from scipy import io as sio

    bands = _bands()
    cells = np.empty((1, 12), dtype=object)
    for i, band in enumerate(("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")):
        cells[0, i] = bands.get(band, np.zeros((SIZE // 6, SIZE // 6), np.float32))

    def write(path: Path, transform: tuple[float, ...]) -> Path:
        if version == "v5":
            sio.savemat(path, {"Yim": cells, "transform": np.array(transform), "crs": GEOREF.crs})
            return path
        with h5py.File(path, "w") as h5:  # MATLAB v7.3: column-major arrays, cells as references, char as uint16
            refs = [h5.create_dataset(f"#refs#/{i}", data=np.asarray(c).T) for i, c in enumerate(cells[0])]
            yim = h5.create_dataset("Yim", shape=(12, 1), dtype=h5py.ref_dtype)
            yim[:, 0] = [r.ref for r in refs]
            yim.attrs["MATLAB_class"] = np.bytes_("cell")
            h5.create_dataset("transform", data=np.array(transform)[:, None])
            crs = h5.create_dataset("crs", data=np.array([ord(c) for c in GEOREF.crs], np.uint16)[:, None])
            crs.attrs["MATLAB_class"] = np.bytes_("char")
        return path

    assert read_scene(write(tmp_path / "ok.mat", GEOREF.transform)).georef == GEOREF
    rotated = (10.0, 1.0, 399960.0, 0.0, -10.0, 4693200.0)
    with pytest.raises(SceneError, match=r"bad\.mat: 'transform': transform .* is rotated or sheared"):
        read_scene(write(tmp_path / "bad.mat", rotated))
