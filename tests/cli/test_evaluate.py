"""`ssc-edge evaluate`: the paper's Table 1 and the bicubic baseline through the installed command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssc_edge.io import read_estimate, read_scene
from tests import _reference as independent

# README of ../shared/data. Band SREs are given for SSC-CNN only.
CASES = [
    ("skipnetpanshapen_r", "reykjavik_cell_RR", 28.03, [25.98, 28.76, 28.72, 29.55, 29.20, 25.95], 1.6765),
    ("skipnetpanshapen_c", "coastalA_cell_RR", 33.93, [32.78, 34.67, 35.05, 36.11, 34.29, 30.66], 1.5166),
    ("resnetpanshapen_c", "coastalA_cell_RR", 30.40, None, 2.0755),
    ("resnetpanshapen_r", "reykjavik_cell_RR", 26.67, None, 1.8524),
]
SCENES = ["reykjavik_cell_RR", "coastalA_cell_RR"]


@pytest.mark.parametrize(("output", "scene", "mean_sre", "band_sre", "sam"), CASES)
def test_paper_table_1(run_cli, shared_data, tmp_path, output, scene, mean_sre, band_sre, sam):
    out = tmp_path / "x.json"
    done = run_cli(
        "evaluate", shared_data / "paper_outputs" / f"{output}.mat", "--reference", shared_data / f"{scene}.mat",
        "--json", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"| mean | {output} | {mean_sre:.2f} |" in done.stdout
    document = json.loads(out.read_text())
    report = document["reports"][output]
    assert report["band_names"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert report["mean_sre"] == pytest.approx(mean_sre, abs=0.01)
    if band_sre is not None:
        np.testing.assert_allclose(report["sre"], band_sre, atol=0.02)
    assert report["sam"] == pytest.approx(sam, abs=1e-3)
    assert set(report) >= {"rmse", "ssim", "uiqi", "ergas", "border"}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # written atomically, no temporary left


@pytest.mark.parametrize("scene", SCENES)
def test_bicubic_baseline(run_cli, shared_data, tmp_path, scene):
    """Against an independent baseline: MATLAB imresize(x, 2) (tests/_reference.py) scored with the README's SRE."""
    done = run_cli("evaluate", "--method", "bicubic", shared_data / f"{scene}.mat", "--json", tmp_path / "b.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b.json").read_text())["reports"]["bicubic"]
    value = read_scene(shared_data / f"{scene}.mat")
    expected = independent.sre(value.reference, independent.imresize(value.coarse(), 2))
    np.testing.assert_allclose(report["sre"], expected, atol=1e-4)
    assert report["mean_sre"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert f"| mean | bicubic | {report['mean_sre']:.2f} |" in done.stdout
    assert "| bicubic |" in done.stdout and "SAM (deg)" in done.stdout


def _assert_one_line_error(done, *names) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("ssc-edge: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    for name in names:
        assert str(name) in done.stderr


def test_errors(run_cli, shared_data, tmp_path):
    estimate = shared_data / "paper_outputs" / "skipnetpanshapen_r.mat"
    _assert_one_line_error(
        run_cli("evaluate", estimate, "--reference", shared_data / "CoastalA_cell.mat"),
        "CoastalA_cell.mat", "no reference",
    )  # fmt: skip
    _assert_one_line_error(
        run_cli("evaluate", estimate, "--reference", shared_data / "coastalA_cell_RR.mat"),
        "estimate is 256x256x6, but the reference is 204x204x6",
    )  # fmt: skip
    existing = tmp_path / "exists.json"
    existing.write_text("{}")
    _assert_one_line_error(
        run_cli("evaluate", "--method", "bicubic", shared_data / "reykjavik_cell_RR.mat", "--json", existing),
        existing, "--force",
    )  # fmt: skip
    assert existing.read_text() == "{}"
    _assert_one_line_error(run_cli("evaluate", estimate), "--reference SCENE")
    _assert_one_line_error(run_cli("evaluate", "--method", "nearest", estimate), "unknown upsampling method 'nearest'")


def test_help(run_cli):
    done = run_cli("evaluate", "--help")
    assert done.returncode == 0
    for option in ("--reference", "--method", "--json", "--border", "--force"):
        assert option in done.stdout


def test_full_resolution_without_a_reference(run_cli, shared_data, tmp_path):
    """``evaluate ESTIMATE --scene SCENE``: no reference read; the paper's output beats bicubic on consistency."""
    out = tmp_path / "fr.json"
    done = run_cli(
        "evaluate", shared_data / "paper_outputs" / "skipnetpanshapen_r.mat", "--scene",
        shared_data / "reykjavik_cell_RR.mat", "--method", "bicubic", "--json", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["degradation"] == "bicubic"
    # consistency: the README's SRE of MATLAB imresize(x, 0.5) (tests/_reference.py) against the 20 m cells
    coarse = read_scene(shared_data / "reykjavik_cell_RR.mat").coarse()
    estimates = {
        "skipnetpanshapen_r": read_estimate(shared_data / "paper_outputs" / "skipnetpanshapen_r.mat"),
        "bicubic": independent.imresize(coarse, 2),
    }
    for name, estimate in estimates.items():
        expected = np.mean(independent.sre(coarse, independent.imresize(estimate, 0.5)))
        got = document["full_resolution"][name]["consistency_mean_sre"]
        assert got == pytest.approx(expected, abs=1e-3), name
        assert f"| {name} | {got:.2f} |" in done.stdout
    ours = document["full_resolution"]["skipnetpanshapen_r"]
    assert set(ours) >= {"consistency_q2n", "d_lambda_khan", "d_lambda", "d_s", "qnr", "hqnr", "d_rho"}
    assert [p.name for p in tmp_path.iterdir()] == ["fr.json"]
    # the full Coastal scene has no reference at all
    done = run_cli("evaluate", "--method", "bicubic", "--scene", shared_data / "CoastalA_cell.mat")
    assert done.returncode == 0, done.stderr
    assert "| bicubic |" in done.stdout


def test_full_resolution_errors(run_cli, shared_data, tmp_path):
    estimate = shared_data / "paper_outputs" / "skipnetpanshapen_c.mat"
    _assert_one_line_error(run_cli("evaluate", estimate, "--scene", shared_data / "reykjavik_cell_RR.mat"),
                           "estimate is 204x204x6, but the scene's sharpened bands are 256x256x6")  # fmt: skip
    _assert_one_line_error(run_cli("evaluate", "--scene", shared_data / "reykjavik_cell_RR.mat"), "nothing to evaluate")
    _assert_one_line_error(
        run_cli("evaluate", estimate, "--scene", shared_data / "coastalA_cell_RR.mat", "--degradation", "gauss"),
        "unknown degradation 'gauss'",
    )
    _assert_one_line_error(
        run_cli("evaluate", estimate, "--scene", shared_data / "coastalA_cell_RR.mat", "-r",
                shared_data / "coastalA_cell_RR.mat"),
        "not both",
    )  # fmt: skip
