"""Fixtures of the runtime tests: small valid ssc-edge ONNX models (see ``_models.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.scene import Scene

from ._models import write_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def nhwc_model(model_dir) -> Path:
    """NHWC, 2 blocks of width 8: halo 5."""
    return write_model(model_dir / "nhwc.onnx", blocks=2, width=8, layout="NHWC", seed=1)


@pytest.fixture(scope="session")
def nchw_model(model_dir) -> Path:
    """NCHW, 2 blocks of width 16: halo 5."""
    return write_model(model_dir / "nchw.onnx", blocks=2, width=16, layout="NCHW", seed=2)


def random_scene(height: int, width: int, *, seed: int = 0) -> Scene:
    """A textured random scene (DN 0..6000) of the given 10 m size."""
    rng = np.random.default_rng(seed)
    bands = {b: rng.uniform(0, 6000, (height, width)).astype(np.float32) for b in FINE_BANDS}
    bands.update({b: rng.uniform(0, 6000, (height // 2, width // 2)).astype(np.float32) for b in COARSE_BANDS})
    return Scene(bands=bands, name="random")
