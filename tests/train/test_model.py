"""SSC-CNN architecture: layers, shapes, options, and the receptive-field halo derived from the graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ssc_edge.errors import OptionError
from ssc_edge.train.model import ModelConfig, build_ssc_cnn, receptive_halo

SMALL = {"width": 6, "skip_width": 3}


def _convs(model):
    return [layer for layer in model.layers if type(layer).__name__ == "Conv2D" and layer.trainable]


def test_paper_architecture_layer_counts_and_shapes():
    model = build_ssc_cnn(ModelConfig())
    convs = {layer.name: layer for layer in _convs(model)}
    assert sorted(convs) == sorted(["in1", "in2", "in3", "skip1", "skip2", "out1", "out2", "out3", "last"])
    assert all(convs[f"in{k}"].filters == 128 and convs[f"in{k}"].kernel_size == (3, 3) for k in (1, 2, 3))
    assert all(convs[f"skip{k}"].filters == 25 and convs[f"skip{k}"].kernel_size == (1, 1) for k in (1, 2))
    assert convs["last"].filters == 6
    # output blocks 2 and 3 see concat(previous 128, skip 25)
    assert convs["out1"].kernel.shape == (3, 3, 128, 128)
    assert convs["out2"].kernel.shape == (3, 3, 153, 128)
    assert convs["out3"].kernel.shape == (3, 3, 153, 128)
    assert convs["in1"].kernel.shape == (3, 3, 10, 128)
    y = model(np.zeros((2, 20, 24, 10), np.float32))
    assert tuple(y.shape) == (2, 20, 24, 6)


def test_skips_are_used_in_reverse_order():
    model = build_ssc_cnn(ModelConfig(**SMALL))
    sources = {
        name: [t._keras_history.operation.name for t in model.get_layer(name)._inbound_nodes[0].input_tensors]
        for name in ("cat2", "cat3")
    }
    assert sources == {"cat2": ["out1_lrelu", "skip2_lrelu"], "cat3": ["out2_lrelu", "skip1_lrelu"]}


@pytest.mark.parametrize(
    ("options", "halo"),
    [
        ({"last_kernel": 1, "residual": False}, 6),  # the released code
        ({"last_kernel": 3}, 7),
        ({"last_kernel": 1, "skip_kernel": 3}, 6),  # skip paths are shorter than the main path
        ({"last_kernel": 3, "skip_kernel": 3}, 7),
        ({"blocks": 2, "last_kernel": 1}, 4),
        ({"blocks": 4, "last_kernel": 3}, 9),
    ],
)
def test_halo_is_derived_from_the_graph(options, halo):
    assert receptive_halo(build_ssc_cnn(ModelConfig(**SMALL, **options))) == halo


@pytest.mark.parametrize("options", [{"last_kernel": 1, "residual": False}, {"last_kernel": 3, "skip_kernel": 3}])
def test_output_changes_only_within_the_halo(options):
    model = build_ssc_cnn(ModelConfig(**SMALL, **options), seed=3)
    halo = receptive_halo(model)
    rng = np.random.default_rng(0)
    x = rng.random((1, 31, 31, 10), dtype=np.float32)
    bumped = x.copy()
    bumped[0, 15, 15, :] += 1.0
    changed = np.any(np.asarray(model(bumped)) != np.asarray(model(x)), axis=-1)[0]
    rows, cols = np.nonzero(changed)
    reach = np.maximum(np.abs(rows - 15), np.abs(cols - 15))
    assert reach.max() == halo


def test_residual_adds_the_upsampled_bands():
    with_res = build_ssc_cnn(ModelConfig(**SMALL, residual=True), seed=1)
    without = build_ssc_cnn(ModelConfig(**SMALL, residual=False), seed=1)
    without.set_weights([w for layer in with_res.layers if layer.name != "coarse_bands" for w in layer.get_weights()])
    x = np.random.default_rng(1).random((1, 12, 12, 10), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(with_res(x)), np.asarray(without(x)) + x[..., :6], rtol=1e-5, atol=1e-6)


def test_same_seed_same_weights():
    a = build_ssc_cnn(ModelConfig(**SMALL), seed=5).get_weights()
    b = build_ssc_cnn(ModelConfig(**SMALL), seed=5).get_weights()
    c = build_ssc_cnn(ModelConfig(**SMALL), seed=6).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"skip_kernel": 5}, "skip_kernel must be 1 or 3"),
        ({"blocks": 0}, "blocks must be a positive integer"),
        ({"width": -1}, "width must be a positive integer"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(OptionError, match=message):
        ModelConfig(**options)


def test_config_round_trip():
    config = ModelConfig(blocks=2, last_kernel=1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(OptionError, match="unknown model option"):
        ModelConfig.from_dict({"depth": 3})
