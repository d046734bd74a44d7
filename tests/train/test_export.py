"""ONNX export: parity with Keras, the metadata contract, dynamic sizes, atomic outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ssc_edge.contract import INPUT_NAME, OUTPUT_NAME, ModelContract  # noqa: E402
from ssc_edge.demo import demo_scene  # noqa: E402
from ssc_edge.errors import ModelError, OutputError  # noqa: E402
from ssc_edge.train.export import (  # noqa: E402
    OPSET,
    check_parity,
    fit_and_export,
    keras_to_onnx,
    pad_concat_channels,
)
from ssc_edge.train.fit import FitConfig  # noqa: E402
from ssc_edge.train.model import ModelConfig, build_ssc_cnn, receptive_halo  # noqa: E402

TINY = FitConfig(epochs=2, model=ModelConfig(width=8, skip_width=4), precision="float32", stage_iterations=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return fit_and_export(demo_scene(size=64), folder / "tiny.onnx", TINY)


def _run(model: Path | bytes, x_nhwc: np.ndarray, layout: str) -> np.ndarray:
    """Run an ONNX model (file or serialized bytes) on an NHWC input; NHWC output."""
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    x = x_nhwc.transpose(0, 3, 1, 2).copy() if layout == "NCHW" else x_nhwc
    y = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    return y.transpose(0, 2, 3, 1) if layout == "NCHW" else y


def test_files_written(exported):
    assert {k: p.name for k, p in exported.paths.items()} == {
        "onnx": "tiny.onnx",
        "keras": "tiny.keras",
        "json": "tiny.json",
        "markdown": "tiny.md",
    }
    assert all(p.is_file() for p in exported.paths.values())
    assert not list(exported.paths["onnx"].parent.glob(".*"))  # no temporary files left
    report = json.loads(exported.paths["json"].read_text())
    assert report["fit"]["epochs"] == 2 and report["export"]["layout"] in ("NHWC", "NCHW")
    # heldout's default rule, named in the report: 0.98 per epoch of 64-patch steps, so 0.98 ** 4 at batch 16
    assert TINY.batch_size == 16 and report["fit"]["kept"] == "ema 0.922368"
    assert set(report["evaluation"]) >= {"model", "bicubic", "kind"}
    assert "mean SRE" in exported.paths["markdown"].read_text()


def test_graph_names_opset_and_dynamic_dims(exported):
    proto = onnx.load(exported.paths["onnx"])
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == OPSET
    layout = exported.contract.layout
    expected = ["batch", "height", "width", 10] if layout == "NHWC" else ["batch", 10, "height", "width"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == expected


def test_metadata_round_trip(exported):
    proto = onnx.load(exported.paths["onnx"])
    contract = ModelContract.from_metadata({p.key: p.value for p in proto.metadata_props})
    assert contract == exported.contract
    assert contract.halo == receptive_halo(exported.fit.model) == 6
    assert contract.scale == exported.fit.scale
    assert contract.protocol == "heldout" and contract.training["epochs"] == 2
    assert contract.architecture == TINY.model.to_dict()
    assert contract.metrics["model"]["mean_sre"] == exported.evaluation.model.mean_sre
    assert {"tensorflow", "tf2onnx", "onnxruntime", "ssc_edge"} <= set(contract.versions)


@pytest.mark.parametrize("size", [(40, 56), (64, 64)])
def test_onnx_matches_keras_at_any_size(exported, size):
    import keras

    model = keras.models.load_model(exported.paths["keras"])
    x = np.random.default_rng(0).random((1, *size, 10), dtype=np.float32)
    expected = np.asarray(model(x))
    got = _run(exported.paths["onnx"], x, exported.contract.layout)
    assert got.shape == (1, *size, 6)
    assert np.max(np.abs(got - expected)) <= 1e-4 * (expected.max() - expected.min())
    assert exported.parity <= 1e-4


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_both_layouts_agree(layout):
    model = build_ssc_cnn(ModelConfig(width=4, skip_width=2), seed=2)
    x = np.random.default_rng(2).random((2, 20, 18, 10), dtype=np.float32)
    assert check_parity(model, keras_to_onnx(model, layout=layout), x, layout=layout) <= 1e-4


def test_parity_failure_is_a_model_error():
    a = build_ssc_cnn(ModelConfig(width=4, skip_width=2), seed=2)
    b = build_ssc_cnn(ModelConfig(width=4, skip_width=2), seed=3)
    x = np.random.default_rng(2).random((1, 16, 16, 10), dtype=np.float32)
    with pytest.raises(ModelError, match="disagrees with Keras"):
        check_parity(a, keras_to_onnx(b), x, layout="NHWC")


def test_existing_output_is_refused_before_training(exported):
    calls = []
    with pytest.raises(OutputError, match="output exists; pass --force"):
        fit_and_export(demo_scene(size=64), exported.paths["onnx"], TINY, progress=lambda *a: calls.append(a))
    assert calls == []


def test_interrupted_training_leaves_no_file(tmp_path):
    def interrupt(done, total, message):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_and_export(demo_scene(size=64), tmp_path / "m.onnx", TINY, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def _concat_reader_channels(proto) -> list[int]:
    """Input channels of every Conv that reads a Concat, from its weight initializer (O, I, kH, kW)."""
    concats = {n.output[0] for n in proto.graph.node if n.op_type == "Concat"}
    dims = {t.name: list(t.dims) for t in proto.graph.initializer}
    return [dims[n.input[1]][1] for n in proto.graph.node if n.op_type == "Conv" and n.input[0] in concats]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_padding_concat_channels_keeps_the_output(layout):
    # width 24 + skip 5 = 29 channels into the output blocks 2 and 3: padded to 32 with zero filters.
    model = build_ssc_cnn(ModelConfig(width=24, skip_width=5), seed=4)
    plain = keras_to_onnx(model, layout=layout)
    padded = pad_concat_channels(keras_to_onnx(model, layout=layout))
    onnx.checker.check_model(padded)
    assert _concat_reader_channels(plain) == [29, 29]
    assert _concat_reader_channels(padded) == [32, 32]
    x = np.random.default_rng(4).random((1, 23, 30, 10), dtype=np.float32) * 2 - 0.5
    expected = _run(plain.SerializeToString(), x, layout)
    got = _run(padded.SerializeToString(), x, layout)
    assert np.max(np.abs(got - expected)) <= 1e-6 * np.ptp(expected)
    assert check_parity(model, padded, x, layout=layout) <= 1e-4


def test_padding_leaves_aligned_graphs_alone():
    model = build_ssc_cnn(ModelConfig(width=24, skip_width=8), seed=4)  # 32 channels already
    proto = keras_to_onnx(model)
    before = proto.SerializeToString()
    assert pad_concat_channels(proto).SerializeToString() == before


def test_exported_model_is_padded(exported):
    # TINY: width 8 + skip 4 = 12 channels, padded to 16 at export; the parity check passed on it.
    assert _concat_reader_channels(onnx.load(exported.paths["onnx"])) == [16, 16]


def test_report_phases_are_disjoint_and_cover_the_run(tmp_path):
    start = time.perf_counter()
    result = fit_and_export(demo_scene(size=64), tmp_path / "m.onnx", TINY)
    wall = time.perf_counter() - start
    phases = json.loads(result.paths["json"].read_text())["phases_seconds"]
    steps = {"read", "estimate", "fit", "evaluate", "export", "full_resolution", "precision_gate"}
    assert steps <= set(phases) <= steps | {"stage"}
    counted = sum(seconds for name, seconds in phases.items() if name != "stage")  # the stage is part of "fit"
    assert 0.5 * wall <= counted <= wall  # left out: the output guard, the summary and writing the files


def test_the_model_before_the_stage_is_scored_only_when_asked(tmp_path):
    """A spatial hold-out scores the staged model alone by default (one inference per window); with
    ``score_before_stage`` the report also holds the fit the stage started from, scored on the same windows, and
    both reports say what the stage did on its own crop."""
    from ssc_edge.scene import Scene

    big = Scene(bands=demo_scene(size=384, seed=2).bands)  # no reference: 529 patches one scale down
    config = FitConfig(epochs=1, model=ModelConfig(width=8, skip_width=4), patch_budget=24, precision="float32",
                       stage_iterations=3)  # fmt: skip
    plain = fit_and_export(big, tmp_path / "plain.onnx", config, write_keras=False)
    both = fit_and_export(big, tmp_path / "both.onnx", config, write_keras=False, score_before_stage=True)
    assert plain.evaluation.kind == both.evaluation.kind == "spatial-holdout"
    assert plain.fit.before_stage is None and plain.evaluation.before_stage is None
    assert "before_stage" not in json.loads(plain.paths["json"].read_text())["evaluation"]
    assert both.evaluation.before_stage is not None
    assert both.evaluation.model.mean_sre == plain.evaluation.model.mean_sre  # same seed, same fit, same windows
    for result in (plain, both):
        guard = result.fit.stage["one_scale_down_sre"]
        text = result.paths["markdown"].read_text()
        assert f"scored {guard[0]:.2f} dB before it and {guard[1]:.2f} dB after" in text
    assert "Before the full-resolution stage" in both.paths["markdown"].read_text()
    assert "Before the full-resolution stage" not in plain.paths["markdown"].read_text()
