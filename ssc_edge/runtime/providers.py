"""onnxruntime execution providers: short names, availability, and sessions that really use them.

Short names (what ``--provider`` accepts) map to onnxruntime provider names:

========  ===============================  ===========================================
short     onnxruntime                      installed by
========  ===============================  ===========================================
tensorrt  ``TensorrtExecutionProvider``    ``onnxruntime-gpu`` + TensorRT libraries
cuda      ``CUDAExecutionProvider``        ``onnxruntime-gpu``
openvino  ``OpenVINOExecutionProvider``    ``onnxruntime-openvino``, or OpenVINO's own runtime
                                           (``openvino``, extra ``fast``; see :mod:`.openvino_backend`)
coreml    ``CoreMLExecutionProvider``      ``onnxruntime`` on macOS
dml       ``DmlExecutionProvider``         ``onnxruntime-directml`` (Windows)
cpu       ``CPUExecutionProvider``         every build
========  ===============================  ===========================================

``auto`` takes the first available onnxruntime provider in that order (:data:`AUTO_ORDER`); OpenVINO's
own runtime is not part of ``auto`` (it runs when ``openvino`` is named, or for ``--precision bf16|auto``
on a CPU with bf16 instructions: :mod:`.precision`). onnxruntime silently falls back to the CPU when a
provider fails to initialise (missing CUDA libraries, say), so :func:`make_session` checks
``session.get_providers()`` and raises :class:`~ssc_edge.errors.ProviderError` when it is not really there.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..contract import INPUT_NAME
from ..errors import ModelError, OptionError, ProviderError, check_positive
from .openvino_backend import INSTALL_HINT, openvino_available

__all__ = [
    "PROVIDERS",
    "AUTO_ORDER",
    "STATIC_SHAPE_PROVIDERS",
    "available_providers",
    "resolve_provider",
    "provider_options",
    "short_name",
    "make_session",
]

logger = logging.getLogger(__name__)

#: Short name -> onnxruntime provider name.
PROVIDERS: Mapping[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

#: Preference of ``provider="auto"``, best first.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "openvino", "coreml", "dml", "cpu")

#: Providers that compile one engine per input shape: give them fixed tile shapes.
STATIC_SHAPE_PROVIDERS: frozenset[str] = frozenset({"tensorrt", "openvino", "coreml"})


def _ort():
    import onnxruntime

    return onnxruntime


def available_providers() -> tuple[str, ...]:
    """Short names of the providers this onnxruntime build offers, in :data:`AUTO_ORDER`."""
    offered = set(_ort().get_available_providers())
    return tuple(name for name in AUTO_ORDER if PROVIDERS[name] in offered)


def short_name(ort_name: str) -> str:
    """The short name of an onnxruntime provider name (``CUDAExecutionProvider`` -> ``cuda``)."""
    return next((short for short, full in PROVIDERS.items() if full == ort_name), ort_name)


def resolve_provider(provider: str = "auto") -> str:
    """Turn ``provider`` (a short name, an onnxruntime name, or ``"auto"``) into an available short name.

    Raises
    ------
    ProviderError
        If the name is unknown or the provider is not available in this onnxruntime build; the
        message lists the available ones.
    """
    available = available_providers()
    name = short_name(provider) if provider in PROVIDERS.values() else str(provider).lower()
    if name == "auto":
        return available[0] if available else "cpu"
    if name not in PROVIDERS:
        raise ProviderError(f"unknown execution provider {provider!r}; choose auto or one of {', '.join(PROVIDERS)}")
    if name == "openvino" and name not in available and openvino_available():
        return name  # OpenVINO's own runtime (session.load_model runs it)
    if name not in available:
        hint = f" (or {INSTALL_HINT} for OpenVINO's own runtime)" if name == "openvino" else ""
        raise ProviderError(
            f"execution provider {name} ({PROVIDERS[name]}) is not available in this onnxruntime build; "
            f"available: {', '.join(available)}{hint}"
        )
    return name


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "ssc-edge"


def provider_options(
    provider: str,
    *,
    fp16: bool = False,
    cache_dir: Path | None = None,
    input_shape: Sequence[int] | None = None,
    bf16: bool = False,
) -> dict[str, Any]:
    """Sensible onnxruntime options for one provider (short name), for
    ``onnxruntime.InferenceSession(providers=[(name, options)])``; CUDA and TensorRT run on GPU 0.

    Parameters
    ----------
    fp16 : bool
        Let TensorRT build fp16 engines (faster, slightly less exact).
    cache_dir : Path, optional
        Where TensorRT keeps built engines and timing caches (default ``$XDG_CACHE_HOME/ssc-edge/tensorrt`` or
        ``~/.cache/ssc-edge/tensorrt``): building an engine takes tens of seconds, loading one well under one.
    input_shape : sequence of int, optional
        The one input shape the session will see (batch, then the model's layout): TensorRT builds a single
        optimisation profile for exactly that shape.
    bf16 : bool
        OpenVINO: compute the fp32 graph in bfloat16 (the CPU plugin's inference-precision hint).
    """
    if provider == "tensorrt":
        cache = Path(cache_dir) if cache_dir is not None else _cache_root() / "tensorrt"
        options: dict[str, Any] = {
            "device_id": 0,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": bool(fp16),
        }
        if input_shape is not None:
            shape = f"{INPUT_NAME}:{'x'.join(str(int(n)) for n in input_shape)}"
            options.update(trt_profile_min_shapes=shape, trt_profile_opt_shapes=shape, trt_profile_max_shapes=shape)
        return options
    if provider == "cuda":
        # EXHAUSTIVE cuDNN search costs a little once per shape; tiles share one shape.
        return {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE", "arena_extend_strategy": "kSameAsRequested"}
    if provider == "openvino":
        options = {"device_type": "CPU", "precision": "FP16" if fp16 else "FP32"}
        if bf16:
            options["load_config"] = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}})
        return options
    if provider == "coreml":
        return {"ModelFormat": "MLProgram", "RequireStaticInputShapes": "1" if input_shape is not None else "0"}
    return {}


def make_session(
    model_path: Path | bytes,
    *,
    provider: str = "auto",
    threads: int | None = None,
    fp16: bool = False,
    bf16: bool = False,
    cache_dir: Path | None = None,
    input_shape: Sequence[int] | None = None,
    dimension_names: Mapping[str, int] | None = None,
    optimization: str = "all",
    memory_pattern: bool = True,
    name: object = None,
):
    """Create an onnxruntime session on one execution provider and check that it really runs there.

    Parameters
    ----------
    model_path : Path or bytes
        ONNX file, or a serialised model.
    provider : str
        ``"auto"``, a short name (:data:`PROVIDERS`) or an onnxruntime provider name.
    threads : int, optional
        Intra-op threads on the CPU (default: onnxruntime's, one per physical core).
    fp16, bf16, cache_dir, input_shape
        See :func:`provider_options`.
    dimension_names : mapping of str to int, optional
        Fix named free dimensions (``{"batch": 1, "height": 512, "width": 512}``) for every
        provider (onnxruntime free-dimension overrides): static shapes for providers that want them.
    optimization : {"all", "extended", "basic", "disabled"}
        onnxruntime graph optimisation level.
    memory_pattern : bool
        onnxruntime's memory-pattern planning. It pre-allocates one block per input shape and, on the
        CPU, nearly doubles peak memory (width-128 SSC-CNN, one 512 x 512 tile: 1.9 GB with it,
        1.1 GB without, same speed); :class:`~ssc_edge.runtime.Sharpener` turns it off.
    name : object, optional
        Named in messages (default: the path, or ``model`` for bytes).

    Returns
    -------
    (onnxruntime.InferenceSession, str)
        The session and the short name of the provider that runs it.

    Raises
    ------
    ProviderError
        Unknown or unavailable provider, or onnxruntime fell back to another one.
    OptionError
        ``threads`` < 1 or an unknown ``optimization``.
    ModelError
        onnxruntime cannot load the model.
    """
    ort = _ort()
    shown = name if name is not None else "model" if isinstance(model_path, bytes) else str(model_path)
    name = resolve_provider(provider)
    if name == "openvino" and PROVIDERS[name] not in ort.get_available_providers():
        raise ProviderError(
            "OpenVINO's own runtime is not an onnxruntime provider; load the model with "
            "ssc_edge.runtime.load_model or Sharpener, which run it"
        )
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise OptionError(f"unknown graph optimisation level {optimization!r}; choose one of {', '.join(levels)}")
    if threads is not None:
        check_positive(threads, "threads")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = levels[optimization]
    options.enable_mem_pattern = bool(memory_pattern)
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    for dim, size in (dimension_names or {}).items():
        options.add_free_dimension_override_by_name(dim, int(size))
    if name == "dml":  # DirectML needs these (onnxruntime documentation)
        options.enable_mem_pattern = False
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    provider_opts = provider_options(name, fp16=fp16, bf16=bf16, cache_dir=cache_dir, input_shape=input_shape)
    if name == "tensorrt":
        Path(provider_opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    chain: list[tuple[str, dict[str, Any]]] = [(PROVIDERS[name], provider_opts)]
    if name == "tensorrt":  # TensorRT hands nodes it cannot build to CUDA
        chain.append((PROVIDERS["cuda"], provider_options("cuda")))
    if name != "cpu":
        chain.append((PROVIDERS["cpu"], {}))
    source = model_path if isinstance(model_path, bytes) else str(model_path)
    try:
        with warnings.catch_warnings():  # the fallback warning is replaced by the check below
            warnings.simplefilter("ignore", UserWarning)
            session = ort.InferenceSession(
                source, options, providers=[p for p, _ in chain], provider_options=[o for _, o in chain]
            )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if name != "cpu" and "provider" in message.lower():
            raise ProviderError(f"{shown}: cannot start {PROVIDERS[name]} ({message})") from None
        raise ModelError(f"{shown}: onnxruntime cannot load this model ({message})") from None
    running = session.get_providers()
    if PROVIDERS[name] not in running:
        raise ProviderError(
            f"{PROVIDERS[name]} was requested but onnxruntime fell back to {', '.join(running)} "
            f"(are its libraries installed?); available: {', '.join(available_providers())}"
        )
    logger.debug("onnxruntime session on %s (%s)", name, ", ".join(running))
    return session, name
