"""Provider names, auto selection, unavailable providers, and the check against silent fallback."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from ssc_edge.errors import OptionError, ProviderError
from ssc_edge.runtime import providers
from ssc_edge.runtime.providers import (
    AUTO_ORDER,
    PROVIDERS,
    available_providers,
    make_session,
    provider_options,
    resolve_provider,
)


def test_short_names_map_to_onnxruntime_names():
    assert PROVIDERS["cpu"] == "CPUExecutionProvider"
    assert PROVIDERS["tensorrt"] == "TensorrtExecutionProvider"
    assert set(PROVIDERS) == {"cpu", "cuda", "tensorrt", "openvino", "coreml", "dml"}
    assert AUTO_ORDER == ("tensorrt", "cuda", "openvino", "coreml", "dml", "cpu")


def test_available_providers_follow_the_auto_order_and_include_cpu():
    available = available_providers()
    assert "cpu" in available
    assert list(available) == [p for p in AUTO_ORDER if PROVIDERS[p] in ort.get_available_providers()]


def test_auto_takes_the_best_available(monkeypatch):
    assert resolve_provider("auto") == available_providers()[0]
    monkeypatch.setattr(providers, "available_providers", lambda: ("cuda", "openvino", "cpu"))
    assert resolve_provider("auto") == "cuda"
    assert resolve_provider("CUDAExecutionProvider") == "cuda"
    assert resolve_provider("CPU") == "cpu"


def test_unknown_provider_is_refused():
    with pytest.raises(ProviderError, match="unknown execution provider 'gpu'; choose auto or one of"):
        resolve_provider("gpu")


def test_unavailable_provider_lists_the_available_ones():
    missing = next(p for p in AUTO_ORDER if p not in available_providers())
    with pytest.raises(ProviderError, match=rf"{missing} .* is not available .*; available: .*cpu"):
        resolve_provider(missing)


def test_silent_fallback_is_detected(monkeypatch, nhwc_model):
    """onnxruntime falls back to the CPU without error when CUDA cannot start; make_session must not."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA really is available here")
    monkeypatch.setattr(providers, "available_providers", lambda: ("cuda", "cpu"))
    with pytest.raises(ProviderError, match="CUDAExecutionProvider was requested but onnxruntime fell back to"):
        make_session(nhwc_model, provider="cuda")


def test_make_session_reports_the_provider_that_runs(nhwc_model):
    session, name = make_session(nhwc_model, provider="cpu", threads=1)
    assert name == "cpu"
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_static_dimensions_can_be_fixed(nhwc_model):
    session, _ = make_session(nhwc_model, provider="cpu", dimension_names={"batch": 2, "height": 16, "width": 16})
    assert session.get_inputs()[0].shape == [2, 16, 16, 10]


def test_bad_threads_and_optimisation_level(nhwc_model):
    with pytest.raises(OptionError, match="threads must be a positive integer"):
        make_session(nhwc_model, provider="cpu", threads=0)
    with pytest.raises(OptionError, match="unknown graph optimisation level"):
        make_session(nhwc_model, provider="cpu", optimization="max")


def test_tensorrt_options_cache_engines_and_fix_the_profile(tmp_path):
    options = provider_options("tensorrt", fp16=True, cache_dir=tmp_path, input_shape=(1, 512, 512, 10))
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_fp16_enable"] is True
    assert options["trt_profile_min_shapes"] == options["trt_profile_max_shapes"] == "bands:1x512x512x10"
    assert provider_options("cpu") == {}
    assert provider_options("cuda")["device_id"] == 0
