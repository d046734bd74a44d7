"""Zero-shot fitting of SSC-CNN on one scene, and its reduced-resolution evaluation.

Protocols
---------
``"heldout"`` (default)
    The Wald protocol one scale below the data (:func:`ssc_edge.wald.training_pair`, ``levels=1``):
    inputs are the scene's bands degraded by 2 (20 m bands upsampled back), the target is the
    observed 20 m bands. ``scene.reference`` is never read for training.
``"paper"``
    The procedure behind Table 1 of Nguyen et al. (2020), for RR files only: inputs are the RR
    cells (:func:`ssc_edge.wald.full_scale_input`), the target is the reference ``Xm_im``. Its
    evaluation is on the training pair: **training-set numbers**.

Training follows the released code: 16x16 patches at stride 8, Adam, MSE, batch 64, 200 epochs,
lr 5e-4; inputs and target divided by one scalar, the maximum of the target (DN). Weights kept:
``heldout`` keeps a moving average of the weights (``FitConfig.ema``), ``paper`` the epoch with the
lowest loss on the whole training pair (the released code's checkpoint).

Bounded training: at most ``FitConfig.patch_budget`` patches free of no-data, drawn window by window
(:func:`~ssc_edge.train.windows.sample_patches`); memory and optimizer steps are set by the budget and
the epochs, not by the scene size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from .. import wald
from ..bands import COARSE_BANDS, FINE_BANDS
from ..errors import OptionError, SceneError
from ..io.sources import central_scene
from ..metrics import QualityReport, quality_report, signal_to_reconstruction_error
from ..nodata import measured
from ..progress import ProgressCallback, report, stage
from ..scene import Scene
from ..tiling import Tile, plan_tiles
from ._tensorflow import tensorflow
from .full_resolution import STAGE_KERNELS, StageConfig, refine_in_precision, stage_kernels, stage_sample
from .model import PRECISIONS, ModelConfig, build_ssc_cnn, receptive_halo
from .windows import (
    DEFAULT_PATCH_BUDGET,
    check_training_size,
    minimum_side,
    pair_model_for,
    sample_patches,
    scene_source,
    training_grid,
    window_pair,
)

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_EMA",
    "DEFAULT_PATCH_BUDGET",
    "fit_patches",
    "fit_sampled",
    "fit_scene",
    "score_windows",
    "EVALUATION_PIXELS",
    "sample_patches",
    "scene_source",
    "PROTOCOLS",
    "Evaluation",
    "FitConfig",
    "FitResult",
    "evaluate_fit",
    "extract_patches",
    "fit_model",
    "minimum_scene_size",
    "pair_model_for",
    "predict",
    "resolve_precision",
    "training_data",
]

logger = logging.getLogger(__name__)

PROTOCOLS = ("heldout", "paper")
DEGRADATIONS = ("auto", *wald.DEGRADATION_METHODS)
REGISTRATIONS = ("auto", "none")
LR_SCHEDULES = ("constant", "cosine")
CHECKPOINTS = ("auto", "patch-loss", "image-loss")
STAGE_KERNEL_CHOICES = ("auto", *STAGE_KERNELS)
#: Per-epoch decay of the weight average that protocol ``heldout`` keeps by default (see ``FitConfig.ema``).
DEFAULT_EMA = 0.98
#: Share of the epochs after which the weight average starts over (see ``FitConfig.ema_start``).
DEFAULT_EMA_START = 1 / 3


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a fit (JSON only through :meth:`to_dict` / :meth:`from_dict`).

    Attributes
    ----------
    epochs : int
        Passes over all patches (50 at batch 16: the paper code's optimizer steps, ``docs/method.md``;
        protocol ``paper`` keeps 200 at batch 64, :data:`PAPER_DEFAULTS`).
    learning_rate : float
        Adam step size (released code: 5e-4; the paper text says 5e-3).
    lr_schedule : {"constant", "cosine"}
        ``"constant"`` (released code) or cosine decay from ``learning_rate`` to 1 % of it over
        all steps (``keras.optimizers.schedules.CosineDecay``).
    batch_size : int
        Patches per Adam step (16; the paper code: 64); the last batch of an epoch may be smaller.
    patch : int
        Patch side, pixels of the training grid (16).
    stride : int
        Distance between patch origins, pixels (8).
    protocol : {"heldout", "paper"}
        See the module docstring.
    degradation : {"auto", "bicubic", "mtf"}
        How ``heldout`` simulates the coarser sensor. ``"auto"`` (default): the kernel estimated from
        the scene itself (:func:`ssc_edge.registration.estimate_registration`: the relative blur of
        its 20 m bands to its 10 m bands); ``"bicubic"``: MATLAB ``imresize``, with which the shipped
        RR files were made; ``"mtf"``: the nominal MTF Gaussians (:func:`ssc_edge.wald.degrade`).
    registration : {"auto", "none"}
        ``"auto"`` (default): the training pair keeps the estimated offset of the scene's 20 m grid against
        its 10 m grid (:func:`ssc_edge.wald.training_pair` ``model``); ``"none"``: the nominal grid.
    upsampling : {"bicubic", "spline"}
        How the 20 m bands are brought to the fine grid, in training and at inference.
    seed : int
        Seeds the weight initialisation and the patch order; same seed, same machine, same
        threads: identical weights.
    precision : {"auto", "float32", "mixed_bfloat16"}
        Compute precision of training (weights are always float32 and the exported model
        always runs in float32). ``"auto"``: ``mixed_bfloat16`` on a CPU-only machine whose CPU
        has native bfloat16 dot products (AVX512-BF16 or AMX), else ``float32`` (:func:`resolve_precision`).
    jit_compile : bool
        Compile the training step with XLA.
    augment : bool
        Apply one random rotation by a multiple of 90 degrees and/or flip to each batch.
    checkpoint : {"auto", "patch-loss", "image-loss"}
        Which epoch's weights are kept (when ``ema`` is off): ``"patch-loss"``, the lowest epoch-mean
        training loss; ``"image-loss"``, the lowest MSE of the whole training image pair, as the released
        code's ``ModelCheckpoint(monitor="val_loss")`` with that pair as its validation data (one forward
        pass of the whole image per epoch). ``"auto"``: ``"image-loss"`` for protocol ``paper``, else
        ``"patch-loss"``.
    ema : float or None
        Decay per epoch of an exponential moving average of the weights, in [0, 1); 0 turns it
        off. With it, the fit keeps the averaged weights at the end of training instead of the
        best epoch's. Keras' own optimizer EMA, updated every step with momentum
        ``ema ** (1 / steps per epoch)``. ``None`` (default): :func:`default_ema` (0.98 per 64-patch epoch) for
        ``heldout``, 0 for ``paper`` (the released code keeps the best epoch); chosen by measurement
        (``benchmarks/RESULTS.md``).
    ema_start : float
        Share of the epochs, in [0, 1), after which the weight average starts over from the weights of then
        (with ``ema`` on): Keras' average starts at the first step's weights, and at 50 epochs about 4 % of it
        still sits on the first 10 epochs' weights. Default 1/3 (measured on 24 simulated cases: mean +0.02 dB,
        -0.05 to +0.09, ``benchmarks/RESULTS.md``); 0 keeps Keras' average from the first step.
    patch_budget : int
        Most training patches drawn from the scene (:func:`sample_patches`): a uniform random sample of
        the valid patches when the scene has more, all of them otherwise; it also bounds the report's
        second fit (two scales down). Default: ``benchmarks/patch_budget.py``.
    stage_iterations : int
        Adam steps of the full-resolution stage that refines the fit on the scene's own grid
        (:mod:`ssc_edge.train.full_resolution`); 0 turns it off. Protocol ``heldout`` only.
    stage_kernel : {"auto", "nominal", "estimated", "wider"}
        The blur of each 20 m band that the stage's consistency uses (:func:`stage_kernel_choice`).
    model : ModelConfig
        The architecture.
    """

    epochs: int = 50
    learning_rate: float = 5e-4
    lr_schedule: str = "constant"
    batch_size: int = 16
    patch: int = 16
    stride: int = 8
    protocol: str = "heldout"
    degradation: str = "auto"
    registration: str = "auto"
    upsampling: str = "bicubic"
    seed: int = 0
    precision: str = "auto"
    jit_compile: bool = False
    augment: bool = False
    checkpoint: str = "auto"
    ema: float | None = None
    ema_start: float = DEFAULT_EMA_START
    patch_budget: int = DEFAULT_PATCH_BUDGET
    stage_iterations: int = StageConfig.iterations
    stage_kernel: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        def one_of(name: str, choices: tuple[str, ...]) -> None:
            if getattr(self, name) not in choices:
                raise OptionError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")

        if int(self.stage_iterations) != self.stage_iterations or self.stage_iterations < 0:
            raise OptionError(f"stage_iterations must be a non-negative integer, got {self.stage_iterations!r}")
        one_of("stage_kernel", STAGE_KERNEL_CHOICES)
        for name in ("epochs", "batch_size", "patch", "stride", "patch_budget"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise OptionError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise OptionError(f"learning_rate must be positive, got {self.learning_rate!r}")
        one_of("checkpoint", CHECKPOINTS)
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise OptionError(f"ema must be in [0, 1), got {self.ema!r}")
        if not 0.0 <= self.ema_start < 1.0:
            raise OptionError(f"ema_start must be in [0, 1), got {self.ema_start!r}")
        one_of("lr_schedule", LR_SCHEDULES)
        one_of("protocol", PROTOCOLS)
        one_of("degradation", DEGRADATIONS)
        one_of("registration", REGISTRATIONS)
        one_of("upsampling", wald.UPSAMPLING_METHODS)
        one_of("precision", ("auto", *PRECISIONS))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the model options nested under ``"model"``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`OptionError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError(f"unknown fit option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)  # a nested "model" dict is made a ModelConfig by __post_init__

    @classmethod
    def for_protocol(cls, protocol: str = "heldout", **options: Any) -> FitConfig:
        """The config of ``protocol`` with ``options`` set; an option given as None keeps the protocol's default:
        :data:`PAPER_DEFAULTS` for ``"paper"`` (the released code's schedule, no stage), the field's default else."""
        given = {name: value for name, value in options.items() if value is not None}
        if protocol == "paper":
            given = PAPER_DEFAULTS | given | {"stage_iterations": 0}  # never the stage, whatever was asked
        return cls(protocol=protocol, **given)


#: What protocol ``"paper"`` changes in :class:`FitConfig`'s defaults (:meth:`FitConfig.for_protocol`): the released
#: code's 200 epochs at batch 64; the full-resolution stage, which refines a ``heldout`` fit only, is always off.
PAPER_DEFAULTS: dict[str, Any] = {"epochs": 200, "batch_size": 64}


@dataclass
class FitResult:
    """A fitted model and how it was fitted.

    Attributes
    ----------
    model : keras.Model
        The float32 model with the best weights; input and output normalised DN (DN / ``scale``).
    scale : float
        Normalisation, DN: the maximum of the training target.
    history : list of float
        Epoch-mean training loss (MSE of normalised DN), one per epoch.
    best_epoch : int
        1-based epoch whose weights were kept; the last epoch when ``config.ema`` is on (the
        moving average at the end of training is kept).
    seconds : float
        Wall time of the training loop, s (patch extraction and compilation included).
    patches : int
        Number of training patches.
    config : FitConfig
        As run: ``precision``, ``checkpoint`` and ``ema`` resolved from their automatic values.
    image_history : list of float
        MSE of the whole training image pair (normalised DN), one per epoch, when
        ``config.checkpoint`` is ``"image-loss"``; else empty.
    candidates : int
        Valid patches the scene offered (``patches`` of them were drawn); equal to ``patches`` when
        the fit did not sample.
    windows : int
        Windows of the scene the drawn patches came from (1: a whole image).
    origins : (n, 2) int ndarray or None
        ``(row, col)`` of each training patch's origin on the training grid, pixels, when the fit
        sampled the scene (:func:`fit_sampled`); the report keeps its held-out windows clear of them.
    stage : dict or None
        What the full-resolution stage did (:func:`fit_scene`): iterations, kernels, pixels, seconds and
        the loss before and after; None without the stage.
    before_stage : FitResult or None
        The fit before the stage, when :func:`fit_scene` was asked to keep it (benchmarks).
    """

    model: Any
    scale: float
    history: list[float]
    best_epoch: int
    seconds: float
    patches: int
    config: FitConfig
    image_history: list[float] = field(default_factory=list)
    candidates: int = 0
    windows: int = 1
    origins: np.ndarray | None = None
    stage: dict[str, Any] | None = None
    before_stage: Any = None

    @property
    def weights_kept(self) -> str:
        """The rule that chose the kept weights: ``"ema DECAY"``, ``"patch-loss"`` or ``"image-loss"``."""
        return f"ema {self.config.ema:g}" if self.config.ema else self.config.checkpoint

    @property
    def best_loss(self) -> float:
        """Training loss of the kept weights."""
        return self.history[self.best_epoch - 1]


def default_ema(batch_size: int) -> float:
    """The default EMA decay per epoch for ``batch_size``: ``DEFAULT_EMA`` per epoch of 64-patch steps, i.e. the same
    decay per optimizer step at any batch size (0.98 at 64, 0.922 at 16)."""
    return DEFAULT_EMA ** (64 / batch_size)


def resolve_precision(precision: str) -> str:
    """The Keras compute precision that ``precision`` (``FitConfig.precision``) means on this machine."""
    if precision != "auto":
        return precision
    tf = tensorflow()
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


def minimum_scene_size(config: FitConfig, *, levels: int = 1) -> int:
    """Smallest fine-grid side, pixels, that yields one training patch ``levels`` scales down (:func:`minimum_side`)."""
    return minimum_side(config.patch, levels)


def extract_patches(image: np.ndarray, *, size: int, stride: int) -> np.ndarray:
    """All ``size`` x ``size`` windows of ``image`` whose origins lie on a ``stride`` grid.

    Parameters
    ----------
    image : (H, W, C) ndarray
    size, stride : int
        Pixels.

    Returns
    -------
    (N, size, size, C) ndarray, same dtype; windows in row-major order of their origins, as the
    released code's ``GenerateCube``; ``N = ((H - size) // stride + 1) * ((W - size) // stride + 1)``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise OptionError(f"image must be (H, W, C), got shape {image.shape}")
    height, width = image.shape[:2]
    if height < size or width < size:
        raise SceneError(f"a {height}x{width} training image is smaller than one {size}x{size} patch")
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))[::stride, ::stride]
    return np.ascontiguousarray(windows.transpose(0, 1, 3, 4, 2).reshape(-1, size, size, image.shape[2]))


def training_data(
    scene: Scene, config: FitConfig, *, levels: int = 1, pair: wald.PairModel | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (inputs, target) images of a protocol, DN.

    Returns
    -------
    inputs : (h, w, 10) float32 ndarray
    target : (h, w, 6) float32 ndarray

    ``heldout`` reads only the scene's bands, ``levels`` scales down, with ``pair`` (else
    :func:`pair_model_for` of the scene); ``paper`` reads the RR cells and ``scene.reference``
    (``levels`` must be 1).
    """
    where = f"{scene.source}: " if scene.source is not None else ""
    if config.protocol == "paper":
        if scene.reference is None:
            raise OptionError(f"{where}protocol 'paper' needs an RR scene with a reference (Xm_im)")
        if levels != 1:
            raise OptionError("protocol 'paper' trains on the RR pair itself; levels must be 1")
        return wald.full_scale_input(scene, upsampling=config.upsampling), scene.reference
    check_training_size(scene.shape, config.patch, levels=levels, where=where)
    if pair is None:
        pair = pair_model_for(scene, config)
    images = wald.training_pair(
        scene, degradation=config.degradation, upsampling=config.upsampling, levels=levels, model=pair
    )
    return images.inputs, images.target


def _epoch_function(model, optimizer, inputs, target, batch_size: int, jit_compile: bool, augment: bool = False):
    """One epoch as a ``tf.function(permutation, ops) -> mean loss`` over in-memory patch tensors.

    ``ops`` holds one dihedral transform (0..7) per batch, used when ``augment`` is true.
    """
    tf = tensorflow()
    count = int(inputs.shape[0])
    batches = -(-count // batch_size)
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.cast(model(x, training=True), tf.float32) - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss * tf.cast(tf.shape(x)[0], tf.float32)

    def transform(image, op):
        """One of the 8 rotations/flips of the square dihedral group, ``op`` in 0..7."""
        image = tf.image.rot90(image, k=op % 4)
        return tf.cond(op >= 4, lambda: tf.reverse(image, axis=[2]), lambda: image)

    @tf.function
    def epoch(permutation, ops):
        total = tf.constant(0.0)
        for b in tf.range(batches):
            index = permutation[b * batch_size : tf.minimum((b + 1) * batch_size, count)]
            x, y = tf.gather(inputs, index), tf.gather(target, index)
            if augment:
                x, y = transform(x, ops[b]), transform(y, ops[b])
            total += step(x, y)
        return total / count

    return epoch


def restart_average(optimizer, variables) -> None:
    """Start the optimizer's weight average (``use_ema``) over from ``variables`` as they are now.

    Keras keeps the averages in the private ``_model_variables_moving_average`` (one per trainable variable, in the
    order of ``optimizer.build``) and has no public call to reset them; ``tests/train/test_fit.py`` holds this to
    Keras' own update rule, so a Keras that moves them fails there.
    """
    for average, variable in zip(optimizer._model_variables_moving_average, variables, strict=True):
        average.assign(variable)


def fit_model(
    inputs: np.ndarray, target: np.ndarray, config: FitConfig | None = None, *, progress: ProgressCallback | None = None
) -> FitResult:
    """Fit SSC-CNN on one (inputs, target) image pair, on all its patches.

    Parameters
    ----------
    inputs : (h, w, 10) ndarray
        Model input, DN (:func:`training_data`).
    target : (h, w, 6) ndarray
        Target, DN.
    config : FitConfig, optional
    progress : callable, optional
        ``progress(epoch, epochs, "loss ...")`` after every epoch.
    """
    config = config or FitConfig()
    scale = float(np.max(target))
    if not scale > 0:
        raise SceneError("the training target is all zeros or negative; cannot normalise it")
    x = extract_patches(np.asarray(inputs, np.float32) / scale, size=config.patch, stride=config.stride)
    y = extract_patches(np.asarray(target, np.float32) / scale, size=config.patch, stride=config.stride)
    return fit_patches(x, y, scale, config, progress=progress, whole=(inputs, target))


def fit_patches(
    x: np.ndarray,
    y: np.ndarray,
    scale: float,
    config: FitConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    whole: tuple[np.ndarray, np.ndarray] | None = None,
) -> FitResult:
    """Fit SSC-CNN on training patches (:func:`sample_patches` or :func:`extract_patches`).

    Parameters
    ----------
    x : (n, p, p, 10) float32 ndarray
        Input patches, normalised DN (DN / ``scale``).
    y : (n, p, p, 6) float32 ndarray
        Target patches, normalised DN.
    scale : float
        The normalisation, DN.
    config : FitConfig, optional
    progress : callable, optional
        ``progress(epoch, epochs, "loss ...")`` after every epoch.
    whole : (inputs, target) of (h, w, C) DN ndarrays, optional
        The whole training pair; needed by the ``"image-loss"`` checkpoint only.
    """
    tf = tensorflow()
    config = config or FitConfig()
    start = time.perf_counter()
    checkpoint = config.checkpoint
    if checkpoint == "auto":
        checkpoint = "image-loss" if config.protocol == "paper" else "patch-loss"
    ema = config.ema
    if ema is None:
        ema = default_ema(config.batch_size) if config.protocol == "heldout" else 0.0
    config = replace(config, precision=resolve_precision(config.precision), checkpoint=checkpoint, ema=ema)
    if not scale > 0:
        raise SceneError("the training target is all zeros or negative; cannot normalise it")
    by_image = config.checkpoint == "image-loss" and not config.ema
    if by_image and whole is None:
        raise OptionError(
            "checkpoint 'image-loss' scores the whole training pair each epoch, which a sampled fit does not hold; "
            "use --checkpoint patch-loss or --ema"
        )
    logger.info("training on %d patches of %dx%d px (scale %.1f DN)", len(x), config.patch, config.patch, scale)

    import keras  # after tensorflow() above, so its quiet import is the one keras gets

    channels = {"input_channels": x.shape[-1], "output_channels": y.shape[-1]}  # 10 -> 6, or 12 -> 2 (60 m)
    model = build_ssc_cnn(config.model, seed=config.seed, precision=config.precision, name="ssc_cnn_train", **channels)
    batches = -(-len(x) // config.batch_size)
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * batches, alpha=0.01
        )
    average = {"use_ema": True, "ema_momentum": config.ema ** (1 / batches)} if config.ema else {}
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, **average)
    optimizer.build(model.trainable_variables)
    epoch = _epoch_function(
        model, optimizer, tf.constant(x), tf.constant(y), config.batch_size, config.jit_compile, config.augment
    )
    if by_image:  # the whole pair, as the released code's validation data
        whole_x = tf.constant(np.asarray(whole[0], np.float32)[None] / np.float32(scale))
        whole_y = tf.constant(np.asarray(whole[1], np.float32)[None] / np.float32(scale))
        image_loss = tf.function(
            lambda: tf.reduce_mean(tf.square(tf.cast(model(whole_x, training=False), tf.float32) - whole_y))
        )
    rng = np.random.default_rng(config.seed)
    history: list[float] = []
    image_history: list[float] = []
    monitor = image_history if by_image else history
    best_weights, best_epoch = None, 0
    restart = round(config.ema_start * config.epochs) + 1 if config.ema and config.ema_start else 0
    for e in range(1, config.epochs + 1):
        if e == restart:
            restart_average(optimizer, model.trainable_variables)
        permutation, ops = rng.permutation(len(x)), rng.integers(0, 8, size=batches)
        loss = float(epoch(tf.constant(permutation, dtype=tf.int32), tf.constant(ops, dtype=tf.int32)))
        if not np.isfinite(loss):
            raise OptionError(f"training diverged at epoch {e} (loss {loss}); lower the learning rate")
        history.append(loss)
        if by_image:
            image_history.append(float(image_loss()))
        if not config.ema and (best_weights is None or monitor[-1] < monitor[best_epoch - 1]):
            best_weights, best_epoch = [w.numpy() for w in model.weights], e
        kept = f"EMA {config.ema}" if config.ema else f"best {monitor[best_epoch - 1]:.3e} @{best_epoch}"
        image = f" image {image_history[-1]:.3e}" if by_image else ""
        report(progress, e, config.epochs, f"loss {loss:.3e}{image} {kept}")
    if config.ema:  # the averaged weights replace the model's own
        optimizer.finalize_variable_values(model.trainable_variables)
        best_weights, best_epoch = [w.numpy() for w in model.weights], config.epochs
    final = build_ssc_cnn(config.model, seed=None, precision="float32", **channels)
    final.set_weights(best_weights)
    seconds = time.perf_counter() - start
    logger.info(
        "fitted %d epochs in %.1f s; best epoch %d, loss %.3e",
        config.epochs,
        seconds,
        best_epoch,
        history[best_epoch - 1],
    )
    return FitResult(final, scale, history, best_epoch, seconds, len(x), config, image_history, len(x))


def fit_sampled(
    source: Any,
    config: FitConfig | None = None,
    *,
    levels: int = 1,
    progress: ProgressCallback | None = None,
    read_progress: ProgressCallback | None = None,
    pair: wald.PairModel | None = None,
) -> FitResult:
    """Fit protocol ``heldout`` on a bounded sample of a scene's patches, read window by window.

    Parameters
    ----------
    source : Scene or band source
        See :func:`scene_source`.
    config : FitConfig, optional
        ``patch_budget`` patches at most (:func:`sample_patches`).
    levels : int
        Scales below the fine grid (2 for the report's evaluation fit).
    progress, read_progress : callable, optional
        Per epoch; per window read.
    pair : wald.PairModel, optional
        The training pair's kernels and offset (:func:`pair_model_for`); made from the scene when needed
        and not given.
    """
    config = config or FitConfig()
    if config.protocol != "heldout":
        raise OptionError("a sampled fit trains protocol 'heldout'; protocol 'paper' fits the whole RR pair")
    drawn = sample_patches(scene_source(source), config, levels=levels, progress=read_progress, pair=pair)
    scale = np.float32(drawn.scale)
    x, y = drawn.inputs / scale, drawn.target / scale
    fit = fit_patches(x, y, drawn.scale, config, progress=progress)
    return replace(fit, candidates=int(drawn.candidates), windows=drawn.windows, origins=drawn.origins_drawn)


#: Side of the central crop the full-resolution stage samples its windows from, 10 m pixels (a full tile is
#: never read whole for it).
STAGE_CROP = 1024


def fit_scene(
    scene: Any,
    config: FitConfig | None = None,
    *,
    levels: int = 1,
    pair: wald.PairModel | None = None,
    progress: ProgressCallback | None = None,
    read_progress: ProgressCallback | None = None,
    keep_before_stage: bool = False,
) -> FitResult:
    """The default fit of a scene: the reduced-resolution fit, then the full-resolution stage.

    Protocol ``heldout`` trains ``levels`` scales down (:func:`fit_sampled`) and, with
    ``config.stage_iterations``, refines the model on the scene ``levels - 1`` scales down, i.e. at the
    scale it will run on (:mod:`ssc_edge.train.full_resolution`): at ``levels == 1`` the scene's own 10 m
    grid with the stage's kernel (``config.stage_kernel``); deeper, the grid this package degraded itself,
    so with the pair's own kernels. Protocol ``paper`` fits the RR pair (:func:`fit_model`), no stage.

    Parameters
    ----------
    scene : Scene or band source
    config : FitConfig, optional
    levels : int
        1 for the model that is exported, 2 for the report's held-out fit.
    pair : wald.PairModel, optional
        The training pair (:func:`pair_model_for`); estimated from the scene when not given.
    keep_before_stage : bool
        Keep a copy of the fit before the stage in ``FitResult.before_stage``.
    """
    config = config or FitConfig()
    if config.protocol == "paper":
        return fit_model(*training_data(scene, config), config, progress=progress)
    source = scene_source(scene)
    if pair is None:
        pair = pair_model_for(source, config)
    first = progress if not config.stage_iterations else stage(progress, "reduced-resolution fit")
    fit = fit_sampled(source, config, levels=levels, progress=first, read_progress=read_progress, pair=pair)
    if not config.stage_iterations:
        return fit
    before = None
    if keep_before_stage:
        copy = build_ssc_cnn(fit.config.model, seed=None)  # float32, 10 -> 6 channels: as fit.model
        copy.set_weights(fit.model.get_weights())
        before = replace(fit, model=copy)
    record = _full_resolution_stage(fit, source, pair, levels=levels, progress=stage(progress, "full-resolution stage"))
    return replace(fit, stage=record, before_stage=before)


def _full_resolution_stage(
    fit: FitResult, source: Any, pair, *, levels: int, progress, settings: Any = None
) -> dict[str, Any]:
    """Refine ``fit.model`` in place on the scene ``levels - 1`` scales down; what was done, as a dict.

    ``settings`` (a :class:`~ssc_edge.train.full_resolution.StageConfig`) overrides the stage's defaults with
    ``fit.config.stage_iterations`` steps (benchmarks compare stage settings from one fit).
    """
    config = fit.config
    start = time.perf_counter()
    crop = central_scene(source, STAGE_CROP)
    if levels > 1:  # the grids below the scene are this package's own degradation: the pair's kernels are true
        for _ in range(levels - 1):
            crop = wald.reduced_resolution_scene(crop, degradation=config.degradation, model=pair)
        kernels, choice = stage_kernels(pair, "estimated"), "pair"  # the nominal kernels without a pair
    else:
        choice = stage_kernel_choice(config.stage_kernel, pair)
        kernels = stage_kernels(pair, choice)
    offset = pair.offset if pair is not None else (0.0, 0.0)
    settings = settings or StageConfig(iterations=config.stage_iterations)
    sample = stage_sample(
        crop.fine(), crop.coarse(), fit.scale, kernels, settings, offset=offset, upsampling=config.upsampling
    )
    pair_images = wald.training_pair(
        crop, degradation=config.degradation, upsampling=config.upsampling, levels=1, model=pair
    )
    target, valid = pair_images.target, measured(pair_images.target)

    def one_scale_down() -> float:  # mean SRE, dB, of the model on the training pair's valid pixels
        estimate = predict_tiled(fit.model, pair_images.inputs, fit.scale)
        return float(np.mean(signal_to_reconstruction_error(target, estimate, valid=valid)))

    guard_before = one_scale_down()
    weights_before = fit.model.get_weights()
    history = refine_in_precision(fit, sample, kernels, settings, progress=progress)
    guard_after = one_scale_down()
    kept = guard_after >= guard_before - STAGE_GUARD_DB
    if not kept:  # the stage broke what the scene shows one scale down: its kernel does not fit this scene
        fit.model.set_weights(weights_before)
        logger.warning(
            "full-resolution stage undone: one scale down it lost %.2f dB (%.2f -> %.2f dB), more than %.1f dB",
            guard_before - guard_after,
            guard_before,
            guard_after,
            STAGE_GUARD_DB,
        )
    return {
        "iterations": settings.iterations,
        "kept": bool(kept),
        "one_scale_down_sre": [round(guard_before, 3), round(guard_after, 3)],
        "kernel": choice,
        "kernels": [k.to_dict() for k in kernels],
        "windows": int(sample.inputs.shape[0]),
        "pixels": int(np.prod(sample.inputs.shape[:3])),
        "loss": [round(history[0], 6), round(history[-1], 6)],
        "seconds": round(time.perf_counter() - start, 2),
    }


#: The band of estimated (pooled) Gaussian blur, 10 m px below and above the mean nominal MTF sigma of the 20 m bands
#: (0.98 px), for which ``stage_kernel="auto"`` takes the nominal kernels; asymmetric because the relative blur a scene
#: shows is never wider than the kernel that made it, often narrower (``benchmarks/faithful_pair.py --blur-sweep``,
#: ``benchmarks/full_resolution_stage.py``).
NOMINAL_BELOW, NOMINAL_ABOVE = 0.15, 0.03


#: Most loss, dB of mean SRE one scale down (on the stage's crop, the fit's own training pair), that the full-resolution
#: stage may cost before it is undone: a guard against a stage that diverges, loose because a right kernel also costs a
#: few dB there (the stage moves the model away from the pair it was fitted on; ``benchmarks/RESULTS.md``).
STAGE_GUARD_DB = 6.0


def stage_kernel_choice(choice: str, pair: wald.PairModel | None) -> str:
    """The stage kernel that ``FitConfig.stage_kernel`` means for a scene's pair.

    ``"auto"``: ``"nominal"`` (each band's nominal MTF) when the scene's estimated relative blur is a Gaussian
    from :data:`NOMINAL_BELOW` under to :data:`NOMINAL_ABOVE` over the nominal one, else ``"estimated"``: the
    scene shows another kernel (MATLAB ``imresize``, a sharper or blurrier sensor) and the stage must be
    consistent with it, since a stage kernel wrong by a tenth of a pixel costs more than the stage gains
    (``docs/method.md``).
    """
    if choice != "auto":
        return choice
    if pair is None:
        return "nominal"
    nominal = float(np.mean([k.sigma for k in stage_kernels(None, "nominal")]))
    gaussian = all(k.kind == "gaussian" for k in pair.coarse)
    if gaussian and -NOMINAL_BELOW <= float(np.mean([k.sigma for k in pair.coarse])) - nominal <= NOMINAL_ABOVE:
        return "nominal"
    return "estimated"


def predict(model, inputs: np.ndarray, scale: float) -> np.ndarray:
    """Run a fitted Keras model on one (H, W, 10) DN image; return (H, W, 6) float32 DN."""
    x = np.asarray(inputs, np.float32)[None] / np.float32(scale)
    return np.asarray(model(x, training=False))[0] * np.float32(scale)


#: Most pixels the report scores; a larger evaluation grid is scored on a random sample of windows.
EVALUATION_PIXELS = 1024 * 1024
#: Side of the evaluation windows, pixels of the evaluation grid; bounds Keras' memory (``benchmarks/RESULTS.md``).
EVALUATION_TILE = 256


def predict_tiled(model, inputs: np.ndarray, scale: float, *, tile: int = EVALUATION_TILE) -> np.ndarray:
    """:func:`predict` on windows of at most ``tile`` px plus the model's halo (the runtime's tiling), so Keras'
    memory is set by the window, not by the image; (H, W, 10) DN -> (H, W, 6) float32 DN, equal to the
    whole-image result up to float rounding (the halo covers the receptive field; borders keep the zero
    padding of the whole image)."""
    height, width = inputs.shape[:2]
    if height <= tile and width <= tile:
        return predict(model, inputs, scale)
    out = None
    for planned in plan_tiles((height, width), tile=tile, halo=receptive_halo(model)):
        part = predict(model, inputs[planned.window.slices], scale)[planned.core.relative_to(planned.window).slices]
        if out is None:
            out = np.empty((height, width, part.shape[-1]), np.float32)
        out[planned.core.slices] = part
    return out


#: How a scene without a reference is scored (:func:`evaluate_fit`).
EVALUATIONS = ("auto", "one-scale-down", "spatial-holdout")


@dataclass
class Evaluation:
    """Reduced-resolution quality of a fitted model and of bicubic upsampling on the same pair.

    Attributes
    ----------
    model : QualityReport
    bicubic : QualityReport
        The baseline: the 20 m bands upsampled with ``config.upsampling`` (bicubic by default).
    kind : str
        What was compared: ``"rr-reference"`` (RR file: sharpened RR cells against ``Xm_im``),
        ``"paper-training-set"`` (the same, but the model was trained on that pair) or
        ``"one-scale-down"`` (a scene without reference: a second model trained two scales down,
        evaluated one scale down against the observed 20 m bands) or ``"spatial-holdout"`` (a scene
        without reference whose fit sampled it: the model itself on the training pair one scale down,
        on windows clear of its training patches).
    training_set_numbers : bool
        True when the model saw the evaluation target during training (protocol ``paper``).
    fit_seconds : float
        Time of the extra fit for ``"one-scale-down"`` (0 otherwise), s.
    windows : int
        Windows of the evaluation grid the model ran on.
    pixels : int
        Pixels scored.
    sampled : bool
        True when the scores are over a random sample of whole windows (a grid larger than
        :data:`EVALUATION_PIXELS`, or one with no-data), not the whole image.
    patches : int
        Training patches of the ``"one-scale-down"`` fit (0 otherwise).
    before_stage : QualityReport or None
        ``"spatial-holdout"`` of a fit with the full-resolution stage: the model before the stage on the same
        windows (the stage aims at the full scale, so one scale down it may score under the fit it started
        from although it sharpens the 10 m product better, ``docs/method.md``).
    """

    model: QualityReport
    bicubic: QualityReport
    kind: str
    training_set_numbers: bool
    fit_seconds: float = 0.0
    windows: int = 1
    pixels: int = 0
    sampled: bool = False
    patches: int = 0
    before_stage: QualityReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        extra = {} if self.before_stage is None else {"before_stage": self.before_stage.to_dict()}
        plain = ("kind", "training_set_numbers", "fit_seconds", "windows", "pixels", "sampled", "patches")
        reports = {"model": self.model.to_dict(), "bicubic": self.bicubic.to_dict()}
        return extra | {name: getattr(self, name) for name in plain} | reports


def _scene_window_pair(scene: Scene, upsampling: str):
    """``pair(tile) -> (inputs, reference, nodata)`` of an RR scene's own input and its reference, DN."""
    from ..runtime.sharpen import upsampled_window

    source = scene_source(scene)

    def pair(tile):
        up = upsampled_window(source.read, tile, scene.shape, COARSE_BANDS, method=upsampling)
        fine = np.stack([source.read(b, tile) for b in FINE_BANDS], axis=-1).astype(np.float32)
        nodata = np.any(fine == 0, axis=-1)
        r0, c0 = tile.row // 2, tile.col // 2  # the 20 m pixels under the window, as observed
        r1, c1 = -(-(tile.row + tile.height) // 2), -(-(tile.col + tile.width) // 2)
        coarse = Tile(r0, c0, r1 - r0, c1 - c0)
        zero = np.any([source.read(b, coarse) == 0 for b in COARSE_BANDS], axis=0).repeat(2, 0).repeat(2, 1)
        nodata |= zero[tile.row % 2 : tile.row % 2 + tile.height, tile.col % 2 : tile.col % 2 + tile.width]
        return np.concatenate([up, fine], axis=-1), scene.reference[tile.slices], nodata

    return pair


def _training_window_pair(source: Any, config: FitConfig, levels: int, *, pair: wald.PairModel | None = None):
    """``pairs(tile) -> (inputs, target, nodata)`` of the Wald pair ``levels`` down, read window by window."""

    def pairs(tile):
        got = window_pair(source, tile, config, levels=levels, pair=pair)
        if got is None:
            return None
        top, left = got.offset
        return got.inputs, got.target, got.nodata[top : top + tile.height, left : left + tile.width]

    return pairs


def score_windows(
    pair,
    shape: tuple[int, int],
    models: Sequence[Any],
    scale: float,
    *,
    seed: int = 0,
    pixels: int = EVALUATION_PIXELS,
    tile: int = EVALUATION_TILE,
    progress: ProgressCallback | None = None,
    exclude: tuple[np.ndarray, int] | None = None,
) -> tuple[list[QualityReport], QualityReport, int, int, bool]:
    """Score Keras models window by window (the runtime's tiling), against bicubic, on the same windows.

    Parameters
    ----------
    pair : callable
        ``pair(tile) -> (inputs (h, w, 10), reference (h, w, 6), nodata (h, w) bool)`` DN, or None
        when the tile is all no-data.
    shape : (int, int)
        ``(H, W)`` of the evaluation grid.
    models : sequence of keras.Model
        Scored on the same windows, each read once (a staged fit and its copy before the stage).
    scale : float
        The models' normalisation, DN.
    seed : int
        Seeds the window sample.
    pixels : int
        Whole-image scoring up to this many pixels; above, or with any no-data, a random sample of
        ``tile`` x ``tile`` windows free of no-data (a non-overlapping grid of them), up to ``pixels``;
        if no such window is clean, windows half as large, and so on down to 32 px.
    tile : int
        Window side, pixels.
    exclude : ((n, 2) int ndarray, int), optional
        ``(origins, size)``: squares of the grid the model was trained on (``size`` pixels from each
        ``(row, col)`` origin). Only sampled windows whose network input (the window and its halo)
        touches none of them are scored: a spatial hold-out, never the whole image.

    Returns
    -------
    (one report per model, bicubic report, windows run, pixels scored, sampled)
    """
    halo = max(receptive_halo(model) for model in models)
    height, width = (int(n) for n in shape)

    def run(window: Tile, core: Tile):
        got = pair(window)
        if got is None:
            return None
        inputs, reference, nodata = got
        inner = core.relative_to(window).slices
        if nodata[inner].any():
            return None
        estimates = (predict(model, inputs, scale)[inner] for model in models)
        return reference[inner], inputs[inner][..., : len(COARSE_BANDS)], *estimates

    def held_out(r0: int, c0: int, r1: int, c1: int) -> bool:
        if exclude is None:
            return True
        origins, size = exclude
        rows, cols = origins[:, 0], origins[:, 1]
        return not np.any((rows < r1) & (rows + size > r0) & (cols < c1) & (cols + size > c0))

    if exclude is None and height * width <= pixels:
        plan = plan_tiles(shape, tile=tile, halo=halo)
        arrays = [np.empty((height, width, len(COARSE_BANDS)), np.float32) for _ in range(2 + len(models))]
        for k, planned in enumerate(plan, 1):
            got = run(planned.window, planned.core)
            if got is None:
                break
            for array, part in zip(arrays, got, strict=True):
                array[planned.core.slices] = part
            report(progress, k, len(plan), "evaluation windows")
        else:
            return (*_reports(arrays), len(plan), height * width, False)
    # a sample of whole windows free of no-data; smaller windows when no-data leaves no whole one clean
    side = min(tile, height, width)
    smallest = min(32, side)
    parts: list[tuple[np.ndarray, ...]] = []
    tried = 0
    while not parts and side >= smallest:
        blocks = [
            Tile(r, c, side, side) for r in range(0, height - side + 1, side) for c in range(0, width - side + 1, side)
        ]
        order = np.random.default_rng([seed, 15]).permutation(len(blocks))
        wanted = max(1, pixels // (side * side))
        for i in order:
            block = blocks[i]
            r0, c0 = max(block.row - halo, 0), max(block.col - halo, 0)
            r1, c1 = min(block.row + block.height + halo, height), min(block.col + block.width + halo, width)
            if not held_out(r0, c0, r1, c1):
                continue
            tried += 1
            got = run(Tile(r0, c0, r1 - r0, c1 - c0), block)
            if got is not None:
                parts.append(got)
                report(progress, len(parts), wanted, "evaluation windows")
            if len(parts) == wanted:
                break
        side //= 2
    if not parts:
        held = " and of training patches" if exclude is not None else ""
        raise SceneError(f"no window of 32x32 px or more free of no-data (0 DN){held} to evaluate the fit on")
    arrays = [np.concatenate(p, axis=1) for p in zip(*parts, strict=True)]
    return (*_reports(arrays), tried, arrays[0].shape[0] * arrays[0].shape[1], True)


def _reports(arrays: Sequence[np.ndarray]) -> tuple[list[QualityReport], QualityReport]:
    """``(one report per model, bicubic report)`` of ``[reference, bicubic, *model estimates]``, (h, w, 6) DN."""
    reference, upsampled, *estimates = arrays
    models = [quality_report(reference, estimate, band_names=COARSE_BANDS) for estimate in estimates]
    return models, quality_report(reference, upsampled, band_names=COARSE_BANDS)


def evaluate_fit(
    scene: Any,
    fit: FitResult,
    *,
    progress: ProgressCallback | None = None,
    read_progress: ProgressCallback | None = None,
    pair: wald.PairModel | None = None,
    evaluation: str = "auto",
) -> Evaluation:
    """Score a fit at reduced resolution, against bicubic upsampling of the same input, window by window.

    With a reference (RR file, demo scene): ``fit.model`` sharpens the scene's own bands and is
    compared with ``scene.reference``. Without one (a :class:`Scene` without reference or a band
    source): a second model is fitted with ``fit.config`` two scales down, on at most
    ``config.patch_budget`` patches (:func:`fit_sampled`), and scored one scale down against the
    observed 20 m bands (this second fit is what ``progress`` reports), with the training pair's ``pair``
    (:func:`pair_model_for`). The model runs window by window (:func:`score_windows`).

    ``evaluation`` chooses, for a scene without a reference, between that second fit
    (``"one-scale-down"``: it tests the transfer across scales, at the cost of a second fit) and a
    spatial hold-out (``"spatial-holdout"``: ``fit.model`` itself is scored on the training pair one
    scale down, on a random sample of windows whose network input touches none of its training
    patches; no second fit). ``"auto"`` (default) takes the hold-out when the fit sampled at most half
    of the scene's valid patches (a full tile: 512 of about 450,000) and one such window exists, else
    the second fit. Scenes with a reference are always scored against it.
    """
    if evaluation not in EVALUATIONS:
        raise OptionError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    config = fit.config
    reference = getattr(scene, "reference", None)
    if reference is not None:
        pairs = _scene_window_pair(scene, config.upsampling)
        grid, model, scale, extra, patches = scene.shape, fit.model, fit.scale, 0.0, 0
        kind = "paper-training-set" if config.protocol == "paper" else "rr-reference"
    else:
        if config.protocol == "paper":
            raise OptionError("protocol 'paper' needs a scene with a reference")
        source = scene_source(scene)
        if pair is None:
            pair = pair_model_for(source, config)
        pairs = _training_window_pair(source, config, 1, pair=pair)
        grid = training_grid(source.shape, 1)
        mode = evaluation
        if mode == "auto":
            sampled_half = fit.origins is not None and 2 * fit.patches <= fit.candidates
            mode = "spatial-holdout" if sampled_half else "one-scale-down"
        if mode == "spatial-holdout":
            if fit.origins is None:
                raise OptionError("a spatial hold-out needs a fit that sampled the scene (fit_sampled)")
            models = [fit.model] + ([] if fit.before_stage is None else [fit.before_stage.model])
            exclude = (fit.origins, config.patch)
            try:
                scores = score_windows(
                    pairs, grid, models, fit.scale, seed=config.seed, progress=read_progress, exclude=exclude
                )
            except SceneError:
                if evaluation != "auto":
                    raise
                logger.info("no window clear of the training patches: scoring a second fit two scales down")
            else:
                return _evaluation(scores, "spatial-holdout")
        held_out = stage(progress, "held-out fit (two scales down, scores the report)")
        second = fit_scene(source, config, levels=2, progress=held_out, read_progress=read_progress, pair=pair)
        model, scale = second.model, second.scale
        extra = second.seconds + (second.stage or {}).get("seconds", 0.0)
        kind, patches = "one-scale-down", second.patches
    scores = score_windows(pairs, grid, [model], scale, seed=config.seed, progress=read_progress)
    return _evaluation(scores, kind, fit_seconds=extra, patches=patches)


def _evaluation(scores: tuple, kind: str, **extra: Any) -> Evaluation:
    """The :class:`Evaluation` of :func:`score_windows`' result; a second model's report is ``before_stage``."""
    reports, bicubic, extra["windows"], extra["pixels"], extra["sampled"] = scores
    if len(reports) > 1:
        extra["before_stage"] = reports[1]
    paper = kind == "paper-training-set"  # protocol paper: the model saw the evaluation target
    return Evaluation(model=reports[0], bicubic=bicubic, kind=kind, training_set_numbers=paper, **extra)
