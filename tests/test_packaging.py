"""What the base install (``pip install .``) must hold for the commands the docs list as runtime."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_runtime_commands_need_no_extra():
    """infer, bench and optimize (fp16/int8 conversion, FLOP counts) run on the base install: no TensorFlow."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base = _names(project["dependencies"])
    assert {"numpy", "scipy", "onnxruntime", "onnx", "typer", "h5py"} <= base
    assert not base & {"tensorflow", "tensorflow-cpu", "tf2onnx", "keras"}


def test_docs_extra_builds_the_site():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert _names(extras["docs"]) == {"mkdocs-material", "mkdocstrings"}
    assert "[python]" in " ".join(extras["docs"])  # the Python handler of mkdocstrings (griffe)
