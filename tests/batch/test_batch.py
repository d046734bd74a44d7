"""The local batch engine: statuses, resume, refusals, manifest; the CLI's edge.

Most tests run the engine in-process (``in_process=True``) with a small real ONNX model (the runtime tests'
``write_model``: real onnxruntime, a few ms a scene), through the pipeline ``infer`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.batch import MANIFEST_NAME, BatchConfig, read_manifest, run_batch
from ssc_edge.batch.manifest import model_sha256, sha256_file
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError
from tests.runtime._models import write_model


@pytest.fixture()
def small_model(tmp_path) -> Path:
    """A small real ssc-edge ONNX model (halo 5, width 8)."""
    return write_model(tmp_path / "model.onnx")


def write_scene(path: Path, *, size: int = 32, seed: int = 0) -> Path:
    scene = demo_scene(size=size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{band: scene.bands[band] for band in FINE_BANDS + COARSE_BANDS})
    return path


def three_scenes(folder: Path) -> list[Path]:
    """Scenes a, b (corrupt) and c: b sorts in the middle."""
    a = write_scene(folder / "a.npz", seed=1)
    b = folder / "b.npz"
    b.write_bytes(b"PK\x03\x04 this is not an archive")
    c = write_scene(folder / "c.npz", seed=2)
    return [a, b, c]


def test_bad_scene_in_the_middle_then_resume(tmp_path, small_model):
    inputs = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    calls = []
    config = BatchConfig(mode="infer", model=small_model, output_format="npz", in_process=True)
    result = run_batch([tmp_path / "in"], out, config,
                       progress=lambda done, total, message="": calls.append((done, total, message)))  # fmt: skip
    statuses = {r["name"]: r["status"] for r in result.records}
    assert statuses == {"a_sharpened": "done", "b_sharpened": "failed", "c_sharpened": "done"}
    bad = result.records[1]
    assert str(inputs[1]) in bad["error"] and bad["error"].startswith("SceneReadError")
    assert not (out / "b_sharpened.npz").exists() and not (out / "b_sharpened.json").exists()
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert "(1 done, 1 failed)" in calls[1][2]

    manifest = read_manifest(out)
    assert manifest["summary"] == {"done": 2, "failed": 1, "pending": 0, "skipped": 0}
    assert manifest["config"]["mode"] == "infer" and manifest["model_sha256"] == sha256_file(small_model)
    done = manifest["scenes"][0]
    for key in ("source", "output", "report", "seconds", "metrics", "output_sha256", "model_sha256", "shape"):
        assert key in done, key
    assert done["output_sha256"] == sha256_file(out / "a_sharpened.npz")
    assert set(done["seconds"]) == {"read", "sharpen", "total"}
    assert set(done["metrics"]["consistency_sre_db"]) == set(COARSE_BANDS)
    assert json.loads((out / "a_sharpened.json").read_text())["output_sha256"] == done["output_sha256"]
    with np.load(out / "a_sharpened.npz") as saved:
        assert sorted(saved.files) == sorted(COARSE_BANDS) and saved["B05"].shape == (32, 32)

    # Rerun: a and c are skipped (outputs intact), b is retried and still fails.
    again = run_batch([tmp_path / "in"], out, config)
    assert [r.get("skipped", False) for r in again.records] == [True, False, True]
    assert again.count("failed") == 1 and again.count("skipped") == 2

    # b repaired, a's output damaged: both are sharpened, c is still skipped.
    write_scene(inputs[1], seed=3)
    (out / "a_sharpened.npz").write_bytes(b"damaged")
    fixed = run_batch([tmp_path / "in"], out, config)
    assert [r["status"] for r in fixed.records] == ["done"] * 3
    assert [r.get("skipped", False) for r in fixed.records] == [False, False, True]
    assert read_manifest(out)["summary"]["done"] == 3


def test_scene_list_safe_product_and_missing_scene(tmp_path, small_model):
    from tests.io.test_safe import make_safe, zip_safe

    safe_zip = zip_safe(make_safe(tmp_path / "safe", "L2A"))
    write_scene(tmp_path / "in" / "a.npz")
    listing = tmp_path / "in" / "scenes.csv"
    listing.write_text(f"path,output\na.npz,sub/first.tif\nmissing.npz,\n{safe_zip},\n")
    # npz for the SAFE: a product to GeoTIFF is streamed through a real sharpener (test_band_folder_to_geotiff...)
    config = BatchConfig(mode="infer", model=small_model, in_process=True, output_format="npz")
    result = run_batch([listing], tmp_path / "out", config)
    first, missing, safe = result.records
    assert first["status"] == "done" and Path(first["output"]) == tmp_path / "out" / "sub" / "first.tif"
    assert missing["status"] == "failed" and "missing.npz: no such file" in missing["error"]
    assert safe["status"] == "done" and safe["name"] == f"{safe_zip.stem}_sharpened"
    assert safe["shape"] == [16, 16]


def test_refusals_before_any_work(tmp_path, small_model):
    config = BatchConfig(mode="infer", model=small_model, in_process=True)
    one, two = write_scene(tmp_path / "x" / "s.npz"), write_scene(tmp_path / "y" / "s.npz")
    with pytest.raises(OptionError, match=r"x/s\.npz and .*y/s\.npz both write .*s_sharpened\.tif"):
        run_batch([one, two], tmp_path / "out", config)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"path": str(one), "output": "../escape.tif"}]))
    with pytest.raises(OptionError, match=r"output '\.\./escape\.tif' escapes the output folder"):
        run_batch([listing], tmp_path / "out", config)
    listing.write_text(json.dumps([{"path": str(one), "output": "/tmp/abs.tif"}]))
    with pytest.raises(OptionError, match=r"escapes the output folder"):
        run_batch([listing], tmp_path / "out", config)
    with pytest.raises(OptionError, match=r"nope\.npz: no such input file or folder"):
        run_batch([tmp_path / "nope.npz"], tmp_path / "out", config)
    with pytest.raises(OptionError, match=r"unknown engine 'dask'; choose one of local, ray"):
        run_batch([one], tmp_path / "out", config, engine="dask")
    with pytest.raises(OptionError, match=r"--ray-address needs --engine ray"):
        run_batch([one], tmp_path / "out", config, ray_address="auto")
    with pytest.raises(OptionError, match=r"--retries needs --engine ray"):
        run_batch([one], tmp_path / "out", config, retries=1)
    with pytest.raises(OptionError, match=r"splitting scenes into row bands needs --engine ray"):
        run_batch([one], tmp_path / "out", BatchConfig(mode="infer", model=small_model, split=2))
    with pytest.raises(OptionError, match=r"splitting scenes into row bands needs mode infer"):
        BatchConfig(mode="fit-and-infer", split=2)
    with pytest.raises(OptionError, match=r"split must be a positive integer \(row bands per scene\), got 0"):
        BatchConfig(mode="infer", model=small_model, split=0)
    with pytest.raises(OptionError, match=r"threads must be a positive integer, got 0"):
        BatchConfig(mode="infer", model=small_model, threads=0)
    with pytest.raises(OptionError, match=r"mode infer needs a model"):
        BatchConfig(mode="infer")
    with pytest.raises(OptionError, match=r"workers must be a positive integer"):
        BatchConfig(mode="infer", model=small_model, workers=0)
    with pytest.raises(OptionError, match=r"unknown output dtype 'int8'; choose one of float32, uint16"):
        BatchConfig(mode="infer", model=small_model, dtype="int8")
    with pytest.raises(OptionError, match=r"unknown output format 'png'; choose one of tif, npz, mat"):
        BatchConfig(mode="infer", model=small_model, output_format="png")
    assert not (tmp_path / "out").exists()


def test_leftover_temporary_files_are_removed(tmp_path, small_model):
    scene = write_scene(tmp_path / "a.npz")
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".a_sharpened.tif.x1y2.tif"  # what a killed worker leaves from atomic_output
    leftover.write_bytes(b"half")
    result = run_batch([scene], out, BatchConfig(mode="infer", model=small_model, in_process=True))
    assert result.count("done") == 1 and not leftover.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, "a_sharpened.json", "a_sharpened.tif"])


def test_cli_refusals_exit_2(tmp_path, run_cli):
    scene = write_scene(tmp_path / "a.npz")
    completed = run_cli("batch", scene, "--out", tmp_path / "out", "--engine", "ray", "--split", 2)
    assert completed.returncode == 2
    assert "ssc-edge: error: splitting scenes into row bands needs mode infer" in completed.stderr
    assert not (tmp_path / "out").exists()


_POOL_SCRIPT = """
import os, sys, time
from pathlib import Path

