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
