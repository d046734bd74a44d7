"""``ssc-edge infer`` end to end: shipped model, real scene, GeoTIFF streaming, and every bad input."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.io import read_estimate
from tests import _reference as independent
from tests.runtime._models import write_model

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "demo.onnx"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("m") / "small.onnx", blocks=2, width=8)


def _one_error_line(result: subprocess.CompletedProcess, pattern: str, *, libtiff_noise: bool = False) -> None:
    """Exit code 2 and one ``ssc-edge: error:`` line on stderr.

    ``libtiff_noise``: GDAL's bundled libtiff prints its own I/O diagnostics (``_tiffWriteProc: File too
    large.``) straight to the C stderr, outside Python's logging; those lines are allowed before ours.
    """
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    if libtiff_noise:
        lines = [line for line in lines if not line.startswith("_tiff")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ssc-edge: error: ")
    import re

    assert re.search(pattern, lines[0]), lines[0]


def _plain_run(model: Path, scene) -> np.ndarray:
    """Independent reference: the scene's whole (H, W, 10) input through a plain onnxruntime session, DN."""
    import onnxruntime as ort

    from ssc_edge.contract import ModelContract
    from ssc_edge.wald import model_input

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert contract.layout == "NHWC"
    x = model_input(scene.fine(), scene.coarse(), upsampling=contract.upsampling)[None] / np.float32(contract.scale)
    return session.run(None, {"bands": x})[0][0] * np.float32(contract.scale)


def _demo_md_mean_sre() -> tuple[float, float]:
    """(SSC-CNN, bicubic) mean SRE, dB, of the shipped model on the demo scene as models/demo.md records them."""
    text = (REPO / "models" / "demo.md").read_text()
    ours, bicubic = (float(re.search(rf"\| mean \| {name} \| ([\d.]+) \|", text)[1]) for name in ("SSC-CNN", "bicubic"))
    return ours, bicubic


def test_shipped_model_on_the_demo_scene_by_default(run_cli, tmp_path):
    """The shipped model sharpens the demo scene as models/demo.md records (SRE recomputed here, README formula)."""
    from ssc_edge.demo import demo_scene

    result = run_cli("infer", "-o", tmp_path / "demo.tif", "--provider", "cpu", "--quicklook", tmp_path / "q.png")
    assert result.returncode == 0, result.stderr
    assert "provider: cpu" in result.stdout
    scene = demo_scene()
    ours = np.mean(independent.sre(scene.reference, read_estimate(tmp_path / "demo.tif")))
    bicubic = np.mean(independent.sre(scene.reference, independent.imresize(scene.coarse(), 2)))
    assert (ours, bicubic) == pytest.approx(_demo_md_mean_sre(), abs=0.01)  # 33.99 and 22.35 dB when shipped
    assert ours > bicubic + 10
    assert (tmp_path / "q.png").stat().st_size > 0


