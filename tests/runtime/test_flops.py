"""FLOP counting against a hand count of the SSC-CNN layer list (Nguyen et al. 2020, Fig. 1)."""

from __future__ import annotations

import pytest

from ssc_edge.errors import ModelError, OptionError
from ssc_edge.runtime.flops import count_flops

from ._bench_models import cancellation_model, ssc_cnn_model

pytest.importorskip("onnx")


def hand_count_per_pixel(*, blocks: int, width: int, skip_width: int, last_kernel: int, residual: bool) -> int:
    """FLOPs per pixel of SSC-CNN, layer by layer (multiply-add = 2, bias +1, LeakyReLU 1, Add 1 per element)."""
    conv = lambda cin, cout, k: (2 * cin * k * k + 1) * cout  # with bias
    flops = 0
    # input branch: K 3x3 convs of `width` + LeakyReLU, input 10 bands
    flops += conv(10, width, 3) + width
    flops += (blocks - 1) * (conv(width, width, 3) + width)
    # skips after blocks 1..K-1: 1x1 conv to skip_width + LeakyReLU
    flops += (blocks - 1) * (conv(width, skip_width, 1) + skip_width)
    # output branch: first 3x3 on h_K, then K-1 3x3 convs on concat(width + skip_width) (concat is free)
    flops += conv(width, width, 3) + width
    flops += (blocks - 1) * (conv(width + skip_width, width, 3) + width)
    # last conv to 6 bands, no activation
    flops += conv(width, 6, last_kernel)
    if residual:  # 1x1 channel selection without bias (2 * 10 * 6) and the Add (6)
        flops += 2 * 10 * 6 + 6
    return flops


@pytest.mark.parametrize(("blocks", "width", "skip_width"), [(3, 16, 5), (3, 128, 25), (2, 8, 3)])
def test_matches_hand_count(tmp_path, blocks, width, skip_width):
    path = ssc_cnn_model(tmp_path / "m.onnx", blocks=blocks, width=width, skip_width=skip_width)
    counted = count_flops(path, batch=2, height=24, width=40)
    expected = hand_count_per_pixel(blocks=blocks, width=width, skip_width=skip_width, last_kernel=3, residual=True)
    assert counted.total == expected * 2 * 24 * 40
    assert counted.per_pixel == expected


def test_paper_architecture_per_pixel():
    # K = 3, width 128, skip 25, last 3x3, residual, written out layer by layer:
    per_pixel = (
        (2 * 10 * 9 + 1) * 128
        + 128  # in1: 23,296
        + 2 * ((2 * 128 * 9 + 1) * 128 + 128)  # in2, in3: 590,336
        + 2 * ((2 * 128 + 1) * 25 + 25)  # skip1, skip2 (1x1): 12,900
        + (2 * 128 * 9 + 1) * 128
        + 128  # out1: 295,168
        + 2 * ((2 * 153 * 9 + 1) * 128 + 128)  # out2, out3 on 128 + 25 channels: 705,536
        + (2 * 128 * 9 + 1) * 6  # last: 13,830
        + 2 * 10 * 6
        + 6  # residual selection and Add: 126
    )
    assert per_pixel == 1_641_192  # about 1.64 GFLOP per megapixel
    assert hand_count_per_pixel(blocks=3, width=128, skip_width=25, last_kernel=3, residual=True) == per_pixel


def test_by_op_and_zero_cost_ops(tmp_path):
    path = cancellation_model(tmp_path / "c.onnx")
    counted = count_flops(path, height=8, width=8)
    assert counted.by_op == {"Conv": 64 * (2 * 10 * 12 + 2 * 12 * 6)}  # Transpose / Identity count 0
    assert counted.to_dict()["total"] == counted.total


def test_bad_inputs(tmp_path):
    with pytest.raises(OptionError, match="height must be a positive integer"):
        count_flops(tmp_path / "x.onnx", height=0, width=8)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        count_flops(junk, height=8, width=8)
    with pytest.raises(ModelError, match="not found"):
        count_flops(tmp_path / "missing.onnx", height=8, width=8)


def test_matches_hand_count_on_the_trainers_export(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import numpy as np

    from ssc_edge.train.export import keras_to_onnx
    from ssc_edge.train.model import ModelConfig, build_ssc_cnn

    for last_kernel, layout in ((3, "NHWC"), (1, "NCHW")):
        model = build_ssc_cnn(ModelConfig(width=16, skip_width=5, last_kernel=last_kernel))
        for layer in model.layers:  # trained biases are non-zero; tf2onnx folds away all-zero ones
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(np.full(layer.bias.shape, 0.01, np.float32))
        counted = count_flops(keras_to_onnx(model, layout=layout), batch=1, height=32, width=32)
        expected = hand_count_per_pixel(blocks=3, width=16, skip_width=5, last_kernel=last_kernel, residual=True)
        assert counted.per_pixel == expected, (layout, counted.by_op)
