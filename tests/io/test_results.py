"""Result writers (GeoTIFF, .npz, .mat): round trips, uint16 DN, atomic writes, and read_estimate."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import io as sio

from ssc_edge.bands import COARSE_BANDS
from ssc_edge.errors import OptionError, OutputError, SceneError, SceneReadError
from ssc_edge.io import read_estimate, read_scene, write_result
from ssc_edge.io.geotiff import read_geotiff_image
from ssc_edge.io.npz import read_npz_arrays
from ssc_edge.scene import GeoReference

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7100040.0), "EPSG:32627")
SUFFIXES = (".tif", ".npz", ".mat")


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1e4, (18, 14, 6)).astype(np.float32)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_float32_round_trip(tmp_path, suffix):
    image = _image()
    path = write_result(tmp_path / f"out{suffix}", image, band_names=COARSE_BANDS, georef=GEOREF)
    assert path == tmp_path / f"out{suffix}"
    np.testing.assert_array_equal(read_estimate(path), image)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_band_order_is_restored_to_coarse_order(tmp_path):
    image = _image()
    for suffix in SUFFIXES:
        path = write_result(tmp_path / f"rev{suffix}", image[..., ::-1], band_names=COARSE_BANDS[::-1])
        np.testing.assert_array_equal(read_estimate(path), image)


def test_geotiff_keeps_georef_and_descriptions(tmp_path):
    write_result(tmp_path / "g.tiff", _image(), georef=GEOREF)
    _, descriptions, georef, _ = read_geotiff_image(tmp_path / "g.tiff")
    assert descriptions == COARSE_BANDS and georef.transform == GEOREF.transform


def test_npz_and_mat_keep_georef(tmp_path):
    write_result(tmp_path / "g.npz", _image(), georef=GEOREF)
    arrays = read_npz_arrays(tmp_path / "g.npz")
    assert tuple(arrays["transform"]) == GEOREF.transform and str(arrays["crs"]) == GEOREF.crs
    write_result(tmp_path / "g.mat", _image(), georef=GEOREF)
    mat = sio.loadmat(tmp_path / "g.mat")
    assert mat["xpr"].shape == (18, 14, 6) and mat["xpr"].dtype == np.float32
    assert tuple(mat["transform"].ravel()) == GEOREF.transform and str(mat["crs"][0]) == GEOREF.crs


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_uint16_rounds_and_clips(tmp_path, suffix):
    """Valid samples clip to 1..65535: 0 is uint16's nodata value, written for NaN and read back as NaN."""
    values = np.array([-5.0, 0.4, 0.5, 1.5, 2.6, 65535.4, 70000.0, np.nan])
    image = np.broadcast_to(values[:, None, None], (8, 2, 6)).copy()
    path = write_result(tmp_path / f"u{suffix}", image, dtype="uint16")
    if suffix == ".tif":
        stored = read_geotiff_image(path)[0]
    elif suffix == ".npz":
        stored = read_npz_arrays(path)["B05"][..., None]
    else:
        stored = sio.loadmat(path)["xpr"]
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored[:, 0, 0], [1, 1, 1, 2, 3, 65535, 65535, 0])  # half to even
    np.testing.assert_array_equal(read_estimate(path)[:, 0, 0], [1, 1, 1, 2, 3, 65535, 65535, np.nan])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_float32_nodata_is_nan_in_every_format(tmp_path, suffix):
    image = _image()
    image[:3, :5] = np.nan
    path = write_result(tmp_path / f"n{suffix}", image)
    np.testing.assert_array_equal(read_estimate(path), image)  # NaN where it was, every other value exact


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")
@pytest.mark.parametrize(("dtype", "nodata"), [("float32", "nan"), ("uint16", "0.0")])
def test_geotiff_carries_the_nodata_tag(tmp_path, dtype, nodata):
    rasterio = pytest.importorskip("rasterio")
    path = write_result(tmp_path / "t.tif", _image(), dtype=dtype)  # a tag even without no-data pixels
    with rasterio.open(path) as dataset:
        assert [str(v) for v in dataset.nodatavals] == [nodata] * 6


def test_refuses_existing_output_unless_force(tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"r\.npz: output exists; pass --force to overwrite it"):
        write_result(path, _image())
    assert path.read_bytes() == b"keep me"
    write_result(path, _image(), force=True)
    np.testing.assert_array_equal(read_estimate(path), _image())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "r.png"}, r"r\.png: unsupported output format '\.png'; use \.tif"),
        ({"dtype": "int8"}, r"unsupported output dtype 'int8'"),
        ({"image": np.ones((4, 4, 5))}, r"r\.npz: result must be a real \(H, W, 6\) array .* got float64 4x4x5"),
        ({"image": np.full((4, 4, 6), np.inf)}, r"r\.npz: result has 96 infinite values"),
    ],
)
def test_write_result_option_errors(tmp_path, kwargs, message):
    args = {"path": "r.npz", "image": _image(), **kwargs}
    with pytest.raises(OptionError, match=message):
        write_result(tmp_path / args.pop("path"), args.pop("image"), **args)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path):
    with pytest.raises(OutputError, match=r"folder .*nowhere does not exist"):
        write_result(tmp_path / "nowhere" / "r.tif", _image())


