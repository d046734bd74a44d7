"""Load an ssc-edge ONNX model, check it against its contract, and run it on (N, H, W, C) batches.

This is the only place in the library that changes tensor layout: callers hand in and get back
(N, H, W, C) arrays of normalised DN; a model exported as NCHW sees (N, C, H, W).

Only onnxruntime is needed (the ``onnx`` package is not): metadata comes from
``session.get_modelmeta().custom_metadata_map``. With ``provider="openvino"`` and no onnxruntime
OpenVINO provider, the model runs in OpenVINO's own runtime (:mod:`.openvino_backend`); its contract is
still read and checked with onnxruntime.

Precision (``precision=``): ``fp32`` runs an fp32 model as it is; ``bf16`` runs it in the provider's
reduced-precision mode (OpenVINO's bf16 inference-precision hint on the CPU, TensorRT's fp16 mode on a
GPU); ``fp16`` and ``int8`` name models made by ``ssc-edge optimize`` and are checked against the model's
metadata. Choosing a precision (``auto``) is :mod:`.precision`'s job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bands import GSD
from ..contract import INPUT_NAME, OUTPUT_NAME, ModelContract
from ..errors import ModelError, OptionError, ProviderError
from ..wald import UPSAMPLING_METHODS
from .openvino_backend import OpenVinoSession
from .providers import PROVIDERS, make_session, resolve_provider

__all__ = [
    "LoadedModel",
    "load_model",
    "check_contract",
    "check_model_kind",
    "read_model_contract",
    "GATE_KEY",
    "read_gate",
    "RUN_PRECISIONS",
]

#: Precisions a model can run in (``auto`` is resolved by :mod:`.precision` before it gets here).
RUN_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: Metadata key of the per-precision quality losses measured at export (JSON, see :mod:`.precision`).
GATE_KEY = "ssc_edge.precision_gate"
#: Providers with a reduced-precision mode for fp32 graphs: bf16 runs as this.
_REDUCED_MODES = {"openvino": "bf16 inference-precision hint", "tensorrt": "fp16 engine"}

logger = logging.getLogger(__name__)


def _channel_axis(layout: str) -> int:
    return 3 if layout == "NHWC" else 1


def _describe_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def check_contract(session, contract: ModelContract, *, source: object = "model") -> None:
    """Check that a session's graph keeps the promises of its contract.

    Raises
    ------
    ModelError
        Input or output missing or misnamed, not float32, not rank 4, or with a channel count
        other than the contract's band lists; bands that are not Sentinel-2 10/20/60 m bands;
        a ratio other than 2 (20 m outputs) or 6 (60 m outputs); an unknown upsampling method.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = [i.name for i in inputs]
    if names != [INPUT_NAME]:
        raise ModelError(f"{source}: expected one input named {INPUT_NAME!r}, found {names}")
    if OUTPUT_NAME not in [o.name for o in outputs]:
        raise ModelError(f"{source}: no output named {OUTPUT_NAME!r} (found {[o.name for o in outputs]})")
    output = next(o for o in outputs if o.name == OUTPUT_NAME)
    axis = _channel_axis(contract.layout)
    for value, channels, bands in (
        (inputs[0], contract.channels_in, contract.input_bands),
        (output, contract.channels_out, contract.output_bands),
    ):
        if value.type != "tensor(float)":
            raise ModelError(f"{source}: {value.name!r} is {value.type}, expected tensor(float) (float32)")
        shape = list(value.shape)
        layout = "(batch, height, width, channels)" if contract.layout == "NHWC" else "(batch, channels, height, width)"
        if len(shape) != 4:
            raise ModelError(
                f"{source}: {value.name!r} has rank {len(shape)} {_describe_shape(shape)}, "
                f"expected rank 4 {layout} ({contract.layout})"
            )
        if isinstance(shape[axis], int) and shape[axis] != channels:
            raise ModelError(
                f"{source}: {value.name!r} has {shape[axis]} channels {_describe_shape(shape)} but its metadata "
                f"lists {channels} bands ({', '.join(bands)}) in {contract.layout}"
            )
    ratios = {GSD.get(b, 0) // 10 for b in contract.output_bands}
    if contract.ratio not in (2, 6) or ratios != {contract.ratio}:
        raise ModelError(
            f"{source}: resolution ratio {contract.ratio} for output bands {', '.join(contract.output_bands)}; "
            "this runtime sharpens 20 m bands (ratio 2) or 60 m bands (ratio 6) to 10 m"
        )
    if contract.upsampling not in UPSAMPLING_METHODS:
        raise ModelError(
            f"{source}: unknown upsampling method {contract.upsampling!r} (known: {', '.join(UPSAMPLING_METHODS)})"
        )
    for band in contract.input_bands:
        if band not in GSD or GSD[band] not in (10, 20, 60):
            raise ModelError(f"{source}: input band {band!r} is not a Sentinel-2 10 m, 20 m or 60 m band")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An onnxruntime session on one provider with its checked :class:`ModelContract`.

    Attributes
    ----------
    path : Path
    session : onnxruntime.InferenceSession
    contract : ModelContract
    provider : str
        Short name of the provider that runs the session (``"cpu"``, ``"cuda"``...).
    precision : str
        What the network computes in: ``"fp32"``, ``"bf16"`` (an fp32 model in the provider's
        reduced-precision mode), ``"fp16"`` or ``"int8"`` (models made by ``ssc-edge optimize``).
    backend : str
        ``"onnxruntime"`` or ``"openvino"`` (OpenVINO's own runtime).
    gate : dict
        Quality losses stored in the model's metadata (:data:`GATE_KEY`), ``{}`` when none.
    """

    path: Path
    session: Any
    contract: ModelContract
    provider: str
    precision: str = "fp32"
    backend: str = "onnxruntime"
    gate: Mapping[str, Any] = field(default_factory=dict)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a batch.

        Parameters
        ----------
        batch : (N, H, W, C_in) float32 ndarray
            Normalised input (DN / ``contract.scale``), ``contract.input_bands`` order.

        Returns
        -------
        (N, H, W, C_out) float32 ndarray
            Normalised output, ``contract.output_bands`` order.
        """
        nchw = self.contract.layout == "NCHW"
        feed = np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if nchw else batch, dtype=np.float32)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: feed})
        expected = (
            (batch.shape[0], self.contract.channels_out, *batch.shape[1:3])
            if nchw
            else ((*batch.shape[:3], self.contract.channels_out))
        )
        if out.shape != expected:
            raise ModelError(
                f"{self.path}: output shape {out.shape} for input {feed.shape}, expected {expected}; "
                "the model does not keep the input's height and width"
            )
        return out.transpose(0, 2, 3, 1) if nchw else out


