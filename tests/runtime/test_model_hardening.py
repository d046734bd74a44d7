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
from ssc_edge.runtime.session import check_model_kind, load_model, read_model_contract

from ._models import write_model

onnx = pytest.importorskip("onnx")


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
    contract = read_model_contract(model_20m)
    assert ModelContract.from_metadata(contract.to_metadata()) == contract
    assert isinstance(contract.halo, int) and contract.ratio == 2


def test_numpy_integers_are_accepted_as_the_trainer_passes_them():
    contract = ModelContract(halo=np.int64(7), scale=np.float32(10000.0))
    assert contract.halo == 7 and type(contract.halo) is int


def test_model_kinds(model_20m, model_60m):
    check_model_kind(read_model_contract(model_20m), ratio=2, source=model_20m)
    check_model_kind(read_model_contract(model_60m), ratio=6, source=model_60m)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(model_60m))}: is a 60 m model \(outputs B01 B09\); "
                       r"pass it as --model-60m$"):  # fmt: skip
        check_model_kind(read_model_contract(model_60m), ratio=2, source=model_60m)
    with pytest.raises(ModelError, match=rf"^{re.escape(str(model_20m))}: is a 20 m model \(outputs B05 B06 B07 "
                       r"B8A B11 B12\), not a 60 m model; pass it as MODEL"):  # fmt: skip
        check_model_kind(read_model_contract(model_20m), ratio=6, source=model_20m)


def test_infer_refuses_each_model_in_the_wrong_place_before_writing(model_20m, model_60m, tmp_path):
    out = tmp_path / "out.npz"
    with pytest.raises(ModelError, match=r"m60\.onnx: is a 60 m model \(outputs B01 B09\); pass it as --model-60m"):
        sharpen_file(model_60m, None, out, provider="cpu", demo_size=60)
    with pytest.raises(ModelError, match=r"m20\.onnx: is a 20 m model .* pass it as MODEL"):
        sharpen_file(model_20m, None, out, provider="cpu", demo_size=60, model_60m=model_20m)
    with pytest.raises(ModelError, match=r"m60\.onnx: is a 60 m model"):  # both swapped: the first named first
        sharpen_file(model_60m, None, out, provider="cpu", demo_size=60, model_60m=model_20m)
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
