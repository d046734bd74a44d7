"""run_benchmark on the CPU with tiny settings: documented fields, JSON, 'not available' rows."""

from __future__ import annotations

import json

import pytest

from ssc_edge.errors import ModelError, OptionError
from ssc_edge.runtime.bench import BenchRow, format_bench_table, machine_info, run_benchmark

from ._bench_models import ssc_cnn_model

ROW_FIELDS = {
    "provider",
    "precision",
    "tile",
    "batch",
    "status",
    "reason",
    "session_s",
    "first_run_s",
    "p50_s",
    "p90_s",
    "p99_s",
    "megapixels_per_s",
    "gflop",
    "gflop_per_s",
    "peak_rss_mb",
    "quality_loss_db",
    "gate_passed",
    "runs",
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pytest.importorskip("onnx")
    return ssc_cnn_model(tmp_path_factory.mktemp("bench") / "m.onnx", width=8, skip_width=3)


def test_cpu_rows_have_every_documented_field(model):
    seen = []
    report = run_benchmark(
        model,
        providers=["cpu"],
        tiles=[16, 24],
        batches=[1, 2],
        warmup=1,
        runs=3,
        progress=lambda done, total, message: seen.append((done, total, message)),
    )
    assert [s[:2] for s in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    data = json.loads(json.dumps(report.to_dict()))  # valid JSON
    assert {"model", "contract", "machine", "settings", "rows", "ssc_edge_version"} <= set(data)
    assert {"cpu", "logical_cores", "gpus", "versions", "cpu_flags"} <= set(data["machine"])
    assert "onnxruntime" in data["machine"]["versions"]
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert set(row) == ROW_FIELDS
        assert row["status"] == "ok" and row["runs"] == 3
        assert 0 < row["p50_s"] <= row["p90_s"] <= row["p99_s"]
        assert row["megapixels_per_s"] == pytest.approx(row["batch"] * row["tile"] ** 2 / row["p50_s"] / 1e6)
        assert row["gflop_per_s"] == pytest.approx(row["gflop"] / row["p50_s"])
        assert row["peak_rss_mb"] > 10 and row["session_s"] > 0 and row["first_run_s"] > 0
    per_pixel = data["contract"]["flops_per_pixel"]
    assert data["rows"][1]["gflop"] == pytest.approx(per_pixel * 2 * 16 * 16 / 1e9)
    assert "p50 ms" in format_bench_table(report)


def test_unavailable_provider_is_a_row_not_a_crash(model):
    report = run_benchmark(model, providers=["cpu", "tensorrt", "coreml"], tiles=[16], warmup=0, runs=1)
    status = {row.provider: row for row in report.rows}
    assert status["cpu"].status == "ok"
    for provider in ("tensorrt", "coreml"):
        assert status[provider].status == "not available"
        assert status[provider].reason and status[provider].p50_s is None
    assert "not available" in format_bench_table(report)
    bf16 = run_benchmark(model, providers=["cpu"], precisions=["bf16"], tiles=[16], warmup=0, runs=1).rows[0]
    assert bf16.status == "not available" and "OpenVINO" in bf16.reason


def test_other_precisions_are_made_and_carry_their_loss(model, tmp_path):
    """The int8 row's loss is the loss of that int8 model against fp32, recomputed here with plain sessions."""
    from ssc_edge.demo import demo_scene
    from ssc_edge.runtime.optimize import MAX_LOSS_DB, optimize_model

    from .test_optimize import independent_loss

    scene = demo_scene(size=32)
    report = run_benchmark(model, precisions=["fp32", "int8"], tiles=[16], warmup=0, runs=1, calibration_scene=scene)
    rows = {row.precision: row for row in report.rows}
    assert rows["fp32"].quality_loss_db == 0.0
    assert rows["int8"].status == "ok"
    int8 = optimize_model(model, precision="int8", out_path=tmp_path / "int8.onnx", calibration_scene=scene).path
    loss = independent_loss(model, int8, scene)  # the same calibration, so the same int8 model
    assert loss > 0 and rows["int8"].quality_loss_db == pytest.approx(loss, abs=1e-6)
    assert rows["int8"].gate_passed is (loss <= MAX_LOSS_DB) is True


def test_machine_info_is_json():
    json.dumps(machine_info())


def test_errors(model, tmp_path):
    with pytest.raises(OptionError, match="unknown provider"):
        run_benchmark(model, providers=["tpu"])
    with pytest.raises(OptionError, match="unknown precision"):
        run_benchmark(model, precisions=["fp8"])
    with pytest.raises(OptionError, match="smaller than 2 x halo"):
        run_benchmark(model, tiles=[8])
    with pytest.raises(OptionError, match="runs must be integers >= 1"):
        run_benchmark(model, runs=0)
    with pytest.raises(ModelError, match=r"missing\.onnx: no such model file$"):
        run_benchmark(tmp_path / "missing.onnx")
    assert BenchRow("cpu", "fp32", 1, 1, "ok").to_dict()["status"] == "ok"


def test_without_onnx_flops_and_made_precisions_are_not_available(model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError: a runtime-only install
    report = run_benchmark(model, precisions=["fp32", "fp16"], tiles=[16], warmup=0, runs=1)
    rows = {row.precision: row for row in report.rows}
    assert rows["fp32"].status == "ok" and rows["fp32"].gflop is None and rows["fp32"].gflop_per_s is None
    assert rows["fp16"].status == "not available" and "pip install" in rows["fp16"].reason
    assert report.contract["flops_per_pixel"] is None


def test_bench_and_optimize_do_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, ssc_edge.runtime.bench, ssc_edge.runtime.optimize, ssc_edge.runtime.flops, "
        "ssc_edge.cli.bench; print('tensorflow' in sys.modules, 'onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