def test_disk_full_leaves_nothing_npz(tmp_path, monkeypatch):
    """numpy's low-level array writer fails half-way with ENOSPC: no output, no temporary file."""
    import numpy.lib.format as npformat

    real = npformat.write_array

    def full_disk(fp, array, *args, **kwargs):
        real(fp, array[: len(array) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(npformat, "write_array", full_disk)
    with pytest.raises(OutputError, match=r"r\.npz: cannot write \(No space left on device\)"):
        write_result(tmp_path / "r.npz", _image())
    assert list(tmp_path.iterdir()) == []


def test_disk_full_leaves_nothing_any_format(tmp_path):
    """A real write failure (file size limit, as a full disk) in every format, GDAL included."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        import numpy as np
        from ssc_edge.errors import OutputError
        from ssc_edge.io import write_result
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        image = np.random.default_rng(0).uniform(0, 1e4, (300, 300, 6))
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        for suffix in {SUFFIXES!r}:
            try:
                write_result(Path(sys.argv[1]) / ("r" + suffix), image)
            except OutputError as exc:
                print("OutputError", suffix, exc)
            else:
                print("written", suffix)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("OutputError") for line in lines), done.stdout
    assert list(tmp_path.iterdir()) == []


def test_read_estimate_paper_outputs(shared_data):
    for name, size in (("skipnetpanshapen_r", 256), ("skipnetpanshapen_c", 204), ("resnetpanshapen_c", 204)):
        estimate = read_estimate(shared_data / "paper_outputs" / f"{name}.mat")
        assert estimate.shape == (size, size, 6) and estimate.dtype == np.float32


def test_read_estimate_v73_array_is_transposed(shared_data):
    """The RR file's single H x W x 6 array (Xm_im, HDF5) reads as the scene's reference."""
    path = shared_data / "coastalA_cell_RR.mat"
    np.testing.assert_array_equal(read_estimate(path), read_scene(path).reference)


def test_read_estimate_any_name_and_npy(tmp_path):
    image = _image()
    sio.savemat(tmp_path / "x.mat", {"sharpened": image, "note": np.ones(3)})
    np.testing.assert_array_equal(read_estimate(tmp_path / "x.mat"), image)
    np.save(tmp_path / "x.npy", image)
    np.testing.assert_array_equal(read_estimate(tmp_path / "x.npy"), image)
    with open(tmp_path / "x.npz", "wb") as f:
        np.savez(f, anything=image)
    np.testing.assert_array_equal(read_estimate(tmp_path / "x.npz"), image)


@pytest.mark.parametrize(
    ("variables", "error", "message"),
    [
        ({"a": np.ones((4, 4, 6)), "b": np.ones((4, 4, 6))}, SceneReadError, r"several H x W x B arrays"),
        ({"a": np.ones((4, 4))}, SceneReadError, r"no H x W x B arrays; an estimate file holds exactly one"),
        ({"a": np.ones((4, 4, 6), dtype=complex)}, SceneError, r"estimate has unsupported dtype complex128"),
        ({"a": np.full((4, 4, 6), np.inf)}, SceneError, r"estimate has 96 infinite values"),
        ({"a": np.ones((0, 4, 6))}, SceneError, r"estimate is empty \(0x4x6\)"),
    ],
)
def test_read_estimate_errors(tmp_path, variables, error, message):
    sio.savemat(tmp_path / "e.mat", variables)
    with pytest.raises(error, match=r"e\.mat: " + message):
        read_estimate(tmp_path / "e.mat")


def test_read_estimate_bad_files(tmp_path):
    with pytest.raises(SceneReadError, match=r"none\.tif: no such file"):
        read_estimate(tmp_path / "none.tif")
    (tmp_path / "t.txt").write_text("text")
    with pytest.raises(SceneReadError, match=r"t\.txt: unknown file format"):
        read_estimate(tmp_path / "t.txt")
    with open(tmp_path / "b.npz", "wb") as f:
        np.savez(f, B05=np.ones((4, 4)), B06=np.ones((3, 4)))
    with pytest.raises(SceneError, match=r"b\.npz: band arrays of an estimate must all be \(H, W\) of one size"):
        read_estimate(tmp_path / "b.npz")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(SceneReadError, match=r"bad\.npy: cannot read \.npy file"):
        read_estimate(tmp_path / "bad.npy")


def test_outputs_get_the_umask_permissions_not_mkstemp_0600(tmp_path):
    import os
    import stat

    from ssc_edge.io import atomic_output

    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644
