"""Read an ssc-edge ONNX model once, check it against its contract, and run it on (N, H, W, C) batches.

:func:`open_model` reads the file once into a :class:`ModelFile`: its bytes, the graph's operators and
input and output (read from the protobuf here, without the ``onnx`` package), the contract and the
precision gate of its metadata, all checked before any session exists. Graphs with operators an exported
SSC-CNN never has (control flow: ``Loop``, ``If``, ``Scan``; any operator outside the default ONNX domain;
model-local functions) are refused there: a ``Loop`` of 10^12 trips would otherwise run for ever.
:meth:`ModelFile.load` builds sessions from those bytes, one per provider and precision, and keeps them,
so the precision gate and the run share them and no file is opened twice.

This is the only place in the library that changes tensor layout: callers hand in and get back
(N, H, W, C) arrays of normalised DN; a model exported as NCHW sees (N, C, H, W).
With ``provider="openvino"`` and no onnxruntime OpenVINO provider, the model runs in OpenVINO's own
runtime (:mod:`.openvino_backend`) from the same bytes. Choosing a precision (``auto``) is :mod:`.precision`'s.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import INPUT_NAME, OUTPUT_NAME, ModelContract, parse_json
from ..errors import ModelError, OptionError, ProviderError
from ..wald import UPSAMPLING_METHODS
from .openvino_backend import OpenVinoSession
from .providers import PROVIDERS, make_session, resolve_provider

__all__ = [
    "ModelFile",
    "open_model",
    "LoadedModel",
    "load_model",
    "check_contract",
    "check_model_kind",
    "GATE_KEY",
    "RUN_PRECISIONS",
    "MAX_MODEL_BYTES",
    "REFUSED_OPS",
]

#: Precisions a model can run in (``auto`` is resolved by :mod:`.precision` before it gets here).
RUN_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: Metadata key of the per-precision quality losses measured at export (JSON, see :mod:`.precision`).
GATE_KEY = "ssc_edge.precision_gate"
#: Providers with a reduced-precision mode for fp32 graphs: bf16 runs as this.
_REDUCED_MODES = {"openvino": "bf16 inference-precision hint", "tensorrt": "fp16 engine"}
#: Largest model file read, bytes (a width-128 SSC-CNN is about 7 MB; protobuf's own limit is 2 GiB).
MAX_MODEL_BYTES = 512 << 20
#: Operators an exported SSC-CNN never has: control flow, whose trip count the file chooses.
REFUSED_OPS = frozenset({"Loop", "If", "Scan", "SequenceMap"})
#: ONNX TensorProto element type of float32.
_FLOAT = 1

logger = logging.getLogger(__name__)


# -- the ONNX protobuf, read without the onnx package ------------------------------------------------------
# field numbers of onnx.proto: ModelProto graph 7, metadata_props 14, functions 25; GraphProto node 1,
# initializer 5, input 11, output 12; NodeProto op_type 4, attribute 5, domain 7; AttributeProto g 6,
# graphs 11; ValueInfoProto name 1, type 2; TypeProto tensor_type 1; Tensor elem_type 1, shape 2;
# TensorShapeProto dim 1; Dimension dim_value 1; StringStringEntryProto key 1, value 2; TensorProto name 8.


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field, wire type, value)`` of one protobuf message: an int (varint, fixed) or a memoryview (bytes)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("a field runs past the end")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            value, pos = 0, pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past the end")
        yield number, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("a truncated number")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _all(buf: memoryview, number: int) -> list[Any]:
    return [value for n, _, value in _fields(buf) if n == number]


def _one(buf: memoryview, number: int, default: Any = None) -> Any:
    found = _all(buf, number)
    return found[-1] if found else default


def _text(buf: memoryview, number: int) -> str:
    value = _one(buf, number)
    return bytes(value).decode("utf-8", "replace") if isinstance(value, memoryview) else ""


@dataclass(frozen=True)
class _Tensor:
    """A graph input or output as the file declares it: name, element type, dimensions (None: free)."""

    name: str
    elem_type: int
    shape: tuple[int | None, ...] | None

    @staticmethod
    def read(value_info: memoryview) -> _Tensor:
        tensor = _one(_one(value_info, 2, memoryview(b"")), 1, memoryview(b""))
        shape = _one(tensor, 2)
        dims = None if shape is None else tuple(_one(d, 1) if _all(d, 1) else None for d in _all(shape, 1))
        return _Tensor(_text(value_info, 1), _one(tensor, 1, 0), dims)


def _operators(graph: memoryview) -> Iterator[tuple[str, str, bool]]:
    """``(op_type, domain, has a subgraph)`` of every node of a graph."""
    for node in _all(graph, 1):
        subgraph = any(_all(attribute, 6) or _all(attribute, 11) for attribute in _all(node, 5))
        yield _text(node, 4), _text(node, 7), subgraph


def _scan(data: bytes, source: object) -> tuple[dict[str, str], list[_Tensor], list[_Tensor]]:
    """Metadata, graph inputs (initializers left out) and outputs of an ONNX file; refuses foreign operators."""
    try:
        model = memoryview(data)
        graph = _one(model, 7)
        if not isinstance(graph, memoryview):
            raise ValueError("no graph")
        if _all(model, 25):
            raise ModelError(f"{source}: the model defines its own functions; an exported SSC-CNN has none")
        for op, domain, subgraph in _operators(graph):
            if op in REFUSED_OPS or subgraph:
                raise ModelError(
                    f"{source}: the graph has a {op} node (control flow); an exported SSC-CNN has none, so it is "
                    "refused before it runs"
                )
            if domain not in ("", "ai.onnx"):
                raise ModelError(
                    f"{source}: the graph has a {op} node of domain {domain!r}; an exported SSC-CNN uses only "
                    "standard ONNX operators"
                )
        metadata = {_text(entry, 1): _text(entry, 2) for entry in _all(model, 14)}
        constants = {_text(tensor, 8) for tensor in _all(graph, 5)}
        inputs = [t for t in map(_Tensor.read, _all(graph, 11)) if t.name not in constants]
        outputs = [_Tensor.read(value) for value in _all(graph, 12)]
    except ModelError:
        raise
    except (ValueError, IndexError) as exc:
        raise ModelError(f"{source}: not an ONNX model (damaged protobuf: {exc})") from None
    return metadata, inputs, outputs


def _describe_shape(shape: Sequence[Any] | None) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape or ()) + ")"


def check_contract(inputs: Sequence[Any], outputs: Sequence[Any], contract: ModelContract, *, source: object) -> None:
    """Check that a graph's declared input and output keep the promises of its contract.

    ``inputs`` and ``outputs`` have ``name``, ``elem_type`` (ONNX element type, 1 = float32) and ``shape``.

    Raises
    ------
    ModelError
        Input or output missing or misnamed, not float32, not rank 4, or with a channel count other than
        the contract's band lists; an unknown upsampling method.
    """
    names = [i.name for i in inputs]
    if names != [INPUT_NAME]:
        raise ModelError(f"{source}: expected one input named {INPUT_NAME!r}, found {names}")
    output = next((o for o in outputs if o.name == OUTPUT_NAME), None)
    if output is None:
        raise ModelError(f"{source}: no output named {OUTPUT_NAME!r} (found {[o.name for o in outputs]})")
    axis = 3 if contract.layout == "NHWC" else 1
    layout = "(batch, height, width, channels)" if contract.layout == "NHWC" else "(batch, channels, height, width)"
    for value, bands in ((inputs[0], contract.input_bands), (output, contract.output_bands)):
        if value.elem_type != _FLOAT:
            raise ModelError(f"{source}: {value.name!r} has ONNX element type {value.elem_type}, expected float32")
        shape = list(value.shape or ())
        if len(shape) != 4:
            raise ModelError(
                f"{source}: {value.name!r} has rank {len(shape)} {_describe_shape(shape)}, "
                f"expected rank 4 {layout} ({contract.layout})"
            )
        if shape[axis] is not None and shape[axis] != len(bands):
            raise ModelError(
                f"{source}: {value.name!r} has {shape[axis]} channels {_describe_shape(shape)} but its metadata "
                f"lists {len(bands)} bands ({', '.join(bands)}) in {contract.layout}"
            )
    if contract.upsampling not in UPSAMPLING_METHODS:
        raise ModelError(
            f"{source}: unknown upsampling method {contract.upsampling!r} (known: {', '.join(UPSAMPLING_METHODS)})"
        )


def open_model(model_path: Path) -> ModelFile:
    """Read an ssc-edge ONNX file once and check everything about it that needs no session.

    Parameters
    ----------
    model_path : Path
        ONNX file exported by ``ssc-edge fit-and-export`` (or anything keeping the contract).

    Raises
    ------
    ModelError
        Missing, not a regular file, empty, larger than :data:`MAX_MODEL_BYTES`, not ONNX; a graph with an
        operator of :data:`REFUSED_OPS`, a custom domain or its own functions; no ssc-edge metadata, metadata
        JSON too long or nested too deep (:func:`ssc_edge.contract.parse_json`); a graph inconsistent with it.
    """
    path = Path(model_path)
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ModelError(f"{path}: no such model file" if not path.exists() else f"{path}: not a regular file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_MODEL_BYTES + 1)
    if not data:
        raise ModelError(f"{path}: model file is empty")
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: larger than {MAX_MODEL_BYTES >> 20} MiB; an SSC-CNN model is a few MB")
    metadata, inputs, outputs = _scan(data, path)
    contract = ModelContract.from_metadata(metadata, source=path)
    check_contract(inputs, outputs, contract, source=path)
    gate = parse_json(metadata[GATE_KEY], what=f"metadata {GATE_KEY}", source=path) if metadata.get(GATE_KEY) else {}
    if not isinstance(gate, dict):
        raise ModelError(f"{path}: metadata {GATE_KEY} is not a JSON object")
    return ModelFile(path, data, contract, gate)


@dataclass(frozen=True, eq=False)
class ModelFile:
    """An ssc-edge model read once (:func:`open_model`): its bytes, checked contract and gate, and its sessions.

    Attributes
    ----------
    path : Path
    data : bytes
        The file's bytes; every session is built from them.
    contract : ModelContract
    gate : dict
        Quality losses stored in the metadata (:data:`GATE_KEY`), ``{}`` when none.
    """

    path: Path
    data: bytes = field(repr=False)
    contract: ModelContract
    gate: Mapping[str, Any] = field(default_factory=dict)
    _sessions: dict = field(default_factory=dict, repr=False)

    @property
    def sessions(self) -> tuple[LoadedModel, ...]:
        """The sessions built so far, in the order they were built."""
        return tuple(self._sessions.values())

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of :attr:`data`."""
        return hashlib.sha256(self.data).hexdigest()

    def load(self, *, provider: str = "auto", threads: int | None = None, precision: str | None = None,
             **session_options: Any) -> LoadedModel:  # fmt: skip
        """A session of this model (:func:`load_model`), built on the first request and kept for later ones."""
        key = (resolve_provider(provider), threads, precision, repr(sorted(session_options.items())))
        if key not in self._sessions:
            self._sessions[key] = load_model(
                self, provider=provider, threads=threads, precision=precision, **session_options
            )
        return self._sessions[key]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A session on one provider of a :class:`ModelFile`.

    Attributes
    ----------
    model : ModelFile
    session : onnxruntime.InferenceSession or OpenVinoSession
    provider : str
        Short name of the provider that runs the session (``"cpu"``, ``"cuda"``...).
    precision : str
        What the network computes in: ``"fp32"``, ``"bf16"`` (an fp32 model in the provider's
        reduced-precision mode), ``"fp16"`` or ``"int8"`` (models made by ``ssc-edge optimize``).
    backend : str
        ``"onnxruntime"`` or ``"openvino"`` (OpenVINO's own runtime).
    input_shape : tuple of int or None
        The one input shape the session was built for (static-shape providers), None when dynamic.
    """

    model: ModelFile
    session: Any
    provider: str
    precision: str = "fp32"
    backend: str = "onnxruntime"
    input_shape: tuple[int, ...] | None = None

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def contract(self) -> ModelContract:
        return self.model.contract

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
        channels = self.contract.channels_out
        expected = (batch.shape[0], channels, *batch.shape[1:3]) if nchw else (*batch.shape[:3], channels)
        if out.shape != expected:
            raise ModelError(
                f"{self.path}: output shape {out.shape} for input {feed.shape}, expected {expected}; "
                "the model does not keep the input's height and width"
            )
        return out.transpose(0, 2, 3, 1) if nchw else out


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
    model: Path | ModelFile,
    *,
    provider: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
    **session_options: Any,
) -> LoadedModel:
    """Build a session of an ssc-edge ONNX model on an execution provider.

    Parameters
    ----------
    model : Path or ModelFile
        A path is read with :func:`open_model`; a :class:`ModelFile` is used as it is (no file opened).
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
        As :func:`open_model`; onnxruntime or OpenVINO cannot build the graph.
    ProviderError
        Provider unknown, unavailable, or not really used by the session; bf16 on a provider without
        a reduced-precision mode or on a CPU that does not run it.
    OptionError
        ``precision`` does not match the model (fp16/int8 name models made by ``optimize``).
    """
    model = model if isinstance(model, ModelFile) else open_model(model)
    if precision is not None:
        _check_precision(precision, model.contract, model.path)
    name = resolve_provider(provider)
    if precision == "bf16" and name not in _REDUCED_MODES:
        raise ProviderError(
            f"{PROVIDERS[name]} has no reduced-precision mode for an fp32 model; bf16 runs on openvino "
            "(a CPU with AVX512-BF16 or AMX) or tensorrt (fp16 engine)"
        )
    running = precision or model.contract.precision
    own_openvino = name == "openvino" and PROVIDERS[name] not in _ort_providers()
    if own_openvino:
        session = OpenVinoSession(model.data, name=model.path, precision=running, threads=threads,
                                  input_shape=session_options.get("input_shape"))  # fmt: skip
    else:
        if precision == "bf16":  # the provider's reduced-precision mode on the fp32 graph
            session_options = {**session_options, ("bf16" if name == "openvino" else "fp16"): True}
        session, name = make_session(model.data, provider=name, threads=threads, name=model.path, **session_options)
    logger.debug("%s: halo %d px, scale %g, layout %s, on %s in %s", model.path, model.contract.halo,
                 model.contract.scale, model.contract.layout, name, running)  # fmt: skip
    shape = session_options.get("input_shape")
    return LoadedModel(model, session, name, running, "openvino" if own_openvino else "onnxruntime",
                       None if shape is None else tuple(shape))  # fmt: skip


def _ort_providers() -> list[str]:
    import onnxruntime

    return onnxruntime.get_available_providers()


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
