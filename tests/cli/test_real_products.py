"""Real Sentinel-2 products end to end through the installed command: SAFE folder, its zip, JP2 band folder.

The SAFE product is assembled from the real L2A metadata and the real L1C crop (``tests/io/real_safe.py``);
its pixels carry the +1000 DN offset of baseline 04.00, so its DN after conversion are the crop's own and
sharpening the SAFE must give exactly what sharpening the crop's JP2 band folder gives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.io import read_estimate
from ssc_edge.io.sources import scene_identity
from tests.cli.test_infer_cli import _limit_file_size, _one_error_line
from tests.io.real_safe import build_real_safe, crop_folder, write_lossless_jp2
from tests.runtime._models import write_model

pytest.importorskip("rasterio")

FIT = ["--epochs", "1", "--width", "8", "--skip-width", "4", "--stage-iterations", "0", "--no-keras", "--quiet"]


@pytest.fixture(scope="module")
def safe(shared_data, tmp_path_factory) -> Path:
    return build_real_safe(shared_data, tmp_path_factory.mktemp("safe"))


@pytest.fixture(scope="module")
def safe_zip(safe) -> Path:
    archive = safe.parent / f"{safe.stem}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(safe.rglob("*")):
            zf.write(file, file.relative_to(safe.parent).as_posix())
    return archive


@pytest.fixture(scope="module")
def safe_model(safe, ssc_edge_command, tmp_path_factory) -> Path:
    """``fit-and-export`` on the real SAFE folder (1 epoch: a pipeline check, not a quality figure)."""
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("fit") / "safe.onnx"
    result = subprocess.run([*ssc_edge_command, "fit-and-export", str(safe), "-o", str(out), *FIT],
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    """A small valid model that records a scene fitted elsewhere (``elsewhere``, sha256 0...0)."""
    import onnx

    path = write_model(tmp_path_factory.mktemp("m") / "plain.onnx", blocks=2, width=8)
    model = onnx.load(path)
    for key, value in (("ssc_edge.scene_name", "elsewhere"), ("ssc_edge.scene_sha256", "0" * 64)):
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)
    return path


def test_a_model_fitted_on_another_scene_gives_one_warning_line(run_cli, plain_model, shared_data, tmp_path):
    for out in (tmp_path / "o.tif", tmp_path / "o.npz"):  # streamed and in-memory paths
        result = run_cli("infer", plain_model, crop_folder(shared_data), "-o", out, "--provider", "cpu", "-q")
        assert result.returncode == 0, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"warning: {plain_model} was fitted on elsewhere"), lines
        assert f"ssc-edge fit-and-export {crop_folder(shared_data)}" in lines[0]
        assert out.is_file()


@pytest.mark.slow
def test_fit_and_export_on_a_safe_folder_records_its_identity(safe, safe_model):
    report = json.loads(safe_model.with_suffix(".json").read_text())
    assert report["scene_sha256"] == scene_identity(safe)
    assert report["scene"] == safe.stem
    assert report["fit"]["epochs"] == 1


@pytest.mark.slow
def test_infer_streams_the_safe_its_zip_and_the_jp2_folder_to_one_product(
    run_cli, safe, safe_zip, safe_model, shared_data, tmp_path
):
    outputs = {}
    for name, scene in (("safe", safe), ("zip", safe_zip), ("jp2", crop_folder(shared_data))):
        out = tmp_path / f"{name}.tif"
        result = run_cli("infer", safe_model, scene, "-o", out, "--provider", "cpu", "--tile", "128", "-q")
        assert result.returncode == 0, result.stderr
        assert "streamed" in result.stdout
        warnings = [line for line in result.stderr.splitlines() if "was fitted on" in line]
        if name == "jp2":  # another scene (no +1000 offset in its files): one warning line naming the fit
            assert len(warnings) == 1 and safe.stem in warnings[0] and "ssc-edge fit-and-export" in warnings[0]
        else:  # the SAFE and its zip share one identity: the model's own scene
            assert warnings == [], result.stderr
        outputs[name] = read_estimate(out)
    assert outputs["safe"].shape == (300, 300, 6)
    np.testing.assert_array_equal(outputs["safe"], outputs["zip"])
    np.testing.assert_array_equal(outputs["safe"], outputs["jp2"])
    # the in-memory path (an .npz output reads the scene whole) gives the same numbers
    result = run_cli("infer", safe_model, safe, "-o", tmp_path / "m.npz", "--provider", "cpu", "--tile", "128", "-q")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_estimate(tmp_path / "m.npz"), outputs["safe"])


@pytest.mark.slow
def test_fit_and_export_on_the_jp2_band_folder(run_cli, shared_data, tmp_path):
    pytest.importorskip("tensorflow")
    folder = crop_folder(shared_data)
    out = tmp_path / "jp2.onnx"
    result = run_cli("fit-and-export", folder, "-o", out, *FIT, timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["scene_sha256"] == scene_identity(folder)
    infer = run_cli("infer", out, folder, "-o", tmp_path / "o.tif", "--provider", "cpu", "-q")
    assert infer.returncode == 0, infer.stderr
    assert "was fitted on" not in infer.stderr


def test_info_on_safe_zip_and_jp2_folder(run_cli, safe, safe_zip, shared_data):
    for scene, kind in ((safe, "safe"), (safe_zip, "safe"), (crop_folder(shared_data), "band-folder")):
        result = run_cli("info", scene, "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["shape"] == [300, 300] and summary["format"] == kind
        assert summary["identity"] == scene_identity(scene)
        assert summary["bands"]["B05"]["shape"] == [150, 150]
    crop = json.loads(run_cli("info", crop_folder(shared_data), "--json").stdout)
    in_safe = json.loads(run_cli("info", safe, "--json").stdout)
    assert crop["bands"]["B8A"] == in_safe["bands"]["B8A"]  # same DN after the SAFE's offset


@pytest.mark.slow
def test_batch_infer_on_safe_zip_and_jp2_folder(run_cli, safe, safe_zip, safe_model, shared_data, tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copytree(crop_folder(shared_data), scenes / "granule")  # a band folder inside a folder of scenes
    shutil.copy(safe_zip, scenes / "zipped.zip")  # the SAFE's zip under another name (one output per name)
    out = tmp_path / "out"
    result = run_cli("batch", safe, scenes, "--out", out, "--model", safe_model, "--workers", "1",
                     "--format", "npz", timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "batch.json").read_text())
    assert manifest["summary"]["done"] == 3, manifest
    by_name = {Path(r["source"]).name: r for r in manifest["scenes"]}
    assert (
        "warning" in by_name["granule"]
        and "warning" not in by_name[safe.name]
        and "warning" not in by_name["zipped.zip"]
    )
    assert sum("was fitted on" in line for line in result.stderr.splitlines()) == 1
    np.testing.assert_array_equal(
        read_estimate(out / "granule_sharpened.npz"), read_estimate(Path(by_name[safe.name]["output"]))
    )


@pytest.mark.slow
def test_batch_fit_and_infer_on_a_safe(run_cli, safe, tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    result = run_cli("batch", safe, "--out", out, "--mode", "fit-and-infer", "--epochs", "1", "--workers", "1",
                     "--stage-iterations", "0", "--format", "npz", timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "batch.json").read_text())
    assert manifest["summary"]["done"] == 1, manifest
    model = out / "models" / f"{safe.stem}_sharpened.onnx"
    report = json.loads(model.with_suffix(".json").read_text())
    assert report["scene_sha256"] == scene_identity(safe)
    assert report["config"]["stage_iterations"] == 0 and report["fit"]["full_resolution_stage"] is None


# -- bad input: one line, exit 2, no partial output (the model's scene warning never adds a line) -----


def test_safe_whose_band_files_are_missing(run_cli, shared_data, tmp_path, plain_model):
    """The real product as published (TREE.txt): R60m JP2s present, the 10 m and 20 m band files absent."""
    product = build_real_safe(shared_data, tmp_path / "in", with_bands=False)
    out = tmp_path / "out"
    out.mkdir()
    pattern = r"\.SAFE: band B02 file .*R10m/T29UNU_20221005T115411_B02_10m\.jp2 is missing \(and the files of B03,"
    for args in (("info", product),
                 ("infer", plain_model, product, "-o", out / "o.tif", "--provider", "cpu"),
                 ("fit-and-export", product, "-o", out / "m.onnx", *FIT)):  # fmt: skip
        _one_error_line(run_cli(*args), pattern)
    assert list(out.iterdir()) == []


def _write_band_folder(folder: Path, like: Path, size: int, value: int) -> Path:
    """A JP2 band folder of ``size`` x ``size`` px at 10 m, every pixel ``value`` DN, georeferenced like ``like``."""
    for band, res in (("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10),
                      ("B05", 20), ("B06", 20), ("B07", 20), ("B8A", 20), ("B11", 20), ("B12", 20)):  # fmt: skip
        side = size * 10 // res
        write_lossless_jp2(folder / f"T31TDH_20150726T105026_{band}.jp2", np.full((side, side), value, np.uint16),
                           like / f"T31TDH_20150726T105026_{band}.jp2")  # fmt: skip
    return folder


def test_a_scene_that_is_all_nodata(run_cli, shared_data, tmp_path, plain_model):
    folder = _write_band_folder(tmp_path / "nodata", crop_folder(shared_data), 64, 0)
    out = tmp_path / "out"
    out.mkdir()
    _one_error_line(run_cli("infer", plain_model, folder, "-o", out / "o.tif", "--provider", "cpu"),
                    r"nodata: band B05 is all no-data \(every pixel 0 DN\)")  # fmt: skip
    _one_error_line(run_cli("infer", plain_model, folder, "-o", out / "o.npz", "--provider", "cpu"),
                    r"nodata: missing band|nodata: band B0\d is all zeros")  # fmt: skip
    _one_error_line(
        run_cli("fit-and-export", folder, "-o", out / "m.onnx", *FIT), r"nodata: band B0\d is all (zeros|no-data)"
    )
    assert list(out.iterdir()) == []


def test_a_scene_too_small_for_one_patch(run_cli, shared_data, tmp_path, plain_model):
    folder = _write_band_folder(tmp_path / "small", crop_folder(shared_data), 8, 1200)
    out = tmp_path / "out"
    out.mkdir()
    _one_error_line(run_cli("fit-and-export", folder, "-o", out / "m.onnx", *FIT), r"at least 32x32 px")
    _one_error_line(run_cli("infer", plain_model, folder, "-o", out / "o.tif", "--provider", "cpu"),
                    r"small of 8x8 px is smaller than the model's receptive field")  # fmt: skip
    assert list(out.iterdir()) == []


def test_two_files_claiming_one_band(run_cli, shared_data, tmp_path, plain_model):
    folder = tmp_path / "twice"
    shutil.copytree(crop_folder(shared_data), folder)
    shutil.copy(folder / "T31TDH_20150726T105026_B11.jp2", folder / "T31TDH_20150726T105026_B11_20m.jp2")
    out = tmp_path / "out"
    out.mkdir()
    pattern = r"twice: band B11 is in both T31TDH_20150726T105026_B11\.jp2 and T31TDH_20150726T105026_B11_20m\.jp2"
    for args in (("info", folder),
                 ("infer", plain_model, folder, "-o", out / "o.tif", "--provider", "cpu"),
                 ("fit-and-export", folder, "-o", out / "m.onnx", *FIT)):  # fmt: skip
        _one_error_line(run_cli(*args), pattern)
    assert list(out.iterdir()) == []


def test_disk_full_while_streaming_a_safe(ssc_edge_command, safe, tmp_path):
    """The disk fills mid-run, after the checks: a model recording no scene, so the only line is the error."""
    model = write_model(tmp_path / "m.onnx", blocks=2, width=8)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([*ssc_edge_command, "infer", str(model), str(safe), "-o", str(out / "o.tif"),
                             "--provider", "cpu", "-q"], capture_output=True, text=True, timeout=300,
                            preexec_fn=_limit_file_size, check=False)  # fmt: skip
    _one_error_line(result, r"o\.tif: cannot write", libtiff_noise=True)
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_disk_full_while_the_model_is_written(ssc_edge_command, shared_data, tmp_path):
    """RLIMIT_FSIZE of 20 KiB: the JP2 crop's report (about 12 and 4 KiB) fits, the ONNX model (30 KiB) does not."""
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([*ssc_edge_command, "fit-and-export", str(crop_folder(shared_data)), "-o",
                             str(out / "m.onnx"), *FIT], capture_output=True, text=True, timeout=900,
                            preexec_fn=lambda: _limit_file_size(20 * 1024), check=False)  # fmt: skip
    _one_error_line(result, r"m\.onnx: cannot write \(File too large\)")
    assert list(out.iterdir()) == []  # neither the model nor its report, nor a temporary file