import ssc_edge.runtime.infer as pipeline

sharpen_scene = pipeline.sharpen_scene


def dying_on_kill(sharpener, source, output, **options):  # every spawned worker reruns this module
    if source.name == "kill":
        os._exit(9)  # the worker dies as if killed
    time.sleep(0.2)
    return sharpen_scene(sharpener, source, output, **options)


pipeline.sharpen_scene = dying_on_kill

if __name__ == "__main__":
    from ssc_edge.batch import BatchConfig, run_batch

    folder, out, model = map(Path, sys.argv[1:4])
    result = run_batch([folder], out, BatchConfig(mode="infer", model=model, workers=2, output_format="npz"))
    print(" ".join(record["status"] for record in result.records))
"""


def test_two_workers_and_a_killed_worker(tmp_path):
    import subprocess
    import sys

    for seed, name in enumerate(["a", "b", "kill", "d"]):
        write_scene(tmp_path / "in" / f"{name}.npz", seed=seed)
    write_model(tmp_path / "model.onnx")
    script = tmp_path / "pool_batch.py"
    script.write_text(_POOL_SCRIPT)
    args = [sys.executable, str(script), tmp_path / "in", tmp_path / "out", tmp_path / "model.onnx"]
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    completed = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["done", "done", "done", "failed"]  # a b d kill, sorted
    scenes = read_manifest(tmp_path / "out")["scenes"]
    assert scenes[3]["error"] == "worker process died (killed or out of memory)"
    assert len({s["pid"] for s in scenes[:3]}) >= 2  # two workers shared the scenes
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [MANIFEST_NAME] + [f"{n}_sharpened.{ext}" for n in "abd" for ext in ("npz", "json")]
    )


def test_two_workers_with_a_real_model(tmp_path, run_cli):
    model = write_model(tmp_path / "small.onnx")
    three_scenes(tmp_path / "in")
    completed = run_cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--model", model, "--workers", 2, "-q")
    assert completed.returncode == 1, completed.stderr
    assert "2 done (0 from an earlier run), 1 failed" in completed.stdout
    assert "failed: " in completed.stderr and "b.npz" in completed.stderr
    manifest = read_manifest(tmp_path / "out")
    assert [s["status"] for s in manifest["scenes"]] == ["done", "failed", "done"]


def test_infer_path_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, ssc_edge.batch, ssc_edge.cli.batch, ssc_edge.io.safe; "
            "sys.exit('tensorflow' in sys.modules)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0


def test_fit_and_infer_tiny(tmp_path):
    pytest.importorskip("tensorflow")
    scene = write_scene(tmp_path / "a.npz", size=64)  # the fit evaluation trains 2 scales down: 64 px at least
    tiny = {"batch_size": 16, "stage_iterations": 0, "model": {"blocks": 1, "width": 8, "skip_width": 4}}
    config = BatchConfig(mode="fit-and-infer", epochs=2, output_format="npz", fit_options=tiny, in_process=True)
    result = run_batch([scene], tmp_path / "out", config)
    record = result.records[0]
    assert record["status"] == "done", record.get("error")
    assert Path(record["model"]) == tmp_path / "out" / "models" / "a_sharpened.onnx"
    assert {"fit", "sharpen"} <= set(record["seconds"]) and "fit_mean_sre_db" in record["metrics"]


def test_band_folders_are_scenes_alone_and_inside_folders_of_scenes(tmp_path, shared_data):
    """A granule's JP2 band files (real crop) are one scene, given directly or inside a folder of scenes."""
    import shutil

    from ssc_edge.batch.manifest import collect_scenes

    crop = shared_data / "real" / "l1c_T31TDH_20150726_crop"
    assert collect_scenes([crop]) == [(crop, None)]
    scenes = tmp_path / "scenes"
    shutil.copytree(crop, scenes / "T31TDH")
    write_scene(scenes / "a.npz")
    (scenes / "notes").mkdir()  # a folder naming no band: not a scene
    (scenes / "notes" / "readme.txt").write_text("x")
    assert collect_scenes([scenes]) == [(scenes / "T31TDH", None), (scenes / "a.npz", None)]


