"""Count the floating-point operations of an ONNX graph for one input size.

Convention
----------
One multiply-add is 2 FLOPs. Per output element:

- ``Conv``: ``2 * Cin / groups * kh * kw`` (+1 with a bias), i.e. ``(2 * Cin / groups * kh * kw + bias) * Cout``
  per output pixel; ``MatMul`` / ``Gemm``: ``2 * K`` (+1 with a ``Gemm`` bias).
- Element-wise arithmetic and activations (``Add``, ``Mul``, ``LeakyRelu``, ``Relu``, ...): 1.
- Data movement and precision changes (``Transpose``, ``Concat``, ``Slice``, ``Reshape``, ``Cast``,
  ``QuantizeLinear``, ``DequantizeLinear``, ...): 0, so that an fp16 or int8 model of a network counts the
  same FLOPs as its fp32 parent and achieved GFLOP/s compare across precisions.

Shapes come from ``onnx.shape_inference`` after fixing the input's ``batch``, ``height`` and ``width``.
``onnx`` is part of the ``train`` extra; a runtime-only install gets :class:`FlopsUnavailable` from
:func:`count_flops`, and :mod:`ssc_edge.runtime.bench` then reports FLOPs as not available.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import ModelContract
from ..errors import ModelError, SscEdgeError, check_positive

__all__ = ["FlopCount", "FlopsUnavailable", "count_flops"]

#: Operators that cost 1 FLOP per output element.
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Max",
                          "Min", "Abs", "Neg", "Sqrt", "Exp", "Log", "Pow", "Elu", "Selu", "HardSigmoid", "Softplus",
                          "Erf"})  # fmt: skip


class FlopsUnavailable(SscEdgeError, ImportError):
    """FLOPs cannot be counted here: the ``onnx`` package (the ``train`` extra) is not installed."""


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass.

    Attributes
    ----------
    total : int
        FLOPs (multiply-add = 2) of one run on ``(batch, height, width)``.
    by_op : dict of str to int
        FLOPs per ONNX operator type (only types that count).
    batch, height, width : int
        The input size counted, pixels of the fine grid.
    """

    total: int
    batch: int
    height: int
    width: int
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def per_pixel(self) -> float:
        """FLOPs per input pixel (``total / (batch * height * width)``)."""
        return self.total / (self.batch * self.height * self.width)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the fields and ``per_pixel``)."""
        return {**asdict(self), "per_pixel": self.per_pixel}


def import_onnx(error: type[Exception] = FlopsUnavailable, what: str = "counting FLOPs"):
    """The ``onnx`` module, or ``error`` saying that ``what`` needs it."""
    try:
        import onnx
    except ImportError:
        raise error(f"{what} needs the onnx package, a dependency of ssc-edge: pip install onnx") from None
    return onnx


def load_onnx(model: Path | bytes | Any, onnx) -> Any:
    """``model`` (a ModelProto, a file's bytes or its path) as an ``onnx.ModelProto``; ModelError for a bad path."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):  # a file read once (ModelFile.data)
        return onnx.load_from_string(model)
    path = Path(model)
    try:
        return onnx.load(str(path))
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX files
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__})") from None


def _fixed_input(model: Any, onnx, batch: int, height: int, width: int) -> Any:
    """A copy of ``model`` whose single input has concrete dimensions (layout from the contract)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    meta = {p.key: p.value for p in fixed.metadata_props}
    layout = ModelContract.from_metadata(meta).layout if "ssc_edge.contract_version" in meta else None
    initializers = {t.name for t in fixed.graph.initializer}
    inputs = [v for v in fixed.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"model has {len(inputs)} inputs; FLOP counting handles one")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f"model input has rank {len(dims)}, expected 4")
    if layout is None:  # no contract: the free dimensions are batch, then the spatial ones in order
        layout = "NCHW" if dims[1].HasField("dim_value") and not dims[3].HasField("dim_value") else "NHWC"
    positions = (0, 1, 2) if layout == "NHWC" else (0, 2, 3)
    for position, value in zip(positions, (batch, height, width), strict=True):
        dims[position].Clear()
        dims[position].dim_value = value
    for value in fixed.graph.output:  # stale symbolic output shapes would conflict with the inferred ones
        value.type.tensor_type.ClearField("shape")
    del fixed.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(fixed, strict_mode=False)


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    shapes = {}
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(int(d) for d in tensor.dims)
    return shapes


def _node_flops(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    op = node.op_type
    if op not in _ELEMENTWISE and op not in ("Conv", "MatMul", "Gemm"):
        return 0
    out = shapes.get(node.output[0])
    if out is None:
        raise ModelError(f"node {node.name or op} ({op}): output shape could not be inferred for FLOP counting")
    elements = int(np.prod(out, dtype=np.int64))
    if op in _ELEMENTWISE:
        return elements
    weight = shapes.get(node.input[1])
    if weight is None:
        raise ModelError(f"node {node.name or op} ({op}): weight shape could not be inferred for FLOP counting")
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if op == "Conv":  # weight (Cout, Cin / groups, kh, kw); output (N, Cout, H, W)
        per_output = 2 * int(np.prod(weight[1:], dtype=np.int64))
    else:  # MatMul / Gemm: K is the contracted dimension of the second operand
        transposed = op == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        per_output = 2 * weight[-1 if transposed else -2]
    return elements * (per_output + int(has_bias))


def count_flops(model: Path | bytes | Any, *, batch: int = 1, height: int, width: int) -> FlopCount:
    """Count the FLOPs of one run of an ONNX model on an input of ``batch`` x ``height`` x ``width`` pixels.

    Parameters
    ----------
    model : Path, bytes or onnx.ModelProto
        An ssc-edge model (layout read from its contract) or any single-input rank-4 image model; bytes are a
        file's contents (:attr:`~ssc_edge.runtime.session.ModelFile.data`).
    batch : int
        Images per run.
    height, width : int
        Input tile size, pixels of the fine grid (halo included).

    Returns
    -------
    FlopCount
        See the module docstring for the counting convention.

    Raises
    ------
    FlopsUnavailable
        If ``onnx`` is not installed.
    ModelError
        If the model cannot be read or a counted node's shape cannot be inferred.
    OptionError
        If a size is not a positive integer.
    """
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        check_positive(value, name)
    onnx = import_onnx()
    inferred = _fixed_input(load_onnx(model, onnx), onnx, int(batch), int(height), int(width))
    shapes = _shapes(inferred)
    by_op: Counter[str] = Counter()
    for node in inferred.graph.node:
        flops = _node_flops(node, shapes)
        if flops:
            by_op[node.op_type] += flops
    return FlopCount(
        total=int(sum(by_op.values())), batch=int(batch), height=int(height), width=int(width), by_op=dict(by_op)
    )