def test_infer_reports_quality_against_the_reference_and_it_matches_the_file(run_cli, tmp_path):
    from ssc_edge.demo import demo_scene
    from ssc_edge.metrics import signal_to_reconstruction_error

    result = run_cli("infer", "-o", tmp_path / "demo.npz", "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    match = re.search(r"mean SRE ([\d.]+) dB.*\(bicubic: ([\d.]+) dB", result.stdout)
    assert match, result.stdout
    ours, bicubic = float(match[1]), float(match[2])
    # recomputed independently from the written product and a fresh demo scene
    reference = demo_scene().reference
    assert abs(np.mean(signal_to_reconstruction_error(reference, read_estimate(tmp_path / "demo.npz"))) - ours) < 0.01
    assert ours > bicubic + 5.0  # the shipped model really sharpens (33.99 vs 22.35 dB when shipped)


def test_shipped_model_on_a_real_scene(run_cli, tmp_path, shared_data):
    """Tiled equals a plain whole-image run; the printed scores are the product's; the warning says why they are low."""
    from ssc_edge.io import read_scene

    out, scene_path = tmp_path / "reykjavik.mat", shared_data / "reykjavik_cell_RR.mat"
    result = run_cli("infer", SHIPPED, scene_path, "-o", out, "--tile", "128", "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    scene, product = read_scene(scene_path), read_estimate(out)
    np.testing.assert_allclose(product, _plain_run(SHIPPED, scene), rtol=0, atol=0.05)  # DN, float32 rounding
    match = re.search(r"mean SRE ([\d.]+) dB.*\(bicubic: ([\d.]+) dB", result.stdout)
    assert match, result.stdout
    ours = np.mean(independent.sre(scene.reference, product))
    bicubic = np.mean(independent.sre(scene.reference, independent.imresize(scene.coarse(), 2)))
    assert (float(match[1]), float(match[2])) == pytest.approx((ours, bicubic), abs=0.006)
    # fitted on the synthetic demo scene, not this one: below bicubic here (15.96 vs 18.57 dB), and it says so
    assert ours < bicubic and "was fitted on synthetic-demo, not on" in result.stderr


def test_real_scene_end_to_end(run_cli, tmp_path, shared_data, model):
    out = tmp_path / "reykjavik.npz"
    result = run_cli(
        "infer",
        model,
        shared_data / "reykjavik_cell_RR.mat",
        "-o",
        out,
        "--provider",
        "cpu",
        "--tile",
        "100",
        "--batch",
        "2",
        "--threads",
        "1",
        "--quicklook",
        tmp_path / "q.png",
    )
    assert result.returncode == 0, result.stderr
    assert "provider: cpu" in result.stdout
    from ssc_edge.io import read_scene

    expected = _plain_run(model, read_scene(shared_data / "reykjavik_cell_RR.mat"))  # 9 tiles of 100 = one run
    np.testing.assert_allclose(read_estimate(out), expected, rtol=0, atol=1e-3)
    from PIL import Image

    with Image.open(tmp_path / "q.png") as image:
        assert image.format == "PNG" and image.width > 256


def test_geotiff_in_geotiff_out_is_streamed_and_matches_npz(run_cli, tmp_path, model):
    from tests.runtime.conftest import random_scene
    from tests.runtime.test_stream import write_scene_folder

    folder = write_scene_folder(tmp_path / "scene", random_scene(64, 48, seed=9))
    tif, npz = tmp_path / "o.tif", tmp_path / "o.npz"
    first = run_cli("infer", model, folder, "-o", tif, "--tile", "24", "--provider", "cpu")
    second = run_cli("infer", model, folder, "-o", npz, "--tile", "40", "--provider", "cpu", "--dtype", "uint16")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "streamed" in first.stdout
    # uint16 clips valid samples to 1..65535; no-data (0 DN in the scene) is NaN in both, read back
    assert np.array_equal(np.clip(np.rint(read_estimate(tif)), 1, 65535), read_estimate(npz), equal_nan=True)


def test_corrupt_model(run_cli, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    result = run_cli("infer", bad, "-o", tmp_path / "o.npz")
    _one_error_line(result, r"bad\.onnx: not an ONNX model \(damaged protobuf: wire type 7\)")
    assert not (tmp_path / "o.npz").exists()


def test_tile_too_small(run_cli, tmp_path, model):
    result = run_cli("infer", model, "-o", tmp_path / "o.npz", "--tile", "8")
    _one_error_line(result, r"tile size 8 px is too small for the model's halo of 5 px")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tile", "0", r"tile must be a positive integer, got 0$"),
        ("--batch", "0", r"batch must be a positive integer, got 0$"),
        ("--threads", "0", r"threads must be a positive integer, got 0$"),
        ("--provider", "tpu", r"unknown execution provider 'tpu'; choose auto or one of tensorrt, cuda"),
        ("--precision", "fp8", r"unknown precision 'fp8'; choose one of auto, fp32, bf16, fp16, int8$"),
        ("--dtype", "int8", r"unknown output dtype 'int8'; choose one of float32, uint16$"),
    ],
)
def test_bad_run_or_output_option_is_one_line_before_any_work(run_cli, tmp_path, model, option, value, message):
    """The options are checked as values (RunOptions, OutputOptions) before a file is opened or claimed."""
    result = run_cli("infer", model, "-o", tmp_path / "o.npz", option, value)
    _one_error_line(result, message)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept(run_cli, tmp_path, model):
    out = tmp_path / "o.npz"
    out.write_bytes(b"keep")
    result = run_cli("infer", model, "-o", out)
    _one_error_line(result, r"o\.npz: output exists; pass --force to overwrite it")
    assert out.read_bytes() == b"keep"


def test_unavailable_provider(run_cli, tmp_path, model):
    result = run_cli("infer", model, "-o", tmp_path / "o.npz", "--provider", "coreml")
    _one_error_line(result, r"coreml .* is not available .*; available: .*cpu")


def test_scene_smaller_than_receptive_field(run_cli, tmp_path):
    deep = write_model(tmp_path / "deep.onnx", blocks=4, width=4)  # halo 9: needs 19 x 19 px
    result = run_cli("infer", deep, "-o", tmp_path / "o.npz", "--demo-size", "16")
    _one_error_line(result, r"16x16 px is smaller than the model's receptive field \(2 x halo 9 \+ 1 = 19 px")
    assert not (tmp_path / "o.npz").exists()


def _limit_file_size(limit: int = 64 * 1024) -> None:
    """In the child: files may not grow past ``limit`` bytes; exceeding it is an error (EFBIG), not a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("suffix", [".npz", ".tif"])
def test_full_disk_leaves_no_partial_output(ssc_edge_command, tmp_path, model, suffix):
    """Simulated with RLIMIT_FSIZE: every write past 64 KiB fails like a full disk."""
    from tests.runtime.conftest import random_scene
    from tests.runtime.test_stream import write_scene_folder

    folder = write_scene_folder(tmp_path / "scene", random_scene(256, 256, seed=10))
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = subprocess.run(
        [
            *ssc_edge_command,
            "infer",
            str(model),
            str(folder),
            "-o",
            str(outdir / f"o{suffix}"),
            "--provider",
            "cpu",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
        check=False,
    )
    _one_error_line(result, rf"o\{suffix}: cannot write", libtiff_noise=suffix == ".tif")
    assert list(outdir.iterdir()) == []


def test_missing_shipped_model_is_a_clear_error(tmp_path):
    """An install without the demo model (the package copied alone, as a wheel without models/ would be)."""
    import shutil

    shutil.copytree(REPO / "ssc_edge", tmp_path / "install" / "ssc_edge", ignore=shutil.ignore_patterns("*.pyc"))
    script = f"from ssc_edge.cli import main; main(['infer', '-o', {str(tmp_path / 'o.npz')!r}])"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "install")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    missing = re.escape(str(tmp_path / "install" / "models" / "demo.onnx"))
    _one_error_line(result, rf"no MODEL given and the shipped demo model is missing \(looked for {missing}\)")
    assert not (tmp_path / "o.npz").exists()


def test_quicklook_without_pillow_is_a_clear_error(tmp_path, model):
    script = (
        "import sys; sys.modules['PIL'] = None\n"
        "from ssc_edge.cli import main\n"
        f"main(['infer', {str(model)!r}, '-o', {str(tmp_path / 'o.npz')!r}, '--quicklook', "
        f"{str(tmp_path / 'q.png')!r}, '-q'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    _one_error_line(result, r"--quicklook needs Pillow: pip install 'ssc-edge\[quicklook\]'")
    assert not (tmp_path / "o.npz").exists()


def test_with_fine_npz_has_ten_bands(run_cli, tmp_path, model):
    out = tmp_path / "full.npz"
    result = run_cli("infer", model, "-o", out, "--with-fine", "--demo-size", "32", "-q")
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        names = [k for k in data.files if k.startswith("B")]
    assert names == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


_FULL_RESOLUTION = re.compile(
    r"full resolution, no reference \((\w+) degradation\): consistency SRE ([\d.]+) dB, "
    r"D_lambda\(K\) ([\d.]+), D_rho ([\d.]+), QNR ([\d.]+)"
)


@pytest.mark.parametrize("suffix", [".tif", ".npz"])
def test_full_resolution_summary_streamed_and_in_memory(run_cli, tmp_path, model, suffix):
    """The one-line no-reference summary, computed window by window while writing (streamed GeoTIFF too),
    equals the indexes of the written product scored as a whole."""
    from ssc_edge.io import read_scene
    from ssc_edge.quality import full_resolution_quality
    from tests.runtime.conftest import random_scene
    from tests.runtime.test_stream import write_scene_folder

    folder = write_scene_folder(tmp_path / "scene", random_scene(96, 80, seed=4))
    out = tmp_path / f"o{suffix}"
    result = run_cli("infer", model, folder, "-o", out, "--tile", "40", "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    assert ("streamed" in result.stdout) == (suffix == ".tif")
    match = _FULL_RESOLUTION.search(result.stdout)
    assert match, result.stdout
    scene = read_scene(folder)
    whole = full_resolution_quality(read_estimate(out), scene.fine(), scene.coarse(), degradation=match[1])
    printed = [float(v) for v in match.groups()[1:]]
    expected = [whole.consistency_mean_sre, whole.d_lambda_khan, whole.d_rho, whole.qnr]
    for got, want, precision in zip(printed, expected, (0.006, 6e-5, 6e-5, 6e-5), strict=True):
        assert got == pytest.approx(want, abs=precision)  # to the printed digits


def test_no_quality_skips_the_full_resolution_line(run_cli, tmp_path, model, shared_data):
    result = run_cli("infer", model, shared_data / "coastalA_cell_RR.mat", "-o", tmp_path / "o.npz", "--no-quality")
    assert result.returncode == 0, result.stderr
    assert "full resolution" not in result.stdout and "against the scene's reference" in result.stdout


@pytest.mark.parametrize("command", ["infer", "fit-and-export", "batch"])
def test_help_names_every_scene_format(run_cli, command):
    """A new user reading ``--help`` learns that SAFE products, their zips and JP2 band folders are inputs."""
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split()).replace("│", " ")
    text = " ".join(text.split())
    for name in ("SAFE", ".zip", "JP2", "GeoTIFF", ".mat", ".npz"):
        assert name in text, f"{command} --help does not name {name}"


def test_quality_line_names_the_models_estimated_pair(run_cli, tmp_path):
    """A model fitted with the default estimated pair: the no-reference line says so (not 'callable')."""
    from dataclasses import replace

    import onnx

    from ssc_edge import wald
    from ssc_edge.contract import ModelContract
    from tests.runtime._models import build_model

    proto = build_model()
    meta = {p.key: p.value for p in proto.metadata_props}
    pair = wald.PairModel(fine=(wald.Kernel("gaussian", 0.9),) * 4, coarse=(wald.Kernel("gaussian", 0.9),) * 6)
    contract = replace(
        ModelContract.from_metadata(meta),
        training={"degradation": "auto"},
        registration={"pair_model": pair.to_dict()},
    )
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, contract.to_metadata())
    model = tmp_path / "estimated.onnx"
    model.write_bytes(proto.SerializeToString())
    result = run_cli("infer", model, "-o", tmp_path / "out.npz")
    assert result.returncode == 0, result.stderr
    assert "full resolution, no reference (the model's estimated pair): consistency SRE" in result.stdout
    assert "callable" not in result.stdout + result.stderr


_COUNT_OPENS = """
import json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0]))
                 if event == "open" and str(args[0]).endswith(".onnx") else None)
from ssc_edge.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "opened": opened}))
"""


@pytest.mark.real_data
def test_each_model_file_is_read_once_even_when_the_gate_measures(tmp_path, model, shared_data):
    """``--precision auto`` with a 20 m and a 60 m model on the real crop: every open of a model file (Python's
    audit hook sees them all; the sessions get the bytes, never the path) is one per model, gate included."""
    import json

    sixty = write_model(tmp_path / "m60.onnx", sixty=True)
    crop = shared_data / "real" / "l1c_T31TDH_20150726_crop"
    args = ["infer", str(model), str(crop), "--model-60m", str(sixty), "-o", str(tmp_path / "o.tif"), "-q"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # nothing cached: measured where it can be
    completed = subprocess.run([sys.executable, "-c", _COUNT_OPENS, *args], capture_output=True, text=True,
                               timeout=300, check=False, env=env)  # fmt: skip
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), completed.stderr
    assert sorted(result["opened"]) == sorted([str(model), str(sixty)])
