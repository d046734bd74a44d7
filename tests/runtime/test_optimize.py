"""optimize_model: fp16 passes the gate and runs; int8 of a model built to break it is refused; metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ssc_edge.contract import ModelContract
from ssc_edge.demo import demo_scene
from ssc_edge.errors import ModelError, OptionError, OutputError
from ssc_edge.runtime.optimize import MAX_LOSS_DB, QualityGateError, optimize_model
from ssc_edge.wald import model_input
from tests import _reference as independent

from ._bench_models import cancellation_model, ssc_cnn_model

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def scene():
    return demo_scene(size=64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimize")
    return {"ssc": ssc_cnn_model(folder / "ssc.onnx"), "lossy": cancellation_model(folder / "lossy.onnx")}


def _contract(path) -> ModelContract:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)


def test_fp16_passes_the_gate_runs_and_records_its_loss(tmp_path, models, scene):
    out = tmp_path / "fp16.onnx"
    result = optimize_model(models["ssc"], precision="fp16", out_path=out, calibration_scene=scene)
    assert result.passed and result.path == out and result.target == "reference"
    assert abs(result.quality_loss_db) <= 0.1
    assert result.quality_loss_db == pytest.approx(result.sre_fp32_db - result.sre_optimized_db)
    assert result.quality_loss_db == pytest.approx(independent_loss(models["ssc"], out, scene), abs=1e-6)
    contract = _contract(out)
    assert contract.precision == "fp16"
    assert contract.quality_loss_db == pytest.approx(result.quality_loss_db, abs=1e-4)
    assert contract.halo == _contract(models["ssc"]).halo
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = session.run(None, {"bands": np.full((1, 16, 16, 10), 0.2, np.float32)})[0]
    assert y.shape == (1, 16, 16, 6) and y.dtype == np.float32  # float32 I/O kept


def independent_loss(fp32: Path, optimized: Path, scene) -> float:
    """mean SRE(fp32) - mean SRE(optimized), dB, against the scene's reference: both NHWC models whole-image in plain
    onnxruntime sessions, SRE by the data README's formula (tests/_reference.py)."""
    contract = _contract(fp32)
    x = model_input(scene.fine(), scene.coarse(), upsampling=contract.upsampling)[None] / np.float32(contract.scale)
    sre = {}
    for path in (fp32, optimized):
        y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"bands": x})[0][0]
        sre[path] = np.mean(independent.sre(scene.reference, y.astype(np.float64) * contract.scale))
    return float(sre[fp32] - sre[optimized])


def test_int8_is_real_static_qdq_quantization_within_the_gate(tmp_path, models, scene):
    import onnx

    out = tmp_path / "int8.onnx"
    result = optimize_model(models["ssc"], precision="int8", out_path=out, calibration_scene=scene)  # no force
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert result.calibration_tiles >= 1
    assert _contract(out).precision == "int8"
    loss = independent_loss(models["ssc"], out, scene)
    assert result.quality_loss_db == pytest.approx(loss, abs=1e-6)
    assert 0 < loss <= MAX_LOSS_DB and result.passed  # int8 rounds: a real, small loss (0.011 dB when written)
    assert _contract(out).quality_loss_db == pytest.approx(loss, abs=1e-4)


def test_refuses_a_model_that_breaks_the_loss_gate(tmp_path, models, scene):
    out = tmp_path / "lossy_int8.onnx"
    with pytest.raises(QualityGateError, match=r"int8 loses \d+\.\d+ dB of mean SRE .*limit 0.1 dB.*--force"):
        optimize_model(models["lossy"], precision="int8", out_path=out, calibration_scene=scene)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial output
    # the fp32 model itself is exact (its output is the bicubic input), so the loss is the quantization's
    forced = optimize_model(models["lossy"], precision="int8", out_path=out, calibration_scene=scene, force=True)
    assert not forced.passed and forced.quality_loss_db > 1.0
    assert forced.quality_loss_db == pytest.approx(independent_loss(models["lossy"], out, scene), abs=1e-6)
    assert _contract(out).quality_loss_db == pytest.approx(forced.quality_loss_db, abs=1e-4)


def test_scene_without_reference_uses_the_wald_pair(models, scene):
    from ssc_edge.scene import Scene

    bare = Scene(bands=scene.bands, fine_pixel_size=10.0, name="no-reference")
    result = optimize_model(models["ssc"], precision="fp16", out_path=None, calibration_scene=bare)
    assert result.target == "wald-reduced-scale" and result.path is None


def test_errors(tmp_path, models, scene):
    with pytest.raises(OptionError, match="precision must be one of fp16, int8"):
        optimize_model(models["ssc"], precision="bf16", out_path=None)
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="output exists"):
        optimize_model(models["ssc"], precision="fp16", out_path=existing)
    with pytest.raises(ModelError, match="not found"):
        optimize_model(tmp_path / "missing.onnx", precision="fp16", out_path=None)
    fp16 = optimize_model(models["ssc"], precision="fp16", out_path=tmp_path / "h.onnx", calibration_scene=scene)
    with pytest.raises(ModelError, match="already fp16"):
        optimize_model(fp16.path, precision="int8", out_path=None, calibration_scene=scene)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_nchw_models(tmp_path, scene, precision):
    from ._models import write_model

    model = write_model(tmp_path / "nchw.onnx", layout="NCHW")
    result = optimize_model(
        model, precision=precision, out_path=tmp_path / "out.onnx", calibration_scene=scene, force=True
    )
    assert _contract(result.path).layout == "NCHW" and _contract(result.path).precision == precision
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"bands": np.full((1, 10, 16, 16), 0.2, np.float32)})[0].shape == (1, 6, 16, 16)


def test_wald_pair_of_a_model_fitted_with_an_estimated_pair(models, scene):
    """A model fitted with the default ``--degradation auto`` is scored on its own estimated pair, not refused."""
    from dataclasses import replace

    from ssc_edge import wald
    from ssc_edge.runtime.optimize import _evaluation_data
    from ssc_edge.scene import Scene

    bare = Scene(bands=scene.bands, fine_pixel_size=10.0, name="no-reference")
    pair_model = wald.PairModel(
        fine=(wald.Kernel("gaussian", 0.8),) * 4, coarse=(wald.Kernel("bicubic"),) * 6, offset=(0.5, -0.25)
    )
    contract = replace(
        _contract(models["ssc"]),
        training={"degradation": "auto"},
        registration={"pair_model": pair_model.to_dict()},
    )
    inputs, target, kind = _evaluation_data(bare, contract)
    expected = wald.training_pair(bare, model=pair_model, upsampling=contract.upsampling)
    assert kind == "wald-reduced-scale"
    np.testing.assert_array_equal(inputs, expected.inputs)
    np.testing.assert_array_equal(target, expected.target)
    nominal = wald.training_pair(bare, degradation="mtf", upsampling=contract.upsampling)
    assert not np.array_equal(inputs, nominal.inputs)  # the estimated pair, not the nominal MTF one