def _read_contract(session, source: object) -> ModelContract:
    metadata: Mapping[str, str] = session.get_modelmeta().custom_metadata_map
    return ModelContract.from_metadata(metadata, source=source)


def read_gate(session, *, source: object = "model") -> dict[str, Any]:
    """The per-precision quality losses in a session's model metadata (:data:`GATE_KEY`); ``{}`` if none."""
    raw = session.get_modelmeta().custom_metadata_map.get(GATE_KEY)
    if not raw:
        return {}
    try:
        gate = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{source}: metadata {GATE_KEY} is not valid JSON ({exc.msg})") from None
    if not isinstance(gate, dict):
        raise ModelError(f"{source}: metadata {GATE_KEY} is not a JSON object")
    return gate


def _check_precision(precision: str, contract: ModelContract, source: object) -> None:
    """Raise unless ``precision`` can run this model."""
    if precision not in RUN_PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; choose auto or one of {', '.join(RUN_PRECISIONS)}")
    if precision in ("fp16", "int8") and contract.precision != precision:
        raise OptionError(
            f"{source}: is an {contract.precision} model; --precision {precision} runs a model made by "
            f"ssc-edge optimize --precision {precision}"
        )
    if precision in ("fp32", "bf16") and contract.precision != "fp32":
        raise OptionError(
            f"{source}: is an {contract.precision} model (made by ssc-edge optimize); run it with --precision "
            f"{contract.precision} or auto, or run its fp32 parent in {precision}"
        )


