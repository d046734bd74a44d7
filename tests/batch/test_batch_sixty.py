"""``batch --model-60m --with-fine``: the 12-band product for many scenes, equal to ``infer``'s bit for bit.

Real small ONNX models (``tests/runtime/_models.py``: a 20 m model and a 60 m model) run by onnxruntime on
the CPU; scenes are band folders (single-band GeoTIFFs named by band: streamed window by window) and
``.npz`` files (read and written whole). The reference is the library call ``ssc-edge infer`` makes
(:func:`ssc_edge.runtime.infer.sharpen_file`) with the same models and options.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.batch import BatchConfig, read_manifest, run_batch
from ssc_edge.batch.manifest import sha256_file
from ssc_edge.errors import ModelError, OptionError
from ssc_edge.scene import GeoReference

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("onnx")

from ssc_edge.io.geotiff import write_geotiff  # noqa: E402  (needs rasterio)
from ssc_edge.runtime.infer import sharpen_file  # noqa: E402
from ssc_edge.runtime.options import OutputOptions, RunOptions  # noqa: E402
from tests.runtime._models import write_model  # noqa: E402

GEOREF = GeoReference((10.0, 0.0, 399960.0, 0.0, -10.0, 7200000.0), "EPSG:32627")

#: The 12-band product: B01..B12 without B10, canonical order.
TWELVE = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
assert TWELVE == tuple(ALL_BANDS)

#: Window side for batch and infer alike: several windows per scene (the models' halo is 7 and 5 px).
TILE = 30

#: The options batch and infer share in these tests.
OPTIONS = {"provider": "cpu", "precision": "fp32", "tile": TILE}


def _bands(height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Textured whole-DN bands on the 10, 20 and 60 m grids (1..6000: no 0 DN no-data)."""
    rng = np.random.default_rng(seed)
    ratios = {b: 6 if b in VERY_COARSE_BANDS else 2 if b in COARSE_BANDS else 1 for b in ALL_BANDS}
    return {b: np.rint(rng.uniform(1, 6000, (height // r, width // r))).astype(np.float32) for b, r in ratios.items()}


def band_folder(folder: Path, *, seed: int, height: int = 72, width: int = 60) -> Path:
    """A scene as a folder of single-band GeoTIFFs named by band (streamed by batch and infer)."""
    folder.mkdir(parents=True)
    for band, values in _bands(height, width, seed).items():
        factor = height // values.shape[0]
        georef = GEOREF.scaled(factor) if factor > 1 else GEOREF
        write_geotiff(folder / f"T27WVM_{band}.tif", values[..., None], band_names=(band,), georef=georef,
                      dtype="uint16")  # fmt: skip
    return folder


def npz_scene(path: Path, *, seed: int, height: int = 72, width: int = 60) -> Path:
    """A scene as one ``.npz`` with every band (read whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **_bands(height, width, seed))
    return path


@pytest.fixture(scope="module")
def twenty(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("m20") / "m.onnx", blocks=3, width=8, seed=6)


@pytest.fixture(scope="module")
def sixty(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("m60") / "m_60m.onnx", blocks=2, width=8, seed=5, sixty=True)


def _tif(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    with rasterio.open(path) as dataset:
        return np.moveaxis(dataset.read(), 0, -1), tuple(dataset.descriptions)


def _npz(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with np.load(path) as saved:
        return list(saved.files), {name: saved[name] for name in saved.files}


def test_batch_writes_the_12_band_product_of_infer_bit_for_bit_streamed(tmp_path, twenty, sixty):
    scenes = [band_folder(tmp_path / "in" / name, seed=seed) for seed, name in enumerate(("s1", "s2"))]
    config = BatchConfig(mode="infer", model=twenty, model_60m=sixty, with_fine=True, in_process=True, **OPTIONS)
    result = run_batch([tmp_path / "in"], tmp_path / "out", config)
    assert [r["status"] for r in result.records] == ["done", "done"], [r.get("error") for r in result.records]
    for scene, record in zip(scenes, result.records, strict=True):
        reference = sharpen_file(twenty, scene, tmp_path / f"{scene.name}_infer.tif", run=RunOptions(**OPTIONS),
                                 out=OutputOptions(with_fine=True), model_60m=sixty)  # fmt: skip
        assert reference.streamed and reference.band_names == TWELVE
        got, names = _tif(Path(record["output"]))
        expected, expected_names = _tif(reference.output)
        assert names == expected_names == TWELVE and got.shape == (72, 60, 12)
        assert np.array_equal(got, expected), f"max difference {np.nanmax(np.abs(got - expected))}"
        by_name = dict(zip(names, np.moveaxis(got, -1, 0), strict=True))
        for band in FINE_BANDS:  # the 10 m bands as read
            with rasterio.open(scene / f"T27WVM_{band}.tif") as fine:
                assert np.array_equal(by_name[band], fine.read(1).astype(np.float32)), band
        assert "stream" in record["seconds"]  # streamed window by window, as infer did
        assert record["band_names"] == list(TWELVE) and record["with_fine"] is True
        assert record["model_60m"] == str(sixty) and record["model_60m_sha256"] == sha256_file(sixty)
        assert record["model_sha256"] == sha256_file(twenty)
        assert record["metrics"]["consistency_sre_db"].keys() == set(COARSE_BANDS)  # the 20 m model's bands
        report = json.loads(Path(record["report"]).read_text())
        assert report["model_60m_sha256"] == sha256_file(sixty) and report["band_names"] == list(TWELVE)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["model_60m_sha256"] == sha256_file(sixty)
    assert manifest["config"]["model_60m"] == str(sixty) and manifest["config"]["with_fine"] is True


@pytest.mark.parametrize(("with_fine", "bands"), [(True, TWELVE), (False, COARSE_BANDS + VERY_COARSE_BANDS)])
def test_batch_in_memory_outputs_equal_infer_in_memory(tmp_path, twenty, sixty, with_fine, bands):
    """``.npz`` scenes and outputs (read and written whole): same arrays, same band order as ``infer``."""
    scenes = [npz_scene(tmp_path / "in" / f"{name}.npz", seed=seed + 7) for seed, name in enumerate(("a", "b"))]
    config = BatchConfig(mode="infer", model=twenty, model_60m=sixty, with_fine=with_fine, output_format="npz",
                         in_process=True, **OPTIONS)  # fmt: skip
    result = run_batch([tmp_path / "in"], tmp_path / "out", config)
    assert [r["status"] for r in result.records] == ["done", "done"], [r.get("error") for r in result.records]
    for scene, record in zip(scenes, result.records, strict=True):
        reference = sharpen_file(twenty, scene, tmp_path / f"{scene.stem}_infer.npz", run=RunOptions(**OPTIONS),
                                 out=OutputOptions(with_fine=with_fine), model_60m=sixty)  # fmt: skip
        assert not reference.streamed and reference.band_names == bands
        got_names, got = _npz(Path(record["output"]))
        expected_names, expected = _npz(reference.output)
        assert got_names == expected_names == list(bands) and "sharpen" in record["seconds"]  # read whole
        for name in bands:
            assert np.array_equal(got[name], expected[name]), name
        assert record["band_names"] == list(bands)


def test_cli_batch_with_model_60m_on_two_workers_equals_infer(tmp_path, run_cli, twenty, sixty):
    scenes = [band_folder(tmp_path / "in" / name, seed=seed + 3) for seed, name in enumerate(("p", "q"))]
    out = tmp_path / "out"
    completed = run_cli("batch", tmp_path / "in", "--out", out, "--model", twenty, "--model-60m", sixty,
                        "--with-fine", "--workers", 2, "--precision", "fp32", "--tile", TILE, "-q")  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "2 done (0 from an earlier run), 0 failed" in completed.stdout
    for scene in scenes:
        reference = sharpen_file(twenty, scene, tmp_path / f"{scene.name}.tif", run=RunOptions(**OPTIONS),
                                 out=OutputOptions(with_fine=True), model_60m=sixty)  # fmt: skip
        got, names = _tif(out / f"{scene.name}_sharpened.tif")
        expected, _ = _tif(reference.output)
        assert names == TWELVE and np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("twenty", "twenty", "{twenty}: is a 20 m model (outputs B05 B06 B07 B8A B11 B12), not a 60 m model; "
                             "pass it as MODEL"),
        ("sixty", "sixty", "{sixty}: is a 60 m model (outputs B01 B09); pass it as --model-60m"),
        ("sixty", None, "{sixty}: is a 60 m model (outputs B01 B09); pass it as --model-60m"),
    ],
    ids=["20m-model-as-model-60m", "60m-model-as-model", "60m-model-as-model-alone"],
)  # fmt: skip
def test_cli_refuses_a_model_in_the_wrong_place_in_one_line(tmp_path, run_cli, twenty, sixty, first, second,
                                                            message):  # fmt: skip
    models = {"twenty": twenty, "sixty": sixty}
    band_folder(tmp_path / "in" / "s", seed=1)
    out = tmp_path / "out"
    args = ["--model", models[first], *(["--model-60m", models[second]] if second else []), "--with-fine"]
    completed = run_cli("batch", tmp_path / "in", "--out", out, *args)
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssc-edge: error: " + message.format(twenty=twenty, sixty=sixty))
    assert not out.exists()


def test_rerun_reuses_finished_scenes_only_with_the_same_60m_model(tmp_path, twenty, sixty):
    for seed, name in enumerate(("a", "b")):
        npz_scene(tmp_path / "in" / f"{name}.npz", seed=seed)
    out = tmp_path / "out"

    def run(model_60m: Path | None, *, with_fine: bool = True):
        config = BatchConfig(mode="infer", model=twenty, model_60m=model_60m, with_fine=with_fine,
                             output_format="npz", in_process=True, **OPTIONS)  # fmt: skip
        result = run_batch([tmp_path / "in"], out, config)
        assert result.count("done") == 2
        return result

    first = run(sixty)
    assert first.count("skipped") == 0
    assert run(sixty).count("skipped") == 2  # same models: reused
    other = write_model(tmp_path / "other_60m.onnx", blocks=2, width=8, seed=11, sixty=True)
    changed = run(other)
    assert changed.count("skipped") == 0  # another 60 m model: both sharpened again
    assert all(r["model_60m_sha256"] == sha256_file(other) for r in changed.records)
    names, arrays = _npz(out / "a_sharpened.npz")
    assert names == list(TWELVE) and arrays["B01"].shape == (72, 60)
    assert run(other).count("skipped") == 2
    assert run(None).count("skipped") == 0  # no 60 m model now: a 10-band product, sharpened again
    assert _npz(out / "a_sharpened.npz")[0] == [b for b in ALL_BANDS if b not in VERY_COARSE_BANDS]
    assert run(None, with_fine=False).count("skipped") == 0  # another product: sharpened again
    assert _npz(out / "a_sharpened.npz")[0] == list(COARSE_BANDS)
    assert run(None, with_fine=False).count("skipped") == 2


def test_config_refusals(tmp_path, twenty, sixty):
    with pytest.raises(OptionError, match=r"^--model-60m needs mode infer and --model"):
        BatchConfig(mode="fit-and-infer", model_60m=sixty)
    with pytest.raises(OptionError, match=r"no-such_60m\.onnx: no such model file$"):
        BatchConfig(mode="infer", model=twenty, model_60m=tmp_path / "no-such_60m.onnx")
    with pytest.raises(OptionError, match=r"^--split cuts scenes for one 20 m model; drop --split or --model-60m$"):
        BatchConfig(mode="infer", model=twenty, model_60m=sixty, split=2)
    with pytest.raises(OptionError, match=r"^with_fine must be true or false"):
        BatchConfig(mode="infer", model=twenty, with_fine="yes")


def test_library_refuses_swapped_models_before_writing(tmp_path, twenty, sixty):
    band_folder(tmp_path / "in" / "s", seed=2)
    out = tmp_path / "out"
    config = BatchConfig(mode="infer", model=sixty, model_60m=twenty, in_process=True, **OPTIONS)
    with pytest.raises(ModelError, match=r"m_60m\.onnx: is a 60 m model"):  # the first one named first
        run_batch([tmp_path / "in"], out, config)
    assert not out.exists()


@pytest.mark.slow
def test_ray_engine_runs_both_models_like_the_local_engine(tmp_path, twenty, sixty):
    """Each Ray actor holds both sessions (``worker_sharpener``); outputs equal the local engine's."""
    import importlib.util
    import logging

    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (the 'distributed' extra)")
    import ray

    for seed, name in enumerate(("a", "b")):
        band_folder(tmp_path / "in" / name, seed=seed + 20)
    options = {"mode": "infer", "model": twenty, "model_60m": sixty, "with_fine": True, "threads": 1, **OPTIONS}
    local = run_batch([tmp_path / "in"], tmp_path / "local", BatchConfig(**options, in_process=True))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        remote = run_batch([tmp_path / "in"], tmp_path / "ray", BatchConfig(**options, workers=2), engine="ray")
    finally:
        if started:
            ray.shutdown()
    assert [r["status"] for r in remote.records] == ["done", "done"], [r.get("error") for r in remote.records]
    for here, there in zip(local.records, remote.records, strict=True):
        got, names = _tif(Path(there["output"]))
        expected, _ = _tif(Path(here["output"]))
        assert names == TWELVE and np.array_equal(got, expected)
        assert there["model_60m_sha256"] == sha256_file(sixty) and "node" in there
