"""The fit's compute precision: ``resolve_precision`` and what a fit records and leaves behind.

``FitConfig.precision`` documents ``"auto"`` as ``mixed_bfloat16`` on a CPU-only machine whose CPU has native
bfloat16 dot products (AVX512-BF16 or AMX), else ``float32``; the expectation below reads the machine's facts
itself (TensorFlow's GPU list, the ``flags`` words of /proc/cpuinfo), so the test holds on either kind of CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ssc_edge.demo import demo_scene  # noqa: E402
from ssc_edge.errors import OptionError  # noqa: E402
from ssc_edge.train.fit import FitConfig, fit_model, resolve_precision, training_data  # noqa: E402
from ssc_edge.train.model import ModelConfig  # noqa: E402

TINY = ModelConfig(width=8, skip_width=4)


def _documented_auto() -> str:
    """What ``"auto"`` should mean here, from the machine's facts as the docstring states them."""
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    try:
        flags = {word for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                 for word in line.split(":", 1)[1].split()}  # fmt: skip
    except OSError:
        return "float32"
    return "mixed_bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_an_explicit_precision_is_kept_on_any_machine(precision):
    assert resolve_precision(precision) == precision


def test_auto_follows_the_machine():
    assert resolve_precision("auto") == _documented_auto()
    assert resolve_precision("auto") in ("float32", "mixed_bfloat16")


def test_a_fit_records_the_precision_it_ran_and_leaves_keras_in_float32():
    """``auto`` is resolved in the fit's config; bfloat16 compute changes the losses (it really ran), and no fit
    leaves Keras's global policy in mixed precision for whatever trains next."""
    scene = demo_scene(size=48, seed=2)
    histories = {}
    for precision in ("auto", "float32", "mixed_bfloat16"):
        config = FitConfig(epochs=2, model=TINY, precision=precision, seed=3)
        fit = fit_model(*training_data(scene, config), config)
        assert fit.config.precision == (_documented_auto() if precision == "auto" else precision)
        assert all(w.dtype == np.float32 for w in fit.model.get_weights())
        assert tf.keras.mixed_precision.global_policy().name == "float32", precision
        histories[precision] = fit.history
    assert histories["auto"] == histories[_documented_auto()]  # same seed, same compute: the same losses
    assert histories["float32"] != histories["mixed_bfloat16"]
    np.testing.assert_allclose(histories["float32"], histories["mixed_bfloat16"], rtol=0.05)  # the same fit


def test_unknown_precision_is_refused():
    expected = r"precision must be one of \('auto', 'float32', 'mixed_bfloat16'\), got 'fp16'"
    with pytest.raises(OptionError, match=expected):
        FitConfig(precision="fp16")
