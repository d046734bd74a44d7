"""The fit report gives the no-reference indexes of the full-scale output beside the reduced-resolution scores."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from ssc_edge.demo import demo_scene
from ssc_edge.evaluation import bicubic_baseline
from ssc_edge.quality import full_resolution_quality, model_degradation
from ssc_edge.train import FitConfig, fit_and_export
from ssc_edge.train.model import ModelConfig


def test_report_has_full_resolution_indexes(tmp_path):
    scene = demo_scene(size=64)
    config = FitConfig(epochs=2, model=ModelConfig(width=8, skip_width=4), precision="float32", stage_iterations=0)
    result = fit_and_export(scene, tmp_path / "m.onnx", config, write_keras=False)
    report = json.loads(result.paths["json"].read_text())
    section = report["full_resolution"]
    # the default fit (degradation auto) is scored with its own estimated pair, as the report records it
    assert section["degradation"] == "estimated pair" and set(section["results"]) == {"SSC-CNN", "bicubic"}
    degradation = model_degradation(None, report["registration"])
    bicubic = full_resolution_quality(bicubic_baseline(scene), scene.fine(), scene.coarse(),
                                      degradation=degradation)  # fmt: skip
    assert section["results"]["bicubic"]["consistency_mean_sre"] == pytest.approx(bicubic.consistency_mean_sre)
    markdown = result.paths["markdown"].read_text()
    assert "## Full-resolution quality (no reference)" in markdown and "| SSC-CNN |" in markdown
