"""Model loading: corrupt files, missing metadata, graphs that break the contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper

from ssc_edge.contract import ModelContract
from ssc_edge.errors import ModelError
from ssc_edge.runtime import load_model

from ._models import write_model


def test_valid_model_loads_with_its_contract(nhwc_model):
    model = load_model(nhwc_model, provider="cpu")
    assert model.provider == "cpu"
    assert model.contract.halo == 5 and model.contract.layout == "NHWC" and model.contract.scale == 10000.0


@pytest.mark.parametrize("content", [b"", b"this is not an onnx model\n", bytes(range(256)) * 4])
def test_corrupt_or_non_onnx_file_is_a_model_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken\.onnx: (model file is empty|not an ONNX model \(damaged protobuf: )"):
        load_model(path, provider="cpu")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothing\.onnx: no such model file"):
        load_model(tmp_path / "nothing.onnx")


def test_model_without_metadata_is_refused(tmp_path):
    path = write_model(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(ModelError, match=r"plain\.onnx: not an ssc-edge model \(no ssc_edge metadata\)"):
        load_model(path, provider="cpu")


def test_wrong_channel_count_is_refused(tmp_path):
    path = write_model(tmp_path / "eight.onnx", channels_in=8)
    with pytest.raises(ModelError, match=r"'bands' has 8 channels .* metadata lists 10 bands"):
        load_model(path, provider="cpu")


def _rank3_model(path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["bands"], ["sharpened"])],
        "rank3",
        [helper.make_tensor_value_info("bands", TensorProto.FLOAT, ["height", "width", 10])],
        [helper.make_tensor_value_info("sharpened", TensorProto.FLOAT, ["height", "width", 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, ModelContract(halo=0, scale=1.0).to_metadata())
    path.write_bytes(model.SerializeToString())
    return path


def test_wrong_rank_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"'bands' has rank 3 .* expected rank 4 \(batch, height, width, channels\)"):
        load_model(_rank3_model(tmp_path / "rank3.onnx"), provider="cpu")


def test_unbuildable_band_is_refused(tmp_path):
    from onnx import load

    path = write_model(tmp_path / "b01.onnx")
    model = load(path)
    bands = list(ModelContract(halo=5, scale=1).input_bands)
    bands[0] = "B10"  # cirrus: never a model band (B01 and B09 are, for the 60 m model)
    metadata = ModelContract(halo=5, scale=10000.0).to_metadata()
    helper.set_model_props(model, {**metadata, "ssc_edge.input_bands": json.dumps(bands)})
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="input band 'B10' is not a Sentinel-2 10 m, 20 m or 60 m band"):
        load_model(path, provider="cpu")


def test_run_returns_nhwc_for_an_nchw_model(nchw_model):
    model = load_model(nchw_model, provider="cpu")
    out = model.run(np.zeros((2, 12, 14, 10), dtype=np.float32))
    assert out.shape == (2, 12, 14, 6)
