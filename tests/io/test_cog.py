"""Cloud-Optimized GeoTIFF outputs: valid COGs (rio-cogeo's validator), overviews that are the mean of
the valid pixels, everything kept (pixels bit for bit, nodata, band descriptions, CRS, transform),
no temporary file left on any error or Ctrl-C, and the opt-out (``cog=False``, ``--no-cog``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
cogeo = pytest.importorskip("rio_cogeo.cogeo", reason="the COG validator: pip install rio-cogeo (the test extra)")

from rasterio.transform import Affine  # noqa: E402

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS  # noqa: E402
from ssc_edge.errors import OptionError, OutputError, SceneReadError  # noqa: E402
from ssc_edge.io import read_estimate, write_result  # noqa: E402
from ssc_edge.io.cog import (  # noqa: E402
    average_2x2,
    cloud_optimize,
    cog_creation_options,
    overview_factors,
    scratch_geotiff,
)
from ssc_edge.io.geotiff import write_geotiff  # noqa: E402
from ssc_edge.io.output import remove_stale_files, temporary_prefix  # noqa: E402
from ssc_edge.runtime.infer import sharpen_file  # noqa: E402
from ssc_edge.runtime.options import OutputOptions, RunOptions  # noqa: E402
from ssc_edge.scene import GeoReference, Scene  # noqa: E402
from tests.runtime._models import write_model  # noqa: E402

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 4900020.0), "EPSG:32631")
SIDE = 1040  # > 2 x 512: the COG gets overviews 2 and 4


def _is_cog(path) -> bool:
    """rio-cogeo's validator (the checks of GDAL's validate_cloud_optimized_geotiff.py) finds no error and no
    warning, and GDAL recognises the layout its COG driver writes (``LAYOUT=COG``)."""
    report = cogeo.cog_validate(str(path), quiet=True)
    with rasterio.open(path) as dataset:
        layout = dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
    return report == (True, [], []) and layout == "COG"


def _validate(path) -> None:
    assert cogeo.cog_validate(str(path), quiet=True) == (True, [], [])
    assert _is_cog(path)


def _read(path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as dataset:
        info = {
            "descriptions": dataset.descriptions,
            "crs": dataset.crs.to_epsg() if dataset.crs else None,
            "transform": tuple(dataset.transform)[:6],
            "nodata": dataset.nodatavals,
            "dtypes": dataset.dtypes,
            "overviews": dataset.overviews(1),
            "block": dataset.block_shapes[0],
        }
        return dataset.read(), info


def _plain_geotiff(path, data: np.ndarray, nodata) -> None:
    """A plain tiled GeoTIFF (256 px blocks, uncompressed), as the streamed writer leaves it: (B, H, W)."""
    count, height, width = data.shape
    profile = dict(driver="GTiff", height=height, width=width, count=count, dtype=data.dtype.name, tiled=True,
                   blockxsize=256, blockysize=256, nodata=nodata, crs="EPSG:32631",
                   transform=Affine(*GEOREF.transform))  # fmt: skip
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        out.descriptions = COARSE_BANDS[:count]
        out.update_tags(source="ssc-edge test")


def _with_nodata(dtype: str, nodata) -> np.ndarray:
    data = np.random.default_rng(3).uniform(1, 6000, (3, SIDE, SIDE)).astype(dtype)
    data[:, :300, :200] = nodata  # a no-data corner (edge of swath)
    data[:, 501, 601] = nodata  # one no-data pixel inside an overview block
    return data


@pytest.mark.parametrize(("dtype", "nodata"), [("float32", float("nan")), ("uint16", 0)])
def test_cloud_optimize_keeps_pixels_nodata_and_metadata_and_averages_valid_pixels(tmp_path, dtype, nodata):
    data = _with_nodata(dtype, nodata)
    _plain_geotiff(tmp_path / "plain.tif", data, nodata)
    result = cloud_optimize(tmp_path / "plain.tif", tmp_path / "cog.tif")
    _validate(tmp_path / "cog.tif")
    got, info = _read(tmp_path / "cog.tif")
    assert np.array_equal(got, data, equal_nan=True)  # lossless: bit for bit
    assert info["descriptions"] == COARSE_BANDS[:3] and info["dtypes"] == (dtype,) * 3
    assert info["crs"] == 32631 and info["transform"] == (10.0, 0.0, 399960.0, 0.0, -10.0, 4900020.0)
    assert np.array_equal(info["nodata"], (nodata,) * 3, equal_nan=True)
    assert info["overviews"] == [2, 4] and result.overviews == (2, 4) and info["block"] == (512, 512)
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.tags()["source"] == "ssc-edge test"
        overview = cog.read(out_shape=(3, SIDE // 2, SIDE // 2)).astype(np.float64)
    # RESAMPLING=AVERAGE: each overview pixel is the mean of the valid pixels of its 2 x 2 block; nodata only
    # where all four are nodata (the corner), never where one is (the lone pixel)
    valid = data.astype(np.float64)
    valid[np.isnan(valid) | (valid == nodata)] = np.nan
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        mean = np.nanmean(valid.reshape(3, SIDE // 2, 2, SIDE // 2, 2), axis=(2, 4))
    overview[np.isnan(overview) | (overview == nodata)] = np.nan
    assert np.array_equal(np.isnan(overview), np.isnan(mean)) and np.isnan(mean).sum() == 3 * 150 * 100
    tolerance = 0.5 if dtype == "uint16" else 1e-6 * 6000  # uint16 rounds to the nearest integer
    assert np.nanmax(np.abs(overview - mean)) <= tolerance
    assert result.bytes == (tmp_path / "cog.tif").stat().st_size and result.seconds > 0


def test_creation_options_are_checked():
    options = cog_creation_options(threads=2)
    assert options["BLOCKSIZE"] == "512" and options["RESAMPLING"] == "AVERAGE" and options["NUM_THREADS"] == "2"
    with pytest.raises(OptionError, match="power of two from 64 to 4096 px, got 300"):
        cog_creation_options(blocksize=300)
    with pytest.raises(OptionError, match="DEFLATE level must be 1 to 9, got 0"):
        cog_creation_options(level=0)
    with pytest.raises(OptionError, match="COG threads must be positive, got 0"):
        cog_creation_options(threads=0)


def test_missing_source_and_unwritable_destination_are_one_line_errors(tmp_path):
    with pytest.raises(SceneReadError, match=r"missing\.tif: no such GeoTIFF to cloud-optimize"):
        cloud_optimize(tmp_path / "missing.tif", tmp_path / "cog.tif")
    _plain_geotiff(tmp_path / "plain.tif", _with_nodata("uint16", 0)[:, :64, :64], 0)
    with pytest.raises(OutputError, match=r"cog\.tif: cannot write the Cloud-Optimized GeoTIFF \(.+\)$"):
        cloud_optimize(tmp_path / "plain.tif", tmp_path / "no-folder" / "cog.tif")
    with pytest.raises(OutputError, match=r"^\S+/out\.tif: cannot write the Cloud-Optimized GeoTIFF"):
        cloud_optimize(tmp_path / "plain.tif", tmp_path / "no-folder" / ".out.tif.x.tif", name=tmp_path / "out.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.tif"]


def test_scratch_file_is_removed_whatever_happens(tmp_path):
    with scratch_geotiff(tmp_path / "out.tif") as scratch:
        assert scratch.parent == tmp_path and scratch.name.startswith(temporary_prefix(tmp_path / "out.tif"))
        assert scratch.is_file()
    assert not scratch.exists()
    with pytest.raises(KeyboardInterrupt), scratch_geotiff(tmp_path / "out.tif") as scratch:
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_scratch_file_of_a_killed_run_is_removed_by_the_next_one(tmp_path):
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time; from pathlib import Path; from ssc_edge.io.cog import scratch_geotiff\n"
        "with scratch_geotiff(Path(sys.argv[1])) as scratch:\n    print(scratch, flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, tmp_path / "out.tif"], stdout=subprocess.PIPE, text=True)
    scratch = Path(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)  # no clean-up can run
    child.wait(timeout=30)
    child.stdout.close()
    assert scratch.is_file()
    assert remove_stale_files(tmp_path) == [scratch]
    assert list(tmp_path.iterdir()) == []


_INTERRUPTED_CHILD = """
import faulthandler, sys, threading
faulthandler.dump_traceback_later(90, exit=True)  # a hang becomes a failure with every thread's stack in stderr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import rasterio
import rasterio.shutil

