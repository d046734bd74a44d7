"""``fit-and-export --bands`` and ``infer --model-60m``: the 60 m model and the 12-band product end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ssc_edge.bands import ALL_BANDS, VERY_COARSE_BANDS
from ssc_edge.demo import demo_scene
from ssc_edge.runtime import Sharpener

TINY = ["--epochs", "2", "--width", "8", "--skip-width", "4", "--stage-iterations", "0", "--no-keras"]


def test_bands_all_fits_both_models_and_infer_writes_the_12_band_product(run_cli, tmp_path):
    out = tmp_path / "m.onnx"
    result = run_cli("fit-and-export", "-o", out, "--demo-size", "120", *TINY, "--bands", "all", "--quiet")
    assert result.returncode == 0, result.stderr
    sixty = tmp_path / "m_60m.onnx"
    assert out.is_file() and sixty.is_file() and sixty.with_suffix(".json").is_file()
    assert sixty.with_suffix(".md").is_file() and "B01 B09" in result.stdout
    report = json.loads(sixty.with_suffix(".json").read_text())
    assert report["evaluation"]["kind"] == "60m-training-pair" and report["training_set_numbers"]
    assert "training-set numbers" in sixty.with_suffix(".md").read_text()
    contract = Sharpener(sixty, provider="cpu").contract
    assert contract.ratio == 6 and contract.output_bands == VERY_COARSE_BANDS and len(contract.input_bands) == 12
    # the default pair (auto): the 60 m bands' registration estimated at ratio 6, the pair's kernels and offsets
    assert contract.registration["estimate"]["ratio"] == 6
    assert [b["band"] for b in contract.registration["estimate"]["bands"]] == list(VERY_COARSE_BANDS)
    assert set(contract.registration["pair_model"]["kernels"]) == set(contract.input_bands)
    assert "registration of the 60 m bands" not in result.stdout  # the report holds it, not the console
    assert "scene: offset of the 60 m grid" in sixty.with_suffix(".md").read_text()
    # its layout timing ran on the training pair's input, not on a window of the scene (it said "0x0 window")
    assert report["export"]["sample_window"] == [] and "0x0" not in sixty.with_suffix(".md").read_text()
    assert "window of the scene at row" in out.with_suffix(".md").read_text()

    product = tmp_path / "all.npz"
    args = ("infer", out, "-o", product, "--model-60m", sixty, "--with-fine", "--demo-size", "120", "--provider", "cpu")
    result = run_cli(*args, "--tile", "40")
    assert result.returncode == 0, result.stderr
    assert f"120x120 px, {' '.join(ALL_BANDS)}, float32" in result.stdout  # B01..B12 without B10, in order
    with np.load(product) as data:
        assert set(ALL_BANDS) <= set(data.files) and "B10" not in data.files
        got = np.stack([data[b] for b in VERY_COARSE_BANDS], -1)
        b02 = data["B02"]
    scene = demo_scene(size=120)
    np.testing.assert_array_equal(b02, scene.bands["B02"])
    np.testing.assert_array_equal(got, Sharpener(sixty, provider="cpu", tile=512).sharpen(scene))


def test_bands_60m_on_placeholder_zeros_is_one_line_and_all_falls_back(run_cli, shared_data, tmp_path):
    scene = shared_data / "reykjavik_cell_RR.mat"
    result = run_cli("fit-and-export", scene, "-o", tmp_path / "m.onnx", *TINY, "--bands", "60m")
    assert result.returncode == 2 and "epoch" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"ssc-edge: error: {scene}: no usable 60 m bands (B01 and B09 missing or all-zero placeholders); "
        "fit the 20 m bands with --bands 20m"
    ]
    assert list(tmp_path.iterdir()) == []
    result = run_cli("fit-and-export", scene, "-o", tmp_path / "m.onnx", "--epochs", "1", *TINY[2:], "--bands", "all")
    assert result.returncode == 0, result.stderr
    assert "note: " in result.stderr and "no usable 60 m bands" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.md", "m.onnx"]


def test_unknown_band_set_is_one_line(run_cli, tmp_path):
    result = run_cli("fit-and-export", "-o", tmp_path / "m.onnx", "--demo-size", "64", *TINY, "--bands", "10m")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["ssc-edge: error: --bands must be one of all, 20m, 60m, got '10m'"]
