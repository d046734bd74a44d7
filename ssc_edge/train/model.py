"""The SSC-CNN network (Nguyen et al., IGARSS 2020, Fig. 1) in Keras, and its receptive-field halo.

Architecture, for ``K`` blocks (the paper: ``K = 3``, width 128, skip width 25, LeakyReLU 0.01)::

    x (H, W, 10) = [6 upsampled 20 m bands, 4 10 m bands], normalised DN
    input branch:  h_k = LReLU(Conv_width,3x3(h_{k-1})),  k = 1..K;   s_k = LReLU(Conv_25,skip_kernel(h_k)),  k < K
    output branch: o_1 = LReLU(Conv_width,3x3(h_K))
                   o_j = LReLU(Conv_width,3x3(concat(o_{j-1}, s_{K-j+1}))),  j = 2..K   (skips in reverse order)
    y = Conv_6,last_kernel(o_K)  [+ x[..., :6] with the global residual of the paper]

The paper's released code (``hvn2/S2_SSC_CNN``) drops the residual that its figure adds and uses a 1x1 last
convolution: both are options here. Its unused skip ``s_K`` is left out (same function and parameter count).

Every convolution uses ``"same"`` zero padding, so an output pixel depends only on input pixels
within :func:`receptive_halo` pixels; this is derived from the built graph, never assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import OptionError
from ._tensorflow import tensorflow

__all__ = ["INPUT_CHANNELS", "OUTPUT_CHANNELS", "PRECISIONS", "ModelConfig", "build_ssc_cnn", "receptive_halo"]

#: Input channels: six upsampled 20 m bands then four 10 m bands (``wald.model_input`` order).
INPUT_CHANNELS = 10
#: Output channels: the six sharpened 20 m bands.
OUTPUT_CHANNELS = 6
#: Keras dtype policies accepted by :func:`build_ssc_cnn`.
PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class ModelConfig:
    """Options of the SSC-CNN architecture.

    Attributes
    ----------
    blocks : int
        ``K``, the number of 3x3 convolutions in each of the input and output branches (paper: 3).
    width : int
        Filters of every 3x3 convolution (paper: 128).
    skip_width : int
        Filters of each skip convolution (paper: 25).
    skip_kernel : {1, 3}
        Kernel size of the skip convolutions, pixels (paper and released code: 1).
    last_kernel : {1, 3}
        Kernel size of the final convolution to 6 bands, pixels (released code: 1; 3 costs a pixel of halo).
    residual : bool
        Add the upsampled 20 m input bands to the output (the paper's global residual).
    negative_slope : float
        Slope of the LeakyReLU for negative inputs (0.01).
    """

    blocks: int = 3
    width: int = 128
    skip_width: int = 25
    skip_kernel: int = 1
    last_kernel: int = 1
    residual: bool = True
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        for name in ("blocks", "width", "skip_width"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise OptionError(f"{name} must be a positive integer, got {value!r}")
        for name in ("skip_kernel", "last_kernel"):
            if getattr(self, name) not in (1, 3):
                raise OptionError(f"{name} must be 1 or 3, got {getattr(self, name)!r}")
        if not 0.0 <= self.negative_slope < 1.0:
            raise OptionError(f"negative_slope must be in [0, 1), got {self.negative_slope!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`OptionError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError(f"unknown model option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


def build_ssc_cnn(
    config: ModelConfig | None = None,
    *,
    seed: int | None = 0,
    precision: str = "float32",
    name: str = "ssc_cnn",
    input_channels: int = INPUT_CHANNELS,
    output_channels: int = OUTPUT_CHANNELS,
):
    """Build the SSC-CNN as a Keras functional model.

    Parameters
    ----------
    config : ModelConfig, optional
        Architecture options; the defaults when omitted.
    seed : int or None
        Seed of the weight initialisers (Glorot uniform), one derived seed per layer: two builds with the same
        seed are identical, and no global random state is touched. ``None``: unseeded.
    precision : {"float32", "mixed_bfloat16"}
        Keras dtype policy of the hidden layers (``"mixed_bfloat16"`` keeps float32 weights); the last
        convolution and the residual always run in float32.
    name : str
        Keras model name.
    input_channels, output_channels : int
        Bands in and out: 10 and 6 for the 20 m model; 12 and 2 for the 60 m model (``bandset.SIXTY_INPUT_BANDS``
        -> B01, B09). The global residual adds the first ``output_channels`` input channels.

    Returns
    -------
    keras.Model
        Input ``(batch, height, width, input_channels)``, output ``(batch, height, width, output_channels)``:
        float32 normalised DN, NHWC, any height and width.
    """
    tensorflow()  # before keras, which imports it
    import keras
    from keras import layers

    config = config or ModelConfig()
    if precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not 0 < output_channels < input_channels:
        raise OptionError(f"need 0 < output_channels < input_channels, got {output_channels} and {input_channels}")
    slope = config.negative_slope
    counter = iter(range(1000))

    def conv(x, filters: int, kernel: int, label: str, activate: bool = True, dtype: str = precision):
        init = keras.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + next(counter))
        x = layers.Conv2D(filters, kernel, padding="same", kernel_initializer=init, name=label, dtype=dtype)(x)
        return layers.LeakyReLU(negative_slope=slope, name=f"{label}_lrelu", dtype=dtype)(x) if activate else x

    inputs = keras.Input((None, None, input_channels), name="bands", dtype="float32")
    h = inputs
    skips = []
    for k in range(1, config.blocks + 1):
        h = conv(h, config.width, 3, f"in{k}")
        if k < config.blocks:  # the deepest skip would be unused (the released code builds and drops it)
            skips.append(conv(h, config.skip_width, config.skip_kernel, f"skip{k}"))
    skips.reverse()  # output block j >= 2 takes skips[j - 2]: skip K-1, ..., skip 1
    o = h
    for j in range(1, config.blocks + 1):
        if j > 1:
            o = layers.Concatenate(name=f"cat{j}")([o, skips[j - 2]])
        o = conv(o, config.width, 3, f"out{j}")
    out = conv(o, output_channels, config.last_kernel, "last", activate=False, dtype="float32")
    if config.residual:
        coarse = _channel_slice(inputs, output_channels, input_channels)
        out = layers.Add(name="residual", dtype="float32")([coarse, out])
    return keras.Model(inputs, out, name=name)


def _channel_slice(x, channels: int, input_channels: int):
    """The first ``channels`` channels of an NHWC tensor, as a fixed 1x1 convolution (exports cleanly)."""
    import numpy as np
    from keras import layers

    select = layers.Conv2D(channels, 1, use_bias=False, trainable=False, name="coarse_bands", dtype="float32")
    y = select(x)
    kernel = np.zeros((1, 1, input_channels, channels), dtype=np.float32)
    kernel[0, 0, np.arange(channels), np.arange(channels)] = 1.0
    select.set_weights([kernel])
    return y


def _layer_reach(layer) -> int:
    """Pixels by which one layer widens the receptive field (0 for point-wise layers)."""
    kernel = getattr(layer, "kernel_size", None)
    if kernel is None and getattr(layer, "pool_size", None) is not None:
        raise OptionError(f"layer {layer.name}: pooling is not supported by receptive_halo")
    if kernel is None:
        return 0
    dilation = getattr(layer, "dilation_rate", (1,) * len(kernel))
    strides = getattr(layer, "strides", (1,) * len(kernel))
    if any(s != 1 for s in strides):
        raise OptionError(f"layer {layer.name}: strided convolutions are not supported by receptive_halo")
    reaches = {(k - 1) * d for k, d in zip(kernel, dilation, strict=True)}
    if len(reaches) != 1 or any((k - 1) % 2 for k in kernel):
        raise OptionError(f"layer {layer.name}: kernel {kernel} is not square and odd")
    return reaches.pop() // 2


def receptive_halo(model) -> int:
    """Receptive-field radius of a Keras functional model, pixels of its input grid.

    The halo at a layer's output is the largest halo of its inputs plus ``(kernel - 1) / 2 * dilation`` for
    convolutions (0 for point-wise layers). An output pixel depends only on input pixels at most this far away
    (Chebyshev distance), which makes overlap tiling with this margin exact.

    Parameters
    ----------
    model : keras.Model
        A functional model (as built by :func:`build_ssc_cnn`).
    """
    reach: dict[int, int] = {id(t): 0 for t in model.inputs}

    def halo_of(tensor) -> int:
        key = id(tensor)
        if key not in reach:
            operation, node_index, _ = tensor._keras_history
            node = operation._inbound_nodes[node_index]
            parents = [halo_of(t) for t in node.input_tensors]
            reach[key] = max(parents, default=0) + _layer_reach(operation)
        return reach[key]

    return max(halo_of(t) for t in model.outputs)