from ssc_edge.io import atomic_output
from ssc_edge.io.cog import cloud_optimize

plain, source, output = (Path(a) for a in sys.argv[1:])
data, gate, told = plain.read_bytes(), threading.Event(), []


class Ranges(BaseHTTPRequestHandler):
    # plain.tif over HTTP with byte ranges; while the gate is closed every read waits for it
    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        if not gate.is_set() and not told:
            told.append(True)
            print("GDAL is reading", flush=True)  # the parent's cue: GDAL is in the copy and cannot leave it
        gate.wait()
        first, last = (int(v) for v in self.headers["Range"].split("=")[1].split("-"))
        last = min(last, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        self.wfile.write(data[first : last + 1])


server = ThreadingHTTPServer(("127.0.0.1", 0), Ranges)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
gate.set()
with rasterio.Env(VSI_CACHE=False, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):  # a VRT of the HTTP copy: a file
    rasterio.shutil.copy(f"/vsicurl/http://127.0.0.1:{server.server_port}/{plain.name}", source, driver="VRT")
gate.clear()
try:
    with atomic_output(output) as tmp:
        cloud_optimize(source, tmp, level=9, progress=lambda done, total, message="": print(message, flush=True))
    print("GDAL finished before the signal", flush=True)
except KeyboardInterrupt:
    gdal = [t for t in threading.enumerate() if t.name == "ssc-edge-cog"]
    print("interrupted while GDAL runs" if gdal else "interrupted after GDAL returned", flush=True)
    gate.set()
    for thread in gdal:
        thread.join()  # let GDAL finish, then look for leftovers
"""


def test_ctrl_c_stops_the_cog_step_at_once_and_leaves_nothing(tmp_path):
    """Deterministic: the child serves its source over HTTP and holds every read until the signal has arrived, so
    GDAL is inside the copy when SIGINT comes and cannot finish before it (no sleep, no race)."""
    import signal
    import subprocess
    import sys

    data = np.random.default_rng(5).uniform(0, 1e4, (4, 512, 512)).astype(np.float32)
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    _plain_geotiff(tmp_path / "src" / "plain.tif", data, None)
    args = [tmp_path / "src" / "plain.tif", tmp_path / "src" / "source.vrt", tmp_path / "out" / "o.tif"]
    child = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_CHILD, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines = [child.stdout.readline().strip() for _ in range(2)]
    assert lines == ["COG: overviews and layout", "GDAL is reading"], [*lines, child.stderr.read()]
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert out == "interrupted while GDAL runs\n", out + err  # KeyboardInterrupt did not wait for the copy
    assert list((tmp_path / "out").iterdir()) == []  # nor left any file once GDAL returned


def test_in_memory_result_is_a_cog_equal_to_the_plain_geotiff(tmp_path):
    image = np.random.default_rng(0).uniform(0, 1e4, (SIDE, 700, 6)).astype(np.float32)
    image[:40, :50] = np.nan  # no-data
    cog = write_result(tmp_path / "cog.tif", image, georef=GEOREF)
    plain = write_result(tmp_path / "plain.tif", image, georef=GEOREF, cog=False)
    _validate(cog)
    assert not _is_cog(plain)  # no overviews, not GDAL's COG layout
    (got, info), (expected, plain_info) = _read(cog), _read(plain)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(np.moveaxis(got, 0, -1), image, equal_nan=True)
    assert info["overviews"] == [2, 4] and plain_info["overviews"] == []
    for key in ("descriptions", "crs", "transform", "dtypes"):
        assert info[key] == plain_info[key]
    assert info["descriptions"] == COARSE_BANDS and np.isnan(info["nodata"]).all()
    assert np.array_equal(read_estimate(cog), image, equal_nan=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "plain.tif"]  # no temporary file left


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "tiny.onnx", blocks=2, width=8, layout="NHWC", seed=1)


def _scene(height: int, width: int) -> Scene:
    rng = np.random.default_rng(7)
    bands = {b: rng.uniform(1, 6000, (height, width)).astype(np.float32) for b in FINE_BANDS}
    bands.update({b: rng.uniform(1, 6000, (height // 2, width // 2)).astype(np.float32) for b in COARSE_BANDS})
    return Scene(bands=bands, name="random")


@pytest.fixture(scope="module")
def band_folder(tmp_path_factory):
    """A 10 m and a 20 m multi-band GeoTIFF (uint16 DN) with a no-data corner: streamed by ``infer``."""
    folder = tmp_path_factory.mktemp("scene")
    scene = _scene(SIDE, 560)
    fine, coarse = np.rint(scene.fine()), np.rint(scene.coarse())
    fine[:64, :64] = coarse[:32, :32] = 0  # ESA's NODATA
    write_geotiff(folder / "T31TDH_10m.tif", fine, band_names=FINE_BANDS, georef=GEOREF, dtype="uint16", nodata=0)
    write_geotiff(folder / "T31TDH_20m.tif", coarse, band_names=COARSE_BANDS, georef=GEOREF.scaled(2),
                  dtype="uint16", nodata=0)  # fmt: skip
    return folder


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_streamed_product_is_a_cog_equal_to_the_plain_geotiff(tmp_path, model, band_folder, dtype):
    steps = []
    run = RunOptions(provider="cpu", tile=256, precision="fp32")
    cog = sharpen_file(model, band_folder, tmp_path / "cog.tif", run=run, out=OutputOptions(dtype=dtype, quality=False),
                       progress=lambda *a: steps.append(a))  # fmt: skip
    plain = sharpen_file(model, band_folder, tmp_path / "plain.tif", run=run,
                         out=OutputOptions(dtype=dtype, quality=False, cog=False))  # fmt: skip
    assert cog.streamed and cog.cog_seconds > 0 and plain.cog_seconds is None
    assert steps[-2][:2] == (0, 1) and steps[-2][2].startswith("COG: ") and steps[-1][:2] == (1, 1)
    _validate(cog.output)
    assert not _is_cog(plain.output)
    (got, info), (expected, plain_info) = _read(cog.output), _read(plain.output)
    assert np.array_equal(got, expected, equal_nan=True)  # the COG step changes no pixel
    assert info["overviews"] == [2, 4] and info["block"] == (512, 512) and plain_info["block"] == (256, 256)
    for key in ("descriptions", "crs", "transform", "dtypes", "nodata"):
        assert info[key] == plain_info[key] or np.array_equal(info[key], plain_info[key], equal_nan=True)
    assert info["descriptions"] == COARSE_BANDS and info["crs"] == 32631 and info["transform"] == GEOREF.transform
    nodata = 0 if dtype == "uint16" else np.nan
    assert np.array_equal(info["nodata"], (nodata,) * 6, equal_nan=True)
    assert np.array_equal(got[:, 0, 0], np.full(6, nodata, dtype=dtype), equal_nan=True)  # the no-data corner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "plain.tif"]  # no temporary file left


@pytest.mark.parametrize("shape", [(300, 300), (1040, 560), (600, 2050), (2100, 1100)])
def test_overview_factors_are_the_levels_gdals_cog_driver_makes(tmp_path, shape):
    data = np.zeros((1, *shape), dtype="uint16")
    _plain_geotiff(tmp_path / "plain.tif", data, 0)
    assert overview_factors(shape) == cloud_optimize(tmp_path / "plain.tif", tmp_path / "cog.tif").overviews


@pytest.mark.parametrize(("dtype", "nodata"), [("float32", float("nan")), ("uint16", 0)])
def test_average_2x2_is_the_mean_of_each_blocks_valid_pixels(dtype, nodata):
    data = np.moveaxis(_with_nodata(dtype, nodata)[:, 280:320, 180:240], 0, -1).copy()  # the no-data corner's edge
    data[31, 41] = nodata  # one no-data pixel in a block of valid ones
    got = average_2x2(data, nodata)
    assert got.shape == (20, 30, 3) and got.dtype == dtype
    reference = data.astype(np.float64)
    reference[np.isnan(reference) | (reference == nodata)] = np.nan
    blocks = np.stack([reference[i::2, j::2] for i in (0, 1) for j in (0, 1)])
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        mean = np.nanmean(blocks, axis=0)
    values = got.astype(np.float64)
    values[np.isnan(values) | (values == nodata)] = np.nan
    assert np.array_equal(np.isnan(values), np.isnan(mean)) and np.isnan(mean).sum() == 3 * 10 * 10
    assert np.nanmax(np.abs(values - mean)) <= (0.5 if dtype == "uint16" else 1e-6 * 6000)  # uint16 rounds
    three = np.mean(data[30:32, 40:42, 0].astype(np.float64).ravel()[:3])  # the block with the lone no-data pixel
    assert values[15, 20, 0] == pytest.approx(three, abs=0.5 if dtype == "uint16" else 1e-2)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_streamed_overviews_are_gdals_own_and_leave_no_file(tmp_path, model, band_folder, dtype):
    """The streamed COG's overviews (2 x 2 means made while writing, the smaller levels by GDAL from them)
    against those GDAL's COG driver computes itself from the same plain product."""
    run = RunOptions(provider="cpu", tile=256, precision="fp32")
    sharpen_file(model, band_folder, tmp_path / "cog.tif", run=run, out=OutputOptions(dtype=dtype, quality=False))
    sharpen_file(model, band_folder, tmp_path / "plain.tif", run=run,
                 out=OutputOptions(dtype=dtype, quality=False, cog=False))  # fmt: skip
    cloud_optimize(tmp_path / "plain.tif", tmp_path / "gdal.tif")  # GDAL's own overviews
    nodata = 0 if dtype == "uint16" else np.nan
    with rasterio.open(tmp_path / "cog.tif") as ours, rasterio.open(tmp_path / "gdal.tif") as gdal:
        assert ours.overviews(1) == gdal.overviews(1) == [2, 4]
        for factor in (2, 4):
            shape = (6, -(-SIDE // factor), -(-560 // factor))
            got = ours.read(out_shape=shape).astype(np.float64)
            expected = gdal.read(out_shape=shape).astype(np.float64)
            for values in (got, expected):
                values[np.isnan(values) | (values == nodata)] = np.nan
            assert np.array_equal(np.isnan(got), np.isnan(expected))
            assert np.isnan(got).any() and not np.isnan(got).all()  # the no-data corner stays no-data
            assert np.nanmax(np.abs(got - expected)) <= (1.0 if dtype == "uint16" else 1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "gdal.tif", "plain.tif"]  # no .ovr left


def test_ctrl_c_in_the_cog_step_leaves_nothing(tmp_path, model, band_folder):
    def interrupt_at_cog(done, total, message=""):
        if message.startswith("COG"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sharpen_file(model, band_folder, tmp_path / "out.tif", run=RunOptions(provider="cpu", tile=256,
                     precision="fp32"), out=OutputOptions(quality=False), progress=interrupt_at_cog)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # neither the output, nor its temporary file, nor the plain scratch


def test_ctrl_c_while_streaming_leaves_nothing(tmp_path, model, band_folder):
    def interrupt_at_tile_two(done, total, message=""):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sharpen_file(model, band_folder, tmp_path / "out.tif", run=RunOptions(provider="cpu", tile=256,
                     precision="fp32"), out=OutputOptions(quality=False), progress=interrupt_at_tile_two)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_in_memory_npz_product_is_a_cog_equal_to_the_plain_geotiff(tmp_path, model):
    scene = _scene(SIDE, 600)
    arrays = {**scene.bands, "transform": np.array(GEOREF.transform), "crs": np.array(GEOREF.crs)}
    np.savez(tmp_path / "scene.npz", **arrays)
    run = RunOptions(provider="cpu", tile=256, precision="fp32")
    cog = sharpen_file(model, tmp_path / "scene.npz", tmp_path / "cog.tif", run=run, out=OutputOptions(quality=False))
    plain = sharpen_file(model, tmp_path / "scene.npz", tmp_path / "plain.tif", run=run,
                         out=OutputOptions(quality=False, cog=False))  # fmt: skip
    assert not cog.streamed
    _validate(cog.output)
    assert not _is_cog(plain.output)
    (got, info), (expected, plain_info) = _read(cog.output), _read(plain.output)
    assert np.array_equal(got, expected, equal_nan=True)
    assert info["overviews"] == [2, 4] and info["descriptions"] == COARSE_BANDS
    assert info["crs"] == 32631 and info["transform"] == GEOREF.transform == plain_info["transform"]
    assert np.isnan(info["nodata"]).all() and np.isnan(plain_info["nodata"]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "plain.tif", "scene.npz"]


def test_batch_writes_cogs_unless_told_not_to(tmp_path, model):
    from ssc_edge.batch import BatchConfig, run_batch

    scene = _scene(SIDE // 2, 600)
    np.savez(tmp_path / "scene.npz", **scene.bands, transform=np.array(GEOREF.transform), crs=np.array(GEOREF.crs))
    for cog in (True, False):
        config = BatchConfig(mode="infer", model=model, in_process=True, cog=cog, precision="fp32", provider="cpu")
        result = run_batch([tmp_path / "scene.npz"], tmp_path / f"out_{cog}", config)
        assert result.count("done") == 1, result.records
        assert _is_cog(tmp_path / f"out_{cog}" / "scene_sharpened.tif") == cog
    cogs, plains = (_read(tmp_path / f"out_{c}" / "scene_sharpened.tif")[0] for c in (True, False))
    assert np.array_equal(cogs, plains, equal_nan=True)


def test_cli_no_cog_and_quiet(tmp_path, model, band_folder, run_cli):
    done = run_cli("infer", model, band_folder, "-o", tmp_path / "cog.tif", "--tile", "256", "--no-quality",
                   "--precision", "fp32")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "COG: overviews and layout" in done.stderr and "COG: written in" in done.stderr  # its own step
    assert " s of it)" in done.stdout
    _validate(tmp_path / "cog.tif")
    quiet = run_cli("infer", model, band_folder, "-o", tmp_path / "plain.tif", "--tile", "256", "--no-quality",
                    "--precision", "fp32", "--no-cog", "--quiet")  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert "COG" not in quiet.stderr and "COG" not in quiet.stdout
    assert not _is_cog(tmp_path / "plain.tif")
    assert np.array_equal(_read(tmp_path / "cog.tif")[0], _read(tmp_path / "plain.tif")[0], equal_nan=True)
    for command in ("infer", "batch"):
        help_text = run_cli(command, "--help").stdout
        assert "--no-cog" in help_text and "Cloud-Optimized" in help_text


@pytest.mark.real_data
def test_real_jp2_folder_streams_into_a_valid_cog(tmp_path, shared_data):
    folder = shared_data / "real" / "l1c_T31TDH_20150726_crop"
    run = RunOptions(provider="cpu", precision="fp32")
    result = sharpen_file(None, folder, tmp_path / "real.tif", run=run)
    plain = sharpen_file(None, folder, tmp_path / "plain.tif", run=run, out=OutputOptions(cog=False))
    assert result.streamed
    _validate(result.output)
    (got, info), (expected, plain_info) = _read(result.output), _read(plain.output)
    assert np.array_equal(got, expected, equal_nan=True)
    assert info["overviews"] == []  # 300 x 300 px fit in one 512 px block: no overview needed
    assert info["crs"] == 32631 and info["transform"] == plain_info["transform"]
    assert info["descriptions"] == COARSE_BANDS and np.isnan(info["nodata"]).all()
