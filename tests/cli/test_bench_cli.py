"""`ssc-edge bench` and `ssc-edge optimize` end to end (the installed command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime._bench_models import cancellation_model, ssc_cnn_model

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return ssc_cnn_model(tmp_path_factory.mktemp("bench_cli") / "m.onnx", width=8, skip_width=3)


def test_bench_writes_json_and_table(run_cli, model, tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench",
        model,
        "--providers",
        "cpu,openvino",
        "--tiles",
        "16,24",
        "--batch",
        "1,2",
        "--warmup",
        "1",
        "--runs",
        "2",
        "--json",
        out,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert "p50 ms" in result.stdout and "not available" in result.stdout
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 8
    assert {row["status"] for row in data["rows"] if row["provider"] == "cpu"} == {"ok"}
    again = run_cli("bench", model, "--tiles", "16", "--runs", "1", "--json", out)
    assert again.returncode == 2 and "output exists" in again.stderr


def test_bench_bad_options(run_cli, model):
    result = run_cli("bench", model, "--tiles", "16,abc")
    assert result.returncode == 2
    assert "--tiles must be a comma-separated list of integers" in result.stderr
    result = run_cli("bench", model, "--providers", "gpu")
    assert result.returncode == 2 and "unknown provider(s) gpu" in result.stderr


def test_optimize_writes_and_refuses(run_cli, model, tmp_path):
    out = tmp_path / "m_fp16.onnx"
    result = run_cli("optimize", model, "--precision", "fp16", "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and f"wrote {out}" in result.stdout
    lossy = cancellation_model(tmp_path / "lossy.onnx")
    refused = tmp_path / "lossy_int8.onnx"
    result = run_cli("optimize", lossy, "--precision", "int8", "-o", refused)
    assert result.returncode == 2
    assert "int8 loses" in result.stderr and "--force" in result.stderr
    assert not refused.exists()
    result = run_cli("optimize", lossy, "--precision", "int8", "-o", refused, "--force", "--quiet")
    assert result.returncode == 0 and refused.is_file()


def test_bench_default_model_and_plot(run_cli, tmp_path):
    import importlib.util

    shipped = Path(__file__).resolve().parents[2] / "models" / "demo.onnx"
    result = run_cli("bench", "--tiles", "32", "--warmup", "0", "--runs", "1", "--plot", tmp_path / "p.png", "-q")
    if not shipped.is_file():
        assert result.returncode == 2 and "shipped" in result.stderr
    elif importlib.util.find_spec("matplotlib") is None:
        assert result.returncode == 2 and "--plot needs matplotlib" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
