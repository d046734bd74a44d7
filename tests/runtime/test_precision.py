"""--precision: auto's decision, the per-model quality gate and its cache, and the OpenVINO fast path.

The decision (:func:`choose`) is a pure function of what the machine offers, so it is tested on every
machine; the fast path (OpenVINO's own runtime, extra ``fast``) and bf16 need the package and a CPU with
AMX or AVX512-BF16 and skip with the reason elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, ProviderError
from ssc_edge.metrics import signal_to_reconstruction_error
from ssc_edge.runtime import Sharpener
from ssc_edge.runtime.hardware import cpu_flags, detected_flags, native_bf16
from ssc_edge.runtime.infer import default_model_path
from ssc_edge.runtime.openvino_backend import INSTALL_HINT, openvino_available
from ssc_edge.runtime.precision import (
    GATE_DB,
    Verdict,
    central_crop,
    choose,
    find_verdict,
    gate_loss,
    wald_gate_pair,
    wald_gate_scene,
)
from ssc_edge.runtime.providers import provider_options
from ssc_edge.runtime.session import open_model
from ssc_edge.runtime.sharpen import gate_measure, gate_metadata

from .conftest import random_scene

NATIVE = native_bf16(detected_flags())
needs_openvino = pytest.mark.skipif(not openvino_available(), reason=f"OpenVINO not installed ({INSTALL_HINT})")
needs_bf16 = pytest.mark.skipif(
    not (NATIVE and openvino_available()),
    reason=f"bf16 needs a CPU with amx_bf16 or avx512_bf16 (this one has neither) and OpenVINO ({INSTALL_HINT})",
)


def _never(precision, provider):
    raise AssertionError("the gate was consulted although the decision did not need it")


def _verdict(loss):
    return lambda precision, provider: Verdict(loss, "metadata")


# --- the decision, on every machine ------------------------------------------------------------------


def test_auto_takes_bf16_within_the_gate_on_a_native_cpu_with_openvino():
    choice = choose("auto", model_precision="fp32", openvino=True, flags={"avx512_bf16"}, verdict_for=_verdict(0.03))
    assert (choice.precision, choice.provider) == ("bf16", "openvino")
    assert "0.030 dB" in choice.reason and "avx512_bf16" in choice.reason and "within" in choice.reason
    amx = choose(
        "auto", model_precision="fp32", openvino=True, flags={"avx512_bf16", "amx_bf16"}, verdict_for=_verdict(0)
    )
    assert "amx_bf16" in amx.reason


def test_auto_never_takes_a_precision_above_the_gate():
    over = choose("auto", model_precision="fp32", openvino=True, flags={"amx_bf16"}, verdict_for=_verdict(0.1001))
    assert over.precision == "fp32" and "above the 0.1 dB gate" in over.reason
    at = choose("auto", model_precision="fp32", openvino=True, flags={"amx_bf16"}, verdict_for=_verdict(GATE_DB))
    assert at.precision == "bf16"  # the gate is inclusive, as optimize's


def test_auto_stays_fp32_without_native_bf16_or_openvino_and_says_why():
    plain = choose("auto", model_precision="fp32", openvino=True, flags={"avx2", "avx512f"}, verdict_for=_never)
    assert plain.precision == "fp32" and "neither AMX-BF16 nor AVX512-BF16" in plain.reason
    missing = choose("auto", model_precision="fp32", openvino=False, flags={"amx_bf16"}, verdict_for=_never)
    assert missing.precision == "fp32" and INSTALL_HINT in missing.reason
    cpu = choose("auto", model_precision="fp32", provider="cpu", openvino=True, flags={"amx_bf16"}, verdict_for=_never)
    assert cpu.precision == "fp32" and "no reduced-precision mode" in cpu.reason


def test_auto_without_a_known_loss_stays_fp32():
    choice = choose("auto", model_precision="fp32", openvino=True, flags={"amx_bf16"})
    assert choice.precision == "fp32" and "loss of this model is unknown" in choice.reason


def test_auto_on_a_gpu_uses_tensorrt_fp16_mode():
    choice = choose("auto", model_precision="fp32", available=("tensorrt", "cuda", "cpu"), verdict_for=_verdict(0.02))
    assert (choice.precision, choice.provider) == ("bf16", "tensorrt") and "TensorRT" in choice.reason


def test_auto_runs_an_optimized_model_in_its_own_precision():
    choice = choose("auto", model_precision="int8", model_loss_db=0.04, verdict_for=_never)
    assert choice.precision == "int8" and "0.040 dB" in choice.reason


def test_explicit_bf16_where_it_is_not_native_is_refused_with_the_reason():
    with pytest.raises(ProviderError, match=r"cannot run bf16: this CPU has neither AMX-BF16 nor AVX512-BF16"):
        choose("bf16", model_precision="fp32", openvino=True, flags={"avx2"})
    with pytest.raises(ProviderError, match=r"cannot run bf16: cuda has no reduced-precision mode"):
        choose("bf16", model_precision="fp32", provider="cuda", openvino=True, flags={"amx_bf16"})
    with pytest.raises(OptionError, match=r"unknown precision 'fp8'"):
        choose("fp8", model_precision="fp32")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    flags = cpu_flags(cpuinfo)
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= flags
    assert native_bf16(flags) == "amx_bf16" and native_bf16({"avx512_bf16"}) == "avx512_bf16"
    assert native_bf16({"avx2", "avx512f"}) is None
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_openvino_provider_options_carry_the_bf16_hint():
    """Option (a), onnxruntime's OpenVINO provider, gets the same hint through its load_config."""
    options = provider_options("openvino", bf16=True)
    assert json.loads(options["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}
    assert "load_config" not in provider_options("openvino")


# --- the gate -------------------------------------------------------------------------------------


def test_wald_gate_scene_is_the_central_crop_one_scale_down():
    scene = random_scene(300, 260, seed=3)
    crop = central_crop(scene, size=128)
    assert crop.shape == (128, 128)
    top, left = (300 - 128) // 2 // 2 * 2, (260 - 128) // 2 // 2 * 2
    assert np.array_equal(crop.bands["B02"], scene.bands["B02"][top : top + 128, left : left + 128])
    assert np.array_equal(crop.bands["B05"], scene.bands["B05"][top // 2 : top // 2 + 64, left // 2 : left // 2 + 64])

    contract = SimpleNamespace(training={"degradation": "bicubic"})
    pair = wald_gate_scene(scene, contract, size=64)  # crop of 128, pair of 64
    assert pair.shape == (64, 64)
    assert np.array_equal(pair.reference, crop.coarse())  # the target is the observed 20 m bands


def test_wald_gate_scene_of_an_auto_model_is_its_own_estimated_pair():
    # a model fitted with the default --degradation auto records "auto" and its estimated pair; the gate's
    # Wald pair must be that pair (it once raised "unknown degradation method 'auto'" on every scene without
    # a reference, i.e. every real product, on a machine with native bf16)
    from ssc_edge.wald import Kernel, PairModel, training_pair

    scene = random_scene(300, 260, seed=3)
    crop = central_crop(scene, size=128)
    model = PairModel(fine=(Kernel("gaussian", 0.9),) * 4, coarse=(Kernel("gaussian", 0.8),) * 6, offset=(0.5, -0.25))
    contract = SimpleNamespace(training={"degradation": "auto"}, registration={"pair_model": model.to_dict()})
    pair = wald_gate_scene(scene, contract, size=64)
    expected = training_pair(crop, model=model)  # fine inputs: the degraded 10 m bands; target: observed 20 m
    fine = np.stack([pair.bands[b] for b in ("B02", "B03", "B04", "B08")], axis=-1)
    np.testing.assert_allclose(fine, expected.inputs[..., 6:], rtol=1e-6)
    assert np.array_equal(pair.reference, expected.target)
    # the shifted pair differs from the nominal one, so the model's offset was applied
    nominal = wald_gate_scene(scene, SimpleNamespace(training={}), size=64)
    assert not np.allclose(pair.bands["B02"], nominal.bands["B02"])

    # "auto" without a 20 m pair model (a 60 m model's metadata) falls back to the sensor MTF, never raises
    sixty = SimpleNamespace(training={"degradation": "auto"}, registration={"pair_model": {"kernels": {}}})
    mtf = SimpleNamespace(training={"degradation": "mtf"})
    fallback = wald_gate_scene(scene, sixty, size=64)
    assert np.array_equal(fallback.bands["B05"], wald_gate_scene(scene, mtf, size=64).bands["B05"])


def test_wald_gate_scene_of_a_60m_model_is_its_ratio_6_pair():
    # a 60 m model is scored on its own pair: every band degraded once by 6, the observed B01/B09 as the
    # reference (the 20 m reference of an RR file, or a ratio-2 pair, would not even hold its input bands)
    from ssc_edge.bands import VERY_COARSE_BANDS
    from ssc_edge.bandset import SIXTY_INPUT_BANDS, RatioPairModel, ratio_training_pair
    from ssc_edge.io.sources import central_scene
    from ssc_edge.wald import Kernel

    from .test_product import scene_with_60m

    scene = scene_with_60m(252, 288, seed=4)
    contract = SimpleNamespace(ratio=6, output_bands=VERY_COARSE_BANDS, training={"degradation": "auto"})
    pair, reference = wald_gate_pair(scene, contract, size=72)  # central 144 x 144 px, degraded by 6: 24 x 24
    crop = central_scene(scene, 144, with_60m=True)
    assert pair.shape == (24, 24) and pair.bands["B01"].shape == (4, 4) and pair.bands["B05"].shape == (12, 12)
    assert np.array_equal(reference, np.stack([crop.bands[b] for b in VERY_COARSE_BANDS], axis=-1))
    expected = ratio_training_pair(crop, VERY_COARSE_BANDS, degradation="mtf")  # "auto" without a pair: mtf
    assert np.array_equal(pair.bands["B02"], expected.inputs[..., SIXTY_INPUT_BANDS.index("B02")])

    # the model's own pair (kernels and offsets) when its metadata has one
    model = RatioPairModel(kernels={b: Kernel("gaussian", 1.2) for b in SIXTY_INPUT_BANDS}, offsets={"B01": (1.0, 0.0)})
    contract.registration = {"pair_model": model.to_dict()}
    shifted, _ = wald_gate_pair(scene, contract, size=72)
    expected = ratio_training_pair(crop, VERY_COARSE_BANDS, model=model)
    assert np.array_equal(shifted.bands["B08"], expected.inputs[..., SIXTY_INPUT_BANDS.index("B08")])
    assert not np.allclose(shifted.bands["B08"], pair.bands["B08"])

    # a 20 m model's pair is wald_gate_scene's, with its reference
    twenty = SimpleNamespace(ratio=2, training={"degradation": "bicubic"})
    pair20, reference20 = wald_gate_pair(scene, twenty, size=64)
    assert pair20.shape == (64, 64)
    assert np.array_equal(reference20, wald_gate_scene(scene, twenty, size=64).reference)


@needs_bf16
def test_the_60m_gate_is_measured_on_its_own_pair_and_both_product_models_run_bf16(tmp_path):
    from ssc_edge.runtime.product import CombinedSharpener

    from ._models import write_model
    from .test_product import scene_with_60m

    sixty = write_model(tmp_path / "m_60m.onnx", blocks=2, width=8, seed=5, sixty=True)
    twenty = write_model(tmp_path / "m.onnx", blocks=3, width=8, seed=6)
    scene = scene_with_60m(216, 216, seed=5)
    gate = gate_metadata(sixty, scene)
    assert gate["bf16/openvino"]["target"] == "wald-reduced-scale"
    models = [Sharpener(m, provider="openvino", precision="bf16", tile=72) for m in (twenty, sixty)]
    combined = CombinedSharpener(models)
    assert combined.precision == "bf16" and "60 m model" in combined.precision_reason
    fp32 = CombinedSharpener([Sharpener(m, provider="cpu", tile=72) for m in (twenty, sixty)]).sharpen(scene)
    got = combined.sharpen(scene)
    assert 0 < np.abs(got - fp32).max() <= 0.02 * np.abs(fp32).max()  # really bf16, and close


def test_gate_loss_of_identical_runs_is_zero_and_of_bicubic_matches_the_metric():
    scene = demo_scene(size=96)
    sharpener = Sharpener(default_model_path(), provider="cpu", tile=64)
    assert gate_loss(sharpener.sharpen, sharpener.sharpen, scene) == 0.0
    from ssc_edge.evaluation import bicubic_baseline

    loss = gate_loss(sharpener.sharpen, bicubic_baseline, scene)
    ours = np.mean(signal_to_reconstruction_error(scene.reference, sharpener.sharpen(scene)))
    bicubic = np.mean(signal_to_reconstruction_error(scene.reference, bicubic_baseline(scene)))
    assert loss == pytest.approx(ours - bicubic) and loss > 5  # the demo model gains about 11 dB over bicubic


def test_find_verdict_prefers_metadata_then_measures_once_and_caches(tmp_path, monkeypatch, nhwc_model):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = open_model(nhwc_model)
    stored = {"bf16/openvino": {"loss_db": 0.021, "target": "reference", "hardware": "x"}}
    verdict = find_verdict(dataclasses.replace(model, gate=stored), "bf16", "openvino", measure=_never)
    assert (verdict.loss_db, verdict.source) == (0.021, "metadata")
    assert find_verdict(model, "fp32", "cpu", measure=_never) is None  # nothing known, no scene
    scene = random_scene(128, 128, seed=5)
    calls = []

    def lazily():
        calls.append(1)
        return scene

    # fp32 on the CPU provider against itself: the same windows, so exactly no loss
    measured = find_verdict(model, "fp32", "cpu", measure=gate_measure(model, "fp32", "cpu", tile=40), scene=lazily)
    assert (measured.loss_db, measured.source, measured.target) == (0.0, "measured", "wald-reduced-scale")
    cached = find_verdict(model, "fp32", "cpu", measure=_never, scene=lazily)
    assert (cached.loss_db, cached.source) == (0.0, "cache") and calls == [1]
    files = list((tmp_path / "cache" / "ssc-edge" / "precision").glob("*-fp32-cpu-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["loss_db"] == 0.0


def test_gate_metadata_is_empty_where_no_reduced_precision_is_native(nhwc_model):
    assert gate_metadata(nhwc_model, random_scene(64, 64), flags={"avx2"}) == {}


def test_the_gate_agrees_with_optimize_on_an_fp16_model(tmp_path):
    """Two implementations of the loss (optimize: whole image; the gate: through the Sharpener) agree."""
    pytest.importorskip("onnx")
    from ssc_edge.runtime.optimize import optimize_model

    scene = demo_scene(size=128)
    result = optimize_model(
        default_model_path(), precision="fp16", out_path=tmp_path / "h.onnx", calibration_scene=scene
    )
    fp32 = Sharpener(default_model_path(), provider="cpu", tile=128, precision="fp32")
    fp16 = Sharpener(result.path, provider="cpu", tile=128, precision="auto")
    assert fp16.precision == "fp16" and "optimize measured" in fp16.precision_reason
    assert gate_loss(fp32.sharpen, fp16.sharpen, scene) == pytest.approx(result.quality_loss_db, abs=1e-3)
    with pytest.raises(OptionError, match=r"is an fp16 model .*run it with --precision fp16 or auto"):
        Sharpener(result.path, provider="cpu", precision="fp32")
    with pytest.raises(OptionError, match=r"is an fp32 model; --precision int8 runs a model made by"):
        Sharpener(default_model_path(), provider="cpu", precision="int8")


# --- the Sharpener and the CLI --------------------------------------------------------------------


def test_sharpener_auto_on_the_cpu_provider_is_fp32_and_bit_exact(nhwc_model):
    scene = random_scene(96, 80, seed=2)
    auto = Sharpener(nhwc_model, provider="cpu", tile=40, precision="auto")
    assert auto.precision == "fp32" and auto.precision_reason
    assert np.array_equal(auto.sharpen(scene), Sharpener(nhwc_model, provider="cpu", tile=96).sharpen(scene))


@pytest.mark.skipif(bool(NATIVE), reason="this CPU runs bf16 natively")
def test_infer_auto_says_fp32_and_why_and_bf16_is_refused(run_cli, tmp_path):
    result = run_cli("infer", "-o", tmp_path / "d.npz", "--demo-size", "64")
    assert result.returncode == 0, result.stderr
    assert "precision: fp32 (" in result.stderr
    refused = run_cli("infer", "-o", tmp_path / "e.npz", "--demo-size", "64", "--precision", "bf16")
    assert refused.returncode == 2 and not (tmp_path / "e.npz").exists()
    assert refused.stderr.strip().splitlines()[-1].startswith("ssc-edge: error: cannot run bf16: ")


def test_infer_rejects_an_unknown_precision(run_cli, tmp_path):
    result = run_cli("infer", "-o", tmp_path / "d.npz", "--demo-size", "64", "--precision", "fp8")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "ssc-edge: error: unknown precision 'fp8'; choose one of auto, fp32, bf16, fp16, int8"
    )


# --- the fast path: OpenVINO's own runtime (extra "fast") -------------------------------------------


@needs_openvino
def test_openvino_fp32_compiles_once_per_tile_shape_and_matches_onnxruntime(nhwc_model):
    scene = random_scene(130, 98, seed=4)  # tiles of 48 do not divide it
    sharpener = Sharpener(nhwc_model, provider="openvino", tile=48, precision="fp32")
    tiled = sharpener.sharpen(scene)
    assert sharpener.provider == "openvino" and sharpener._model.backend == "openvino"
    window = sharpener.plan(scene.shape)[0].window  # the plan's one window shape (at most 48 px a side)
    static = [m.input_shape for m in sharpener.model.sessions if m.input_shape]  # one compiled network
    assert static == [(1, window.height, window.width, 10)]  # for every window
    reference = Sharpener(nhwc_model, provider="cpu", tile=48).sharpen(scene)
    assert np.abs(tiled - reference).max() <= 1e-5 * np.abs(reference).max()
    whole = Sharpener(nhwc_model, provider="openvino", tile=130, precision="fp32").sharpen(scene)
    assert np.abs(tiled - whole).max() <= 1e-5 * np.abs(reference).max()


@needs_openvino
def test_the_fast_path_installs_beside_onnxruntime():
    """One environment: onnxruntime and openvino import together and the `openvino` provider resolves."""
    script = "import onnxruntime, openvino; from ssc_edge.runtime.providers import resolve_provider; "
    script += "print(resolve_provider('openvino'))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "openvino", result.stderr


@needs_bf16
def test_bf16_runs_and_tiles_consistently(tmp_path):
    scene = demo_scene(size=192)
    fp32 = Sharpener(default_model_path(), provider="cpu", tile=96, precision="fp32")
    bf16 = Sharpener(default_model_path(), provider="openvino", tile=96, precision="bf16")
    assert bf16.precision == "bf16"
    tiled, whole = bf16.sharpen(scene), Sharpener(default_model_path(), precision="bf16", tile=192).sharpen(scene)
    # one network compiled per window shape of the plan (here one shape: every window the same size)
    static = {m.input_shape for m in bf16.model.sessions if m.input_shape and m.precision == "bf16"}
    assert static == {(1, *p.window.shape, 10) for p in bf16.plan(scene.shape)} and len(static) == 1
    assert np.abs(tiled - whole).max() <= 0.02 * np.abs(whole).max()  # bf16 has an 8-bit mantissa
    assert 0 < np.abs(tiled - fp32.sharpen(scene)).max() <= 0.02 * np.abs(whole).max()  # really not fp32


@needs_bf16
def test_infer_picks_bf16_by_itself_on_a_cpu_that_runs_it(run_cli, tmp_path, monkeypatch, nhwc_model):
    """A small random-weight model: its error dwarfs bf16's rounding, so its bf16 loss is far inside the gate."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the gate is measured, not cached
    result = run_cli("infer", nhwc_model, "-o", tmp_path / "d.npz", "--demo-size", "128")
    assert result.returncode == 0, result.stderr
    assert "precision: bf16 (" in result.stderr and "within the 0.1 dB gate" in result.stderr


def test_batch_records_the_precision_that_ran(tmp_path, nhwc_model):
    from ssc_edge.batch import BatchConfig, run_batch

    scene = random_scene(64, 64, seed=6)
    (tmp_path / "in").mkdir()
    np.savez(tmp_path / "in" / "a.npz", **{name: array for name, array in scene.bands.items()})
    config = BatchConfig(mode="infer", model=nhwc_model, provider="cpu", precision="auto", in_process=True,
                         output_format="npz")  # fmt: skip
    (record,) = run_batch([tmp_path / "in"], tmp_path / "out", config).records
    assert record["status"] == "done" and record["precision"] == "fp32"
    with pytest.raises(OptionError, match=r"unknown precision 'fp8'; choose one of auto, fp32, bf16, fp16, int8"):
        BatchConfig(mode="infer", model=nhwc_model, precision="fp8")


def test_a_scene_too_small_for_the_gate_leaves_the_loss_unknown_and_uncached(tmp_path, monkeypatch, nhwc_model):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny = random_scene(16, 16, seed=7)  # its Wald pair (8 x 8) is smaller than the receptive field (11 px)
    assert find_verdict(open_model(nhwc_model), "fp32", "cpu", measure=_never, scene=tiny) is None
    assert not (tmp_path / "cache").exists()


@needs_bf16
def test_export_gate_is_measured_where_bf16_is_native(nhwc_model):
    gate = gate_metadata(nhwc_model, demo_scene(size=128))  # a reference: the held-out pair
    assert set(gate) == {"bf16/openvino"} and gate["bf16/openvino"]["target"] == "reference"
    assert abs(gate["bf16/openvino"]["loss_db"]) <= GATE_DB
    wald = gate_metadata(nhwc_model, random_scene(128, 128))  # none: the Wald pair one scale down
    assert wald["bf16/openvino"]["target"] == "wald-reduced-scale"
