"""Small, valid ssc-edge ONNX models built with ``onnx.helper`` (real graphs run by real onnxruntime).

They follow the model contract (:mod:`ssc_edge.contract`) exactly like an exported SSC-CNN:
input ``bands`` (NHWC or NCHW, 10 channels, DN / scale), output ``sharpened`` (6 channels),
a symmetric skip-connected stack of 3x3 convolutions with LeakyReLU, 1x1 skip convolutions,
a 3x3 last convolution and a global residual on the six upsampled bands. The halo written into
the metadata is the true receptive radius (``2 * blocks + 1``), so the runtime's tiling can be
tested without TensorFlow and before a trained model exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_edge.bands import VERY_COARSE_BANDS
from ssc_edge.bandset import SIXTY_INPUT_BANDS
from ssc_edge.contract import INPUT_NAME, OUTPUT_NAME, ModelContract

__all__ = ["build_model", "write_model", "DEFAULT_SCALE"]

DEFAULT_SCALE = 10000.0


def _conv(nodes, inits, rng, name: str, x: str, c_in: int, c_out: int, kernel: int, *, relu: bool) -> str:
    from onnx import helper, numpy_helper

    w = rng.normal(0.0, np.sqrt(1.0 / (c_in * kernel * kernel)), (c_out, c_in, kernel, kernel)).astype(np.float32)
    b = rng.normal(0.0, 0.01, c_out).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    pad = kernel // 2
    nodes.append(
        helper.make_node(
            "Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], kernel_shape=[kernel, kernel], pads=[pad] * 4
        )
    )
    if not relu:
        return f"{name}_c"
    nodes.append(helper.make_node("LeakyRelu", [f"{name}_c"], [f"{name}_r"], alpha=0.2))
    return f"{name}_r"


def build_model(
    *,
    blocks: int = 2,
    width: int = 8,
    layout: str = "NHWC",
    seed: int = 0,
    scale: float = DEFAULT_SCALE,
    halo: int | None = None,
    channels_in: int = 10,
    metadata: bool = True,
    upsampling: str = "bicubic",
    sixty: bool = False,
):
    """Build an SSC-CNN-like ONNX model.

    Parameters
    ----------
    blocks : int
        3x3 convolutions per branch; the receptive radius is ``2 * blocks + 1`` fine pixels.
    width : int
        Filters per 3x3 convolution.
    layout : {"NHWC", "NCHW"}
        Layout of input and output (NHWC goes through Transpose nodes, like tf2onnx output).
    halo : int, optional
        Halo to write into the metadata (default: the true one).
    channels_in : int
        Input channels of the graph (10 for a valid model; other values test the runtime's checks).
    metadata : bool
        Write the ssc-edge contract into ``metadata_props``.
    sixty : bool
        A 60 m model: 12 input channels (``bandset.SIXTY_INPUT_BANDS``), 2 outputs (B01, B09), ratio 6.

    Returns
    -------
    onnx.ModelProto
    """
    import onnx
    from onnx import TensorProto, helper

    channels_out = 2 if sixty else 6
    if sixty:
        channels_in = 12
    rng = np.random.default_rng(seed)
    nodes: list = []
    inits: list = []
    x = INPUT_NAME
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [INPUT_NAME], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    skips = []
    h = x
    for i in range(blocks):
        h = _conv(nodes, inits, rng, f"enc{i}", h, channels_in if i == 0 else width, width, 3, relu=True)
        skips.append(_conv(nodes, inits, rng, f"skip{i}", h, width, width // 2, 1, relu=True))
    for i in range(blocks):
        h = _conv(nodes, inits, rng, f"dec{i}", h, width if i == 0 else width + width // 2, width, 3, relu=True)
        nodes.append(helper.make_node("Concat", [h, skips[blocks - 1 - i]], [f"cat{i}"], axis=1))
        h = f"cat{i}"
    out = _conv(nodes, inits, rng, "last", h, width + width // 2, channels_out, 3, relu=False)
    starts = helper.make_tensor("res_starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("res_ends", TensorProto.INT64, [1], [channels_out])
    axes = helper.make_tensor("res_axes", TensorProto.INT64, [1], [1])
    inits += [starts, ends, axes]
    nodes.append(helper.make_node("Slice", [x, "res_starts", "res_ends", "res_axes"], ["residual"]))
    final = "sum_nchw" if layout == "NHWC" else OUTPUT_NAME
    nodes.append(helper.make_node("Add", [out, "residual"], [final]))
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [final], [OUTPUT_NAME], perm=[0, 2, 3, 1]))
        in_shape, out_shape = ["batch", "height", "width", channels_in], ["batch", "height", "width", channels_out]
    else:
        in_shape, out_shape = ["batch", channels_in, "height", "width"], ["batch", channels_out, "height", "width"]
    graph = helper.make_graph(
        nodes,
        "ssc_cnn_test",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ssc-edge-tests")
    model.ir_version = 8
    if metadata:
        contract = ModelContract(
            halo=2 * blocks + 1 if halo is None else halo,
            scale=scale,
            layout=layout,
            upsampling=upsampling,
            architecture={"blocks": blocks, "width": width},
            **({"ratio": 6, "input_bands": SIXTY_INPUT_BANDS, "output_bands": VERY_COARSE_BANDS} if sixty else {}),
        )
        helper.set_model_props(model, contract.to_metadata())
    onnx.checker.check_model(model)
    return model


def write_model(path: Path, **options) -> Path:
    """Build a model with :func:`build_model` and save it to ``path``; return ``path``."""
    path = Path(path)
    path.write_bytes(build_model(**options).SerializeToString())
    return path
