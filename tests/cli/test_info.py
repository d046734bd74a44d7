"""`ssc-edge info`: the real files, --json, and clean one-line errors (the installed command, run for real)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS
from ssc_edge.io.geotiff import write_geotiff
from ssc_edge.scene import GeoReference


def test_info_text_rr_scene(run_cli, shared_data):
    done = run_cli("info", shared_data / "reykjavik_cell_RR.mat")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("reykjavik_cell_RR.mat: fine grid 256x256 px at 20 m")
    assert any(line.split()[:3] == ["B05", "128x128", "40"] for line in lines)
    assert not any(line.startswith("B01") for line in lines)  # all-zero placeholder dropped
    assert "reference: 256x256x6" in done.stdout and "georeferencing: none" in done.stdout


def test_info_json_full_resolution(run_cli, shared_data):
    done = run_cli("info", "--json", shared_data / "CoastalA_cell.mat")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["shape"] == [408, 408] and summary["fine_pixel_size"] == 10.0
    assert tuple(summary["bands"]) == ALL_BANDS
    assert summary["bands"]["B12"]["shape"] == [204, 204] and summary["bands"]["B12"]["gsd"] == 20.0
    assert summary["bands"]["B09"]["gsd"] == 60.0
    assert summary["bands"]["B02"]["min"] <= summary["bands"]["B02"]["mean"] <= summary["bands"]["B02"]["max"]
    assert summary["reference"] is None and summary["georef"] is None


def test_info_errors_are_one_line(run_cli, tmp_path):
    bad = tmp_path / "broken.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    done = run_cli("info", bad)
    assert done.returncode == 2
    assert done.stderr.startswith("ssc-edge: error: ") and str(bad) in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_info_help(run_cli):
    done = run_cli("info", "--help")
    assert done.returncode == 0 and "--json" in done.stdout and "ground sampling" in done.stdout


def test_info_geotiff_folder_reports_georef(run_cli, tmp_path):
    pytest.importorskip("rasterio")
    georef = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7100040.0), "EPSG:32627")
    for band in FINE_BANDS + COARSE_BANDS:
        size, grid = (16, georef) if band in FINE_BANDS else (8, georef.scaled(2))
        write_geotiff(tmp_path / f"{band}.tif", np.full((size, size, 1), 100.0), band_names=(band,), georef=grid)
    done = run_cli("info", "--json", tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["shape"] == [16, 16] and summary["georef"]["transform"] == list(georef.transform)
    assert "32627" in summary["georef"]["crs"] and summary["bands"]["B05"]["min"] == 100.0


def _wedged_bands(size: int = 32) -> dict[str, np.ndarray]:
    """Every band of a random scene with a no-data (0 DN) wedge over its upper-left triangle."""
    rng = np.random.default_rng(5)
    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        side = size if band in FINE_BANDS else size // 2
        values = rng.uniform(500, 4000, (side, side)).astype(np.float32)
        values[np.add.outer(np.arange(side), np.arange(side)) < side // 2] = 0.0
        bands[band] = values
    return bands


def test_info_statistics_leave_0_dn_no_data_out(run_cli, tmp_path):
    bands = _wedged_bands()
    np.savez(tmp_path / "wedge.npz", **bands)
    done = run_cli("info", "--json", "--no-registration", tmp_path / "wedge.npz")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["bands"]
    for band, values in bands.items():
        valid = values[values != 0]
        assert summary[band]["nodata"] == values.size - valid.size > 0
        assert summary[band]["min"] == pytest.approx(float(valid.min()))  # not the wedge's 0
        assert summary[band]["mean"] == pytest.approx(float(valid.mean(dtype=np.float64)), rel=1e-9)
        assert summary[band]["max"] == pytest.approx(float(valid.max()))
    text = run_cli("info", "--no-registration", tmp_path / "wedge.npz").stdout
    share = 100 * summary["B02"]["nodata"] / 32**2
    assert any(line.split()[0] == "B02" and line.split()[-1] == f"{share:.1f}%" for line in text.splitlines())


def test_info_statistics_leave_declared_nodata_and_nan_out(run_cli, tmp_path):
    """A band folder whose 10 m bands declare nodata 65535 (uint16) and whose 20 m bands mark no-data with NaN."""
    pytest.importorskip("rasterio")
    georef = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7100040.0), "EPSG:32627")
    bands = _wedged_bands()
    for band, values in bands.items():
        if band in FINE_BANDS:
            stored = np.where(values == 0, 65535, np.rint(values)).astype(np.uint16)
            write_geotiff(tmp_path / f"{band}.tif", stored[..., None], band_names=(band,), georef=georef,
                          dtype="uint16", nodata=65535)  # fmt: skip
            bands[band] = stored.astype(np.float32)
        else:
            stored = np.where(values == 0, np.nan, values)
            write_geotiff(tmp_path / f"{band}.tif", stored[..., None], band_names=(band,), georef=georef.scaled(2),
                          nodata=float("nan"))  # fmt: skip
    done = run_cli("info", "--json", "--no-registration", tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["bands"]
    for band, values in bands.items():
        valid = values[(values != 65535) & (values != 0)] if band in FINE_BANDS else values[values != 0]
        assert summary[band]["nodata"] == values.size - valid.size > 0
        assert (summary[band]["min"], summary[band]["max"]) == pytest.approx((valid.min(), valid.max()))
        assert summary[band]["mean"] == pytest.approx(float(valid.mean(dtype=np.float64)), rel=1e-9)


def test_info_of_a_band_that_is_all_no_data_prints_no_range(run_cli, tmp_path):
    """A band folder (read by window, not refused by info) whose B06 is all 0 DN: no min, max or mean."""
    pytest.importorskip("rasterio")
    georef = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7100040.0), "EPSG:32627")
    for band, values in _wedged_bands().items():
        values = np.zeros_like(values) if band == "B06" else values
        grid = georef if band in FINE_BANDS else georef.scaled(2)
        write_geotiff(tmp_path / f"{band}.tif", values[..., None], band_names=(band,), georef=grid)
    done = run_cli("info", "--json", "--no-registration", tmp_path)
    assert done.returncode == 0, done.stderr
    b06 = json.loads(done.stdout)["bands"]["B06"]
    assert (b06["min"], b06["max"], b06["mean"], b06["nodata"]) == (None, None, None, 16 * 16)
    text = run_cli("info", "--no-registration", tmp_path).stdout
    assert next(line for line in text.splitlines() if line.startswith("B06")).split()[3:] == ["-", "-", "-", "100.0%"]
