"""Model files whose metadata is hostile or whose kind is wrong for where they are given.

Real ONNX files (``_models.write_model``) with their ``metadata_props`` edited as a damaged or hostile file
would have them; every case must be one :class:`ModelError` naming the file, before anything runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.contract import MAX_HALO, ModelContract
from ssc_edge.errors import ModelError
from ssc_edge.runtime.infer import sharpen_file
from ssc_edge.runtime.options import RunOptions
from ssc_edge.runtime.providers import resolve_provider
from ssc_edge.runtime.session import check_model_kind, load_model, open_model

from ._models import write_model

onnx = pytest.importorskip("onnx")
CPU = RunOptions(provider="cpu")


def _with_metadata(source: Path, target: Path, **values: str) -> Path:
    """Copy an ONNX model, replacing ``ssc_edge.KEY`` metadata values by the raw strings given."""
    model = onnx.load(source)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({f"ssc_edge.{key}": value for key, value in values.items()})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, target)
    return target


@pytest.fixture(scope="module")
def model_20m(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("m") / "m20.onnx")


@pytest.fixture(scope="module")
def model_60m(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("m") / "m60.onnx", sixty=True)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("scale", "NaN", "scale must be a finite positive number, got nan"),
        ("scale", "Infinity", "scale must be a finite positive number, got inf"),
        ("scale", "-10000", "scale must be a finite positive number, got -10000"),
        ("scale", '"10000"', "scale must be a finite positive number, got '10000'"),
        ("halo", "NaN", "halo must be a whole number of pixels, got nan"),
        ("halo", "Infinity", "halo must be a whole number of pixels, got inf"),
        ("halo", "2.5", "halo must be a whole number of pixels, got 2.5"),
        ("halo", "true", "halo must be a whole number of pixels, got True"),
        ("halo", "-1", f"halo must be 0 to {MAX_HALO} pixels, got -1"),
        ("halo", "1000000000000", f"halo must be 0 to {MAX_HALO} pixels, got 1000000000000"),
        ("ratio", "3", "ratio must be 2 (20 m bands) or 6 (60 m bands), got 3"),
        ("output_bands", '"B05"', "output_bands must be a non-empty list of band names, got 'B05'"),
        ("output_bands", "[]", "output_bands must be a non-empty list of band names, got []"),
        ("training", "[1, 2]", "training must be a JSON object, got list"),
        ("quality_loss_db", "NaN", "quality_loss_db must be a finite number of dB, got nan"),
    ],
)
def test_hostile_metadata_is_one_model_error_naming_the_file(model_20m, tmp_path, key, value, problem):
    bad = _with_metadata(model_20m, tmp_path / "bad.onnx", **{key: value})
    with pytest.raises(ModelError, match=rf"^{re.escape(str(bad))}: ssc-edge metadata: {re.escape(problem)}$"):
        load_model(bad, provider="cpu")


def test_valid_metadata_round_trips(model_20m):
    contract = open_model(model_20m).contract
    assert ModelContract.from_metadata(contract.to_metadata()) == contract
    assert isinstance(contract.halo, int) and contract.ratio == 2


def test_numpy_integers_are_accepted_as_the_trainer_passes_them():
    contract = ModelContract(halo=np.int64(7), scale=np.float32(10000.0))
    assert contract.halo == 7 and type(contract.halo) is int


def test_model_kinds(model_20m, model_60m):
    check_model_kind(open_model(model_20m).contract, ratio=2, source=model_20m)
    check_model_kind(open_model(model_60m).contract, ratio=6, source=model_60m)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(model_60m))}: is a 60 m model \(outputs B01 B09\); "
                       r"pass it as --model-60m$"):  # fmt: skip
        check_model_kind(open_model(model_60m).contract, ratio=2, source=model_60m)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(model_20m))}: is a 20 m model \(outputs B05 B06 B07 "
                       r"B8A B11 B12\), not a 60 m model; pass it as MODEL"):  # fmt: skip
        check_model_kind(open_model(model_20m).contract, ratio=6, source=model_20m)


def test_infer_refuses_each_model_in_the_wrong_place_before_writing(model_20m, model_60m, tmp_path):
    out = tmp_path / "out.npz"
    with pytest.raises(ModelError, match=r"m60\.onnx: is a 60 m model \(outputs B01 B09\); pass it as --model-60m"):
        sharpen_file(model_60m, None, out, run=CPU, demo_size=60)
    with pytest.raises(ModelError, match=r"m20\.onnx: is a 20 m model .* pass it as MODEL"):
        sharpen_file(model_20m, None, out, run=CPU, demo_size=60, model_60m=model_20m)
    with pytest.raises(ModelError, match=r"m60\.onnx: is a 60 m model"):  # both swapped: the first named first
        sharpen_file(model_60m, None, out, run=CPU, demo_size=60, model_60m=model_20m)
    assert list(tmp_path.iterdir()) == []


def test_cli_names_the_misplaced_model_in_one_line(run_cli, model_20m, model_60m, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("infer", model_60m, "-o", out_dir / "x.tif", "--provider", "cpu", "--demo-size", "60")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ssc-edge: error: {model_60m}: is a 60 m model (outputs B01 B09); pass it as --model-60m"
    ]
    args = ("infer", model_20m, "--model-60m", model_20m, "-o", out_dir / "x.tif", "--demo-size", "60")
    result = run_cli(*args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"ssc-edge: error: {model_20m}: is a 20 m model" in result.stderr
    hostile = _with_metadata(model_20m, tmp_path / "hostile.onnx", halo="1e300")
    result = run_cli("infer", hostile, "-o", out_dir / "x.tif", "--demo-size", "60")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ssc-edge: error: {hostile}: ssc-edge metadata: halo must be 0 to {MAX_HALO} pixels, got 1e+300"
    ]
    assert list(out_dir.iterdir()) == []


def _with_node(source: Path, target: Path, node_graph: str) -> Path:
    """Copy an ONNX model, adding one node the exporter never writes (the graph still loads in onnxruntime)."""
    from onnx import TensorProto, helper

    model = onnx.load(source)
    graph = model.graph
    if node_graph == "custom":  # an operator of another domain (a custom op library's)
        graph.node.append(helper.make_node("Evil", ["bands"], ["evil_out"], domain="com.example"))
        model.opset_import.append(helper.make_opsetid("com.example", 1))
    else:  # control flow: a Loop whose trip count the file chooses (10^12 iterations), or an If
        body = helper.make_graph(
            [helper.make_node("Identity", [f"{n}_in"], [f"{n}_out"]) for n in ("cond", "v")],
            "body",
            [helper.make_tensor_value_info(n, t, []) for n, t in
             (("i", TensorProto.INT64), ("cond_in", TensorProto.BOOL), ("v_in", TensorProto.FLOAT))],
            [helper.make_tensor_value_info(n, t, []) for n, t in
             (("cond_out", TensorProto.BOOL), ("v_out", TensorProto.FLOAT))],
        )  # fmt: skip
        graph.initializer.extend([helper.make_tensor("trip", TensorProto.INT64, [], [10**12]),
                                  helper.make_tensor("go", TensorProto.BOOL, [], [True]),
                                  helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])  # fmt: skip
        graph.node.insert(0, helper.make_node("Loop", ["trip", "go", "zero"], ["spin"], body=body))
        last = graph.node[-1]  # the output's producer: add the loop's result (0.0) to it
        last.output[0] = "before_spin"
        graph.node.append(helper.make_node("Add", ["before_spin", "spin"], ["sharpened"]))
    onnx.save(model, target)
    return target


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("loop", r"the graph has a Loop node \(control flow\); an exported SSC-CNN has none, so it is refused"),
        ("custom", r"the graph has a Evil node of domain 'com.example'; an exported SSC-CNN uses only standard"),
    ],
)
def test_graphs_an_exported_model_never_has_are_refused_at_load(model_20m, tmp_path, kind, problem):
    bad = _with_node(model_20m, tmp_path / f"{kind}.onnx", kind)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(bad))}: {problem}"):
        open_model(bad)


def test_a_loop_of_a_trillion_trips_is_one_line_and_exit_2_not_a_hang(run_cli, model_20m, tmp_path):
    bad = _with_node(model_20m, tmp_path / "loop.onnx", "loop")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("infer", bad, "-o", out / "x.npz", "--demo-size", "60", "--provider", "cpu", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ssc-edge: error: {bad}: the graph has a Loop node (control flow); an exported SSC-CNN has none, so it is "
        "refused before it runs"
    ]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests JSON 100000 levels deep, more than 32"),
        ('{"a": "' + "x" * (2 << 20) + '"}', "is 2097161 characters of JSON, more than 1048576"),
        ('{"a": "[[[[ brackets in a string do not nest"}', None),
    ],
)
def test_metadata_json_is_parsed_within_depth_and_size_limits(model_20m, tmp_path, value, problem):
    bad = _with_metadata(model_20m, tmp_path / "deep.onnx", training=value)
    if problem is None:
        assert open_model(bad).contract.training == {"a": "[[[[ brackets in a string do not nest"}
        return
    with pytest.raises(ModelError, match=rf"^{re.escape(str(bad))}: metadata ssc_edge.training {problem}$"):
        open_model(bad)


def test_gate_metadata_json_is_parsed_within_limits(model_20m, tmp_path):
    bad = _with_metadata(model_20m, tmp_path / "gate.onnx", precision_gate="{" * 50 + "}" * 50)
    with pytest.raises(ModelError, match=r"metadata ssc_edge.precision_gate nests JSON 50 levels deep"):
        open_model(bad)


def test_a_20m_model_that_lists_a_60m_band_is_refused(model_20m, tmp_path):
    bands = '["B01", "B06", "B07", "B8A", "B11", "B12", "B02", "B03", "B04", "B08"]'
    bad = _with_metadata(model_20m, tmp_path / "b01.onnx", input_bands=bands)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(bad))}: ssc-edge metadata: a 20 m model \(ratio 2\) "
                       r"cannot read the 60 m band B01; only a 60 m model \(ratio 6\) reads 60 m bands$"):  # fmt: skip
        open_model(bad)
    wrong_output = _with_metadata(model_20m, tmp_path / "out_b01.onnx", output_bands='["B01"]')
    with pytest.raises(ModelError, match=r"ratio 2 for output bands B01; this runtime sharpens 20 m bands"):
        open_model(wrong_output)


def test_a_model_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path):
    import os

    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)  # opening it would wait for a writer for ever
    with pytest.raises(ModelError, match=rf"^{re.escape(str(fifo))}: not a regular file$"):
        open_model(fifo)


def test_the_model_file_is_read_once_and_each_session_built_once(model_20m):
    model = open_model(model_20m)
    first = model.load(provider="cpu", precision="fp32")
    assert model.load(provider="cpu", precision="fp32") is first
    if resolve_provider("auto") == "cpu":  # auto is the CPU here: the same session
        assert model.load(provider="auto", precision="fp32") is first
    assert model.load(provider="cpu", precision="fp32", threads=1) is not first  # other options: another one
    assert model.sha256 == __import__("hashlib").sha256(model_20m.read_bytes()).hexdigest()


def test_sessions_are_built_from_the_bytes_read_once_not_from_the_path(model_20m, tmp_path, monkeypatch):
    """The gate's sessions and the run's come from the one read: the file can be gone by then."""
    from ssc_edge.runtime import Sharpener

    from .conftest import random_scene

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where bf16 is native, the gate is measured
    copy = tmp_path / "once.onnx"
    copy.write_bytes(model_20m.read_bytes())
    model = open_model(copy)
    copy.unlink()
    scene = random_scene(64, 64, seed=3)
    expected = Sharpener(model_20m, provider="cpu", precision="fp32", tile=32).sharpen(scene)
    sharpener = Sharpener(model, precision="auto", tile=32, gate_scene=scene)
    got = sharpener.sharpen(scene)
    if sharpener.precision == "fp32":
        assert np.array_equal(got, expected)
    else:  # bf16 chosen by the gate, measured with fp32 and bf16 sessions of the same bytes
        assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()
        assert {m.precision for m in model.sessions} >= {"fp32", "bf16"}
    assert (sharpener.provider, sharpener.precision) in {(m.provider, m.precision) for m in model.sessions}


def test_infer_with_a_60m_model_prints_the_quality_line(run_cli, model_20m, model_60m, tmp_path):
    out = tmp_path / "out.npz"
    result = run_cli("infer", model_20m, "--model-60m", model_60m, "-o", out, "--demo-size", "72",
                     "--provider", "cpu", "--precision", "fp32")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("full resolution, no reference")]
    assert "consistency SRE" in line and "QNR" in line
