"""OpenVINO's own runtime (the ``openvino`` package, extra ``fast``) as a second backend of the Sharpener.

Why a second backend rather than onnxruntime's OpenVINO execution provider: ``onnxruntime-openvino``
replaces ``onnxruntime`` (the two cannot be installed side by side), while ``openvino`` reads ONNX files
itself and installs next to ``onnxruntime``: one environment runs both (``pip install "ssc-edge[fast]"``).
The measurements behind the choice are in ``benchmarks/RESULTS.md`` ("Precision in production").

:class:`OpenVinoSession` mimics the one method of ``onnxruntime.InferenceSession`` that
:class:`~ssc_edge.runtime.session.LoadedModel` calls (``run``), so tiling, batching and the model contract
stay where they are; OpenVINO compiles the bytes :func:`~ssc_edge.runtime.session.open_model` read.

Precision: ``bf16`` sets the CPU plugin's ``INFERENCE_PRECISION_HINT`` on the fp32 graph. OpenVINO
silently computes in f32 on a CPU that lacks bf16 instructions, so the hint is read back from the
compiled model and a request it did not honour is an error (:class:`~ssc_edge.errors.ProviderError`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from ..contract import INPUT_NAME, OUTPUT_NAME
from ..errors import ModelError, ProviderError

__all__ = ["INSTALL_HINT", "openvino_available", "openvino_version", "OpenVinoSession"]

logger = logging.getLogger(__name__)

#: The one command that adds this backend (docs/install.md, install table).
INSTALL_HINT = "pip install 'ssc-edge[fast]'"

#: ssc-edge precision -> OpenVINO element type of the inference-precision hint.
_HINTS = {"fp32": "f32", "bf16": "bf16"}


@cache
def openvino_available() -> bool:
    """True when the ``openvino`` package can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def openvino_version() -> str | None:
    """The installed ``openvino`` version, or None."""
    if not openvino_available():
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openvino")
    except PackageNotFoundError:  # importable but not pip-installed (a source build)
        return "unknown"


@cache
def _core():
    import openvino

    return openvino.Core()


class OpenVinoSession:
    """One OpenVINO CPU compiled model behind onnxruntime's ``session.run`` interface.

    Parameters
    ----------
    model : bytes
        The ONNX file's bytes (:attr:`~ssc_edge.runtime.session.ModelFile.data`).
    name : object
        Named in messages (the model's path).
    precision : {"fp32", "bf16"}
        Inference precision of the CPU plugin (the model stays fp32).
    threads : int, optional
        ``INFERENCE_NUM_THREADS`` (default: OpenVINO's, one per core).
    input_shape : sequence of int, optional
        Compile for this one input shape (batch, then the model's layout): every window of a tiled
        run has it, so the network is compiled once. None: a dynamic-shape compilation.

    Attributes
    ----------
    precision : str
        The precision the compiled model really computes in (read back from OpenVINO).

    Raises
    ------
    ProviderError
        ``openvino`` not installed, an unsupported precision, or a precision the CPU does not run.
    ModelError
        OpenVINO cannot read or compile the model.
    """

    def __init__(
        self,
        model: bytes,
        *,
        name: object = "model",
        precision: str = "fp32",
        threads: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if not openvino_available():
            raise ProviderError(f"OpenVINO is not installed; {INSTALL_HINT} adds it next to onnxruntime")
        if precision not in _HINTS:
            raise ProviderError(f"OpenVINO runs fp32 models in {' or '.join(_HINTS)}, not {precision!r}")
        core = _core()
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            import openvino

            graph = core.read_model(bytes(model), openvino.Tensor(np.empty(0, dtype=np.uint8)))
            if input_shape is not None:
                graph.reshape([int(n) for n in input_shape])
            self._compiled = core.compile_model(graph, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{name}: OpenVINO cannot compile this model ({message})") from None
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type: f32, bf16, f16
        effective = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.precision = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(effective, effective)
        if self.precision != precision:
            raise ProviderError(
                f"OpenVINO compiled {Path(str(name)).name} in {self.precision}, not {precision}: this CPU does not "
                "run it (bf16 needs AVX512-BF16 or AMX)"
            )
        self._output = self._compiled.output(OUTPUT_NAME)
        self._request = self._compiled.create_infer_request()
        logger.debug("OpenVINO %s on %s, input %s", self.precision, name, input_shape or "dynamic")

    def run(self, output_names: Sequence[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``onnxruntime.InferenceSession.run`` for the one output :data:`~ssc_edge.contract.OUTPUT_NAME`."""
        if list(output_names) != [OUTPUT_NAME]:
            raise ModelError(f"OpenVinoSession returns only {OUTPUT_NAME!r}, not {list(output_names)}")
        result = self._request.infer({INPUT_NAME: feed[INPUT_NAME]})
        return [np.array(result[self._output], dtype=np.float32, copy=True)]  # the request reuses its buffer
