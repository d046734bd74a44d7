"""``ssc-edge fit-and-export`` end to end through the installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

FAST = ["--demo-size", "64", "--epochs", "2", "--width", "8", "--skip-width", "4", "--no-keras"]
#: FAST without the full-resolution stage, for the tests about something else
FLAT = [*FAST, "--stage-iterations", "0"]


def test_fit_and_export_demo_end_to_end(run_cli, tmp_path):
    """The default fit, full-resolution stage included (the one CLI fit that runs it), then the refusal and --force."""
    out = tmp_path / "demo.onnx"
    result = run_cli("fit-and-export", "-o", out, *FAST, "--stage-iterations", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.with_suffix(".json").is_file() and out.with_suffix(".md").is_file()
    assert not out.with_suffix(".keras").exists()
    assert "mean SRE: SSC-CNN" in result.stdout and "bicubic" in result.stdout
    assert "+ full-resolution stage 5 steps" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["fit"]["epochs"] == 2 and report["config"]["model"]["width"] == 8
    assert report["config"]["stage_iterations"] == 5 and report["fit"]["full_resolution_stage"]["iterations"] == 5

    again = run_cli("fit-and-export", "-o", out, *FLAT)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [f"ssc-edge: error: {out}: output exists; pass --force to overwrite it"]
    assert run_cli("fit-and-export", "-o", out, *FLAT, "--force", "--quiet").returncode == 0


def test_progress_shows_the_loss(run_cli, tmp_path):
    result = run_cli("fit-and-export", "-o", tmp_path / "m.onnx", *FLAT)
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2" in result.stderr and "loss " in result.stderr


def test_unwritable_output_fails_before_training(run_cli, tmp_path):
    result = run_cli("fit-and-export", "-o", tmp_path / "missing" / "m.onnx", *FLAT)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "epoch" not in result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        result = run_cli("fit-and-export", "-o", locked / "m.onnx", *FLAT)
        assert result.returncode == 2 and "not writable" in result.stderr and "epoch" not in result.stderr


def test_bad_option_is_one_line(run_cli, tmp_path):
    result = run_cli("fit-and-export", "-o", tmp_path / "m.onnx", *FLAT, "--protocol", "cheat")
    assert result.returncode == 2
    expected = "ssc-edge: error: protocol must be one of ('heldout', 'paper'), got 'cheat'"
    assert result.stderr.strip().splitlines() == [expected]


def test_too_small_scene(run_cli, tmp_path):
    result = run_cli("fit-and-export", "-o", tmp_path / "m.onnx", *FAST[2:], "--demo-size", "24")
    assert result.returncode == 2
    assert "at least 32x32 px" in result.stderr and not (tmp_path / "m.onnx").exists()


def test_cli_import_does_not_load_tensorflow():
    code = "import sys, ssc_edge.cli; assert 'tensorflow' not in sys.modules and 'tf2onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