def test_batch_records_full_resolution_indexes(tmp_path, small_model):
    """Each scene's metrics hold every no-reference index, equal to scoring its written output whole."""
    from ssc_edge.io import read_estimate, read_scene
    from ssc_edge.quality import full_resolution_quality

    scene_path = write_scene(tmp_path / "in" / "s.npz", size=64, seed=3)
    config = BatchConfig(mode="infer", model=small_model, output_format="npz", in_process=True)
    result = run_batch([scene_path], tmp_path / "out", config)
    metrics = read_manifest(tmp_path / "out")["scenes"][0]["metrics"]
    recorded = metrics["full_resolution"]
    scene = read_scene(scene_path)
    expected = full_resolution_quality(
        read_estimate(tmp_path / "out" / "s_sharpened.npz"), scene.fine(), scene.coarse(), degradation="mtf"
    )  # the model's metadata names no degradation: the sensor's MTF
    assert result.records[0]["status"] == "done"
    for key in ("consistency_mean_sre", "consistency_q2n", "d_lambda_khan", "d_lambda", "d_s", "qnr", "d_rho"):
        assert recorded[key] == pytest.approx(getattr(expected, key), rel=1e-7), key  # float rounding
    assert metrics["mean_consistency_sre_db"] == pytest.approx(expected.consistency_mean_sre, rel=1e-7)