def load_model(
    model_path: Path,
    *,
    provider: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
    **session_options: Any,
) -> LoadedModel:
    """Open an ssc-edge ONNX model on an execution provider and check it.

    Parameters
    ----------
    model_path : Path
        ONNX file exported by ``ssc-edge fit-and-export`` (or anything keeping the contract).
    provider : str
        ``"auto"`` or a short provider name, see :mod:`ssc_edge.runtime.providers`.
    threads : int, optional
        CPU intra-op threads.
    precision : {"fp32", "bf16", "fp16", "int8"}, optional
        See the module docstring; None runs the model as it is stored (its own precision).
    **session_options
        Passed to :func:`~ssc_edge.runtime.providers.make_session` (``fp16``, ``cache_dir``,
        ``input_shape``, ``dimension_names``, ``optimization``). OpenVINO's own runtime uses
        ``input_shape`` only.

    Raises
    ------
    ModelError
        Missing, corrupt or non-ONNX file; no ssc-edge metadata; graph inconsistent with it.
    ProviderError
        Provider unknown, unavailable, or not really used by the session; bf16 on a provider without
        a reduced-precision mode or on a CPU that does not run it.
    OptionError
        ``precision`` does not match the model (fp16/int8 name models made by ``optimize``).
    """
    path = Path(model_path)
    if precision is not None and precision not in RUN_PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; choose auto or one of {', '.join(RUN_PRECISIONS)}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    name = resolve_provider(provider)
    if precision == "bf16" and name not in _REDUCED_MODES:
        raise ProviderError(
            f"{PROVIDERS[name]} has no reduced-precision mode for an fp32 model; bf16 runs on openvino "
            "(a CPU with AVX512-BF16 or AMX) or tensorrt (fp16 engine)"
        )
    own_openvino = name == "openvino" and PROVIDERS[name] not in _ort_providers()
    if own_openvino:  # OpenVINO's own runtime; onnxruntime (no graph optimisation: cheap) reads the contract
        meta_session, _ = make_session(path, provider="cpu", threads=1, optimization="disabled")
    else:
        if precision == "bf16":  # the provider's reduced-precision mode on the fp32 graph
            session_options = {**session_options, ("bf16" if name == "openvino" else "fp16"): True}
        meta_session, name = make_session(path, provider=name, threads=threads, **session_options)
    contract = _read_contract(meta_session, path)
    check_contract(meta_session, contract, source=path)
    gate = read_gate(meta_session, source=path)
    if precision is not None:
        _check_precision(precision, contract, path)
    running = precision or contract.precision
    session = meta_session
    if own_openvino:
        session = OpenVinoSession(
            path, precision=running, threads=threads, input_shape=session_options.get("input_shape")
        )
    logger.debug(
        "%s: halo %d px, scale %g, layout %s, on %s in %s",
        path,
        contract.halo,
        contract.scale,
        contract.layout,
        name,
        running,
    )
    return LoadedModel(
        path=path,
        session=session,
        contract=contract,
        provider=name,
        precision=running,
        backend="openvino" if own_openvino else "onnxruntime",
        gate=gate,
    )


def _ort_providers() -> list[str]:
    import onnxruntime

    return onnxruntime.get_available_providers()


def read_model_contract(model_path: Path) -> ModelContract:
    """The checked contract of a model file, without running it (onnxruntime on the CPU, no graph optimisation).

    Raises
    ------
    ModelError
        As :func:`load_model`: missing, corrupt, no ssc-edge metadata, graph inconsistent with it.
    """
    return load_model(Path(model_path), provider="cpu", threads=1, optimization="disabled").contract


def check_model_kind(contract: ModelContract, *, ratio: int, source: object = "model") -> None:
    """Raise :class:`ModelError` unless the model sharpens the bands of ``ratio`` (2: 20 m bands, 6: 60 m bands).

    ``infer`` takes the 20 m model as MODEL and the 60 m model (``NAME_60m.onnx``) as ``--model-60m``; a model
    given in the other place is named with what it is and where it goes.
    """
    if contract.ratio == ratio:
        return
    outputs = " ".join(contract.output_bands)
    if contract.ratio == 6:
        raise ModelError(f"{source}: is a 60 m model (outputs {outputs}); pass it as --model-60m")
    raise ModelError(
        f"{source}: is a {10 * contract.ratio} m model (outputs {outputs}), not a 60 m model; pass it as MODEL "
        "(the 60 m model is NAME_60m.onnx from fit-and-export --bands all)"
    )
