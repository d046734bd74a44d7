"""Small ssc-edge ONNX models built with onnx.helper, for the bench, optimize and FLOP tests.

They follow the contract of :mod:`ssc_edge.contract` (input ``bands`` NHWC, output ``sharpened``,
metadata from :class:`ssc_edge.contract.ModelContract`) without waiting for a trained model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_edge.contract import INPUT_NAME, OUTPUT_NAME, ModelContract

SCALE = 10000.0


def _finish(nodes, initializers, contract: ModelContract, path: Path, channels_out: int = 6) -> Path:
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["x_nchw"], perm=[0, 3, 1, 2]),
        *nodes,
        helper.make_node("Transpose", ["y_nchw"], [OUTPUT_NAME], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "ssc_edge_test",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "height", "width", 10])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "height", "width", channels_out])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ssc-edge-tests")
    model.ir_version = 8
    for key, value in contract.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        name: str,
        *,
        activate: bool = True,
        weight: np.ndarray | None = None,
        bias: bool = True,
    ) -> str:
        from onnx import helper, numpy_helper

        if weight is None:
            limit = np.sqrt(6.0 / ((cin + cout) * kernel * kernel))  # Glorot uniform, as Keras
            weight = self.rng.uniform(-limit, limit, (cout, cin, kernel, kernel))
        self.initializers.append(numpy_helper.from_array(weight.astype(np.float32), f"{name}_w"))
        inputs = [x, f"{name}_w"]
        if bias:
            self.initializers.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b"))
            inputs.append(f"{name}_b")
        pad = kernel // 2
        self.nodes.append(
            helper.make_node("Conv", inputs, [name], name=name, kernel_shape=[kernel, kernel], pads=[pad] * 4)
        )
        if not activate:
            return name
        self.nodes.append(helper.make_node("LeakyRelu", [name], [f"{name}_act"], alpha=0.01, name=f"{name}_lrelu"))
        return f"{name}_act"


def ssc_cnn_model(
    path: Path,
    *,
    blocks: int = 3,
    width: int = 16,
    skip_width: int = 5,
    last_kernel: int = 3,
    residual: bool = True,
    seed: int = 0,
) -> Path:
    """SSC-CNN as the trainer exports it (Nguyen et al. 2020, Fig. 1; skips 1x1), random Glorot weights.

    Input branch: ``blocks`` 3x3 convs of ``width``; 1x1 skips of ``skip_width`` after blocks 1..K-1;
    output branch: ``blocks`` 3x3 convs of ``width`` on concat(previous, skip in reverse order); last
    conv to 6 bands; global residual as a fixed 1x1 conv selecting the first 6 channels, then Add.
    """
    from onnx import helper

    b = _Builder(seed)
    h, skips = "x_nchw", []
    cin = 10
    for k in range(1, blocks + 1):
        h = b.conv(h, cin, width, 3, f"in{k}")
        cin = width
        if k < blocks:
            skips.append(b.conv(h, width, skip_width, 1, f"skip{k}"))
    skips.reverse()
    o = h
    for j in range(1, blocks + 1):
        cin = width
        if j > 1:
            b.nodes.append(helper.make_node("Concat", [o, skips[j - 2]], [f"cat{j}"], axis=1))
            o, cin = f"cat{j}", width + skip_width
        o = b.conv(o, cin, width, 3, f"out{j}")
    out = b.conv(o, width, 6, last_kernel, "last", activate=False)
    if residual:
        select = np.zeros((6, 10, 1, 1))
        select[np.arange(6), np.arange(6)] = 1.0
        coarse = b.conv("x_nchw", 10, 6, 1, "coarse_bands", activate=False, weight=select, bias=False)
        b.nodes.append(helper.make_node("Add", [coarse, out], ["y_nchw"]))
    else:
        b.nodes.append(helper.make_node("Identity", [out], ["y_nchw"]))
    halo = 2 * blocks + last_kernel // 2
    architecture = {
        "blocks": blocks,
        "width": width,
        "skip_width": skip_width,
        "skip_kernel": 1,
        "last_kernel": last_kernel,
        "residual": residual,
    }
    return _finish(b.nodes, b.initializers, ModelContract(halo=halo, scale=SCALE, architecture=architecture), path)


def cancellation_model(path: Path, *, gain: float = 1000.0) -> Path:
    """A model that is exact in float32 and that int8 (and fp16) quantization destroys.

    Hidden layer: 12 channels, ``gain * x_i`` and ``(gain + 1) * x_i`` for the six upsampled 20 m
    bands; output: their difference, ``x_i`` (bicubic). Weights of huge dynamic range make every
    hidden activation large, so the per-tensor int8 activation step (range / 255) swamps the signal.
    """
    from onnx import helper

    b = _Builder(0)
    w1 = np.zeros((12, 10, 1, 1))
    w1[np.arange(6), np.arange(6)] = gain
    w1[6 + np.arange(6), np.arange(6)] = gain + 1.0
    hidden = b.conv("x_nchw", 10, 12, 1, "hidden", activate=False, weight=w1, bias=False)
    w2 = np.zeros((6, 12, 1, 1))
    w2[np.arange(6), np.arange(6)] = -1.0
    w2[np.arange(6), 6 + np.arange(6)] = 1.0
    out = b.conv(hidden, 12, 6, 1, "difference", activate=False, weight=w2, bias=False)
    b.nodes.append(helper.make_node("Identity", [out], ["y_nchw"]))
    return _finish(b.nodes, b.initializers, ModelContract(halo=0, scale=SCALE), path)