@pytest.mark.parametrize("mode", ["infer", "fit-and-infer"])
def test_band_folder_to_geotiff_streams_like_infer(tmp_path, shared_data, monkeypatch, mode):
    """A band folder (the real L1C crop's JP2 files) to GeoTIFF is never read whole: batch streams it as `infer`
    does, window by window, and writes the same product bit for bit."""
    import rasterio

    from ssc_edge.runtime.infer import sharpen_file
    from ssc_edge.runtime.options import RunOptions

    crop = shared_data / "real" / "l1c_T31TDH_20150726_crop"

    from ssc_edge.io.sources import RasterBandSource

    def refuse(source):
        raise AssertionError(f"{source.where} was read whole")

    monkeypatch.setattr(RasterBandSource, "to_scene", refuse)
    model = {"blocks": 1, "width": 8, "skip_width": 4}
    tiny = {"batch_size": 16, "patch_budget": 32, "stage_iterations": 0, "model": model}
    options = {"model": write_model(tmp_path / "small.onnx")} if mode == "infer" else {"epochs": 1, "fit_options": tiny}
    if mode == "fit-and-infer":
        pytest.importorskip("tensorflow")
    config = BatchConfig(mode=mode, output_format="tif", in_process=True, precision="fp32", **options)
    record = run_batch([crop], tmp_path / "out", config).records[0]
    assert record["status"] == "done", record.get("error")
    assert "stream" in record["seconds"] and "write" not in record["seconds"]
    assert record["metrics"]["full_resolution"] is not None and len(record["metrics"]["consistency_sre_db"]) == 6
    written = Path(record["output"])
    expected = sharpen_file(
        Path(record["model"]), crop, tmp_path / "infer.tif", run=RunOptions(threads=1, precision="fp32")
    )
    assert expected.streamed
    with rasterio.open(written) as a, rasterio.open(tmp_path / "infer.tif") as b:
        assert a.descriptions == b.descriptions and a.transform == b.transform and a.crs == b.crs
        np.testing.assert_array_equal(a.read(), b.read())
    assert tuple(record["shape"]) == expected.shape


def test_the_models_hash_is_its_bytes_and_follows_a_replaced_model(tmp_path):
    import hashlib
    import os

    model = tmp_path / "m.onnx"
    model.write_bytes(b"first model")
    assert model_sha256(model) == hashlib.sha256(b"first model").hexdigest()
    replacement = tmp_path / "new.onnx"
    replacement.write_bytes(b"second, longer model")
    os.replace(replacement, model)  # a new file at the same path: a new hash, not the remembered one
    assert model_sha256(model) == hashlib.sha256(b"second, longer model").hexdigest() == sha256_file(model)


def test_cli_batch_takes_provider_and_threads_as_infer_does(tmp_path, run_cli, small_model):
    scene = write_scene(tmp_path / "a.npz")
    refusals = (("--threads", 0, "threads must be a positive integer, got 0"),
                ("--provider", "tpu", "unknown execution provider 'tpu'; choose auto or one of"))  # fmt: skip
    for option, value, error in refusals:
        bad = run_cli("batch", scene, "--out", tmp_path / "bad", "--model", small_model, option, value)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
        assert bad.stderr.startswith(f"ssc-edge: error: {error}") and not (tmp_path / "bad").exists()
    args = ("--model", small_model, "--provider", "cpu", "--threads", 1, "--precision", "fp32", "--format", "npz")
    ok = run_cli("batch", scene, "--out", tmp_path / "out", *args, "-q")
    assert ok.returncode == 0, ok.stderr
    manifest = read_manifest(tmp_path / "out")
    assert (manifest["config"]["provider"], manifest["config"]["threads"]) == ("cpu", 1)
    (record,) = manifest["scenes"]
    assert record["status"] == "done" and record["precision"] == "fp32"
    expected = run_cli("infer", small_model, scene, "-o", tmp_path / "infer.npz", *args[2:8], "-q")
    assert expected.returncode == 0, expected.stderr
    with np.load(tmp_path / "out" / "a_sharpened.npz") as got, np.load(tmp_path / "infer.npz") as want:
        assert all(np.array_equal(got[b], want[b]) for b in COARSE_BANDS)  # the same pipeline, bit for bit
