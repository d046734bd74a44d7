"""Export a fitted SSC-CNN to a self-describing ONNX model, and the whole ``fit-and-export`` pipeline.

The ONNX graph is what :mod:`ssc_edge.contract` describes: input :data:`~ssc_edge.contract.INPUT_NAME` (normalised
DN, 6 upsampled 20 m bands then 4 10 m bands), output :data:`~ssc_edge.contract.OUTPUT_NAME` (normalised DN, 6
bands), the global residual inside the graph, opset 17, dynamic ``batch``/``height``/``width`` dimensions, and a
:class:`~ssc_edge.contract.ModelContract` in ``metadata_props``. The layout (NHWC or NCHW) is the one onnxruntime
runs faster on this machine, measured at export time (NHWC unless NCHW is more than 5 % faster).
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bands import COARSE_BANDS, FINE_BANDS
from ..contract import INPUT_NAME, OUTPUT_NAME, ModelContract
from ..demo import demo_scene
from ..errors import ModelError, OptionError, OutputError
from ..io import atomic_output, output_guard
from ..io.sources import central_scene, open_band_source, scene_identity
from ..progress import ProgressCallback
from ..registration import estimate_scene_registration
from ..runtime.precision import GATE_SIZE
from ..scene import Scene
from ._tensorflow import tensorflow
from .fit import (
    EVALUATIONS,
    Evaluation,
    FitConfig,
    FitResult,
    evaluate_fit,
    fit_model,
    fit_scene,
    pair_model_for,
    training_data,
)
from .model import receptive_halo
from .report import full_resolution_summary, render_markdown, report_dict
from .windows import check_training_size, scene_source

__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "ExportResult",
    "build_contract",
    "check_parity",
    "export_onnx",
    "fit_and_export",
    "keras_to_onnx",
    "pad_concat_channels",
    "measure_layouts",
    "written_paths",
    "write_model_files",
    "output_paths",
]

logger = logging.getLogger(__name__)

#: ONNX opset of every exported model.
OPSET = 17
#: Largest accepted |Keras - onnxruntime| difference, as a fraction of the output range.
PARITY_TOLERANCE = 1e-4
#: NCHW must be this much faster (fraction) than NHWC, the library's own layout, to be chosen.
_LAYOUT_MARGIN = 0.05
_DIM_NAMES = {"NHWC": ("batch", "height", "width", None), "NCHW": ("batch", None, "height", "width")}


def keras_to_onnx(model, *, layout: str = "NHWC"):
    """Convert a Keras SSC-CNN to an ONNX ``ModelProto`` with the contract's names (no metadata yet).

    Parameters
    ----------
    model : keras.Model
        NHWC float32 model, input ``(batch, height, width, 10)``.
    layout : {"NHWC", "NCHW"}
        Layout of the ONNX input and output; NCHW uses tf2onnx's ``inputs_as_nchw`` / ``outputs_as_nchw`` (the
        transposes are folded into the graph).

    Returns
    -------
    onnx.ModelProto
        Opset :data:`OPSET`; input ``bands`` and output ``sharpened`` with dimensions named ``batch``, ``height``,
        ``width``.
    """
    import onnx
    import tf2onnx

    tf = tensorflow()
    if layout not in _DIM_NAMES:
        raise OptionError(f"layout must be NHWC or NCHW, got {layout!r}")
    spec = (tf.TensorSpec((None, None, None, model.inputs[0].shape[-1]), tf.float32, name=INPUT_NAME),)
    output = model.output_names[0] if hasattr(model, "output_names") else getattr(model.outputs[0], "name", None)
    nchw = layout == "NCHW"
    proto, _ = tf2onnx.convert.from_keras(
        model,
        input_signature=spec,
        opset=OPSET,
        inputs_as_nchw=[INPUT_NAME] if nchw else None,
        outputs_as_nchw=[output] if nchw else None,
    )
    graph = proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ModelError(f"tf2onnx made {len(graph.input)} inputs and {len(graph.output)} outputs, expected 1 and 1")
    _rename_value(graph, graph.input[0].name, INPUT_NAME)
    _rename_value(graph, graph.output[0].name, OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):
        for dim, name in zip(value.type.tensor_type.shape.dim, _DIM_NAMES[layout], strict=True):
            if name is not None:
                dim.Clear()
                dim.dim_param = name
    proto.producer_name = "ssc-edge"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    return proto


#: onnxruntime's NCHWc convolution kernels (MLAS) block channels by 8 (AVX2) or 16 (AVX-512); other input channel
#: counts fall back to the slower im2col + GEMM path.
NCHWC_BLOCK = 16


def pad_concat_channels(proto):
    """Pad the skip branches so that every concatenation feeds a convolution a multiple of :data:`NCHWC_BLOCK`
    channels.

    SSC-CNN's output blocks convolve ``concat(previous, skip)``: 128 + 25 = 153 channels with the paper's widths,
    which keeps those convolutions off onnxruntime's NCHWc kernels (``benchmarks/skip_width_speed.py``). This pass
    appends all-zero filters (zero weights, zero bias) to the skip convolution that feeds the concat and zero input
    weights to every convolution that reads the concat. A zero channel stays zero through LeakyReLU/ReLU, so the
    output is unchanged up to float summation order (the export's parity check holds it to its tolerance). onnx and
    numpy do not offer this rewrite; it is done by hand on the initializers.

    Parameters
    ----------
    proto : onnx.ModelProto
        A graph from :func:`keras_to_onnx`; modified in place and returned.

    Returns
    -------
    onnx.ModelProto
        ``proto``. Graphs whose concats are not ``Conv -> [LeakyRelu|Relu] -> Concat(axis=1) -> Conv`` with
        weights in initializers are left as they are.
    """
    from onnx import numpy_helper

    graph = proto.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producer = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def conv_of(tensor: str):
        """The Conv (with initializer weights and bias) that makes ``tensor``, through at most one activation."""
        node = producer.get(tensor)
        if node is not None and node.op_type in ("LeakyRelu", "Relu") and len(consumers.get(tensor, [])) == 1:
            if len(consumers.get(node.input[0], [])) != 1:
                return None
            node = producer.get(node.input[0])
        ok = node is not None and node.op_type == "Conv" and len(node.input) in (2, 3)  # bias is optional
        return node if ok and all(name in initializers for name in node.input[1:]) else None

    def set_array(name: str, array: np.ndarray) -> None:
        initializers[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))

    for concat in [node for node in graph.node if node.op_type == "Concat"]:
        axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
        readers = consumers.get(concat.output[0], [])
        convs = [conv_of(name) for name in concat.input]
        if axis not in (1, -3) or any(conv is None for conv in convs) or not readers:
            continue
        if any(
            r.op_type != "Conv" or len(r.input) < 2 or r.input[0] != concat.output[0] or r.input[1] not in initializers
            for r in readers
        ):
            continue
        widths = [initializers[conv.input[1]].dims[0] for conv in convs]
        extra = -sum(widths) % NCHWC_BLOCK
        if extra == 0 or len({conv.output[0] for conv in convs}) != len(convs):  # one branch concatenated twice
            continue
        # Pad the last branch (the skip, in SSC-CNN's concat(previous, skip)) at its end.
        branch = len(convs) - 1
        weights = numpy_helper.to_array(initializers[convs[branch].input[1]])
        set_array(convs[branch].input[1], np.concatenate([weights, np.zeros((extra, *weights.shape[1:]))]))
        if len(convs[branch].input) == 3:  # tf2onnx drops an all-zero bias
            bias = numpy_helper.to_array(initializers[convs[branch].input[2]])
            set_array(convs[branch].input[2], np.concatenate([bias, np.zeros(extra)]))
        offset = sum(widths[: branch + 1])
        for reader in readers:
            w = numpy_helper.to_array(initializers[reader.input[1]])
            set_array(reader.input[1], np.insert(w, [offset] * extra, 0.0, axis=1))
    return proto


def _rename_value(graph, old: str, new: str) -> None:
    """Rename a tensor everywhere in an ONNX graph."""
    if old == new:
        return
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def _session(proto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NCHW" else x


def measure_layouts(protos: dict[str, Any], sample: np.ndarray) -> dict[str, float]:
    """Fastest onnxruntime (CPU) run time of each layout's model on one input, seconds.

    After one warm-up run each, the layouts' 5 timed runs are interleaved and the minimum is kept, so that load
    from other processes on a shared machine biases neither layout.

    Parameters
    ----------
    protos : dict of layout to onnx.ModelProto
    sample : (1, H, W, 10) float32 ndarray
        NHWC input, normalised DN.
    """
    sessions = {layout: _session(proto) for layout, proto in protos.items()}
    feeds = {layout: {INPUT_NAME: _to_layout(sample, layout)} for layout in protos}
    for layout, session in sessions.items():
        session.run(None, feeds[layout])  # warm-up
    timings = {layout: float("inf") for layout in protos}
    for _ in range(5):
        for layout, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds[layout])
            timings[layout] = min(timings[layout], time.perf_counter() - start)
    return timings


def check_parity(model, proto, sample: np.ndarray, *, layout: str) -> float:
    """Compare Keras and onnxruntime on one input; raise :class:`ModelError` beyond :data:`PARITY_TOLERANCE`.

    Parameters
    ----------
    model : keras.Model
    proto : onnx.ModelProto
    sample : (1, H, W, 10) float32 ndarray
        NHWC input, normalised DN (a real scene input).
    layout : {"NHWC", "NCHW"}
        Layout of ``proto``.

    Returns
    -------
    float
        max |Keras - onnxruntime| / (max - min of the Keras output).
    """
    expected = np.asarray(model(sample, training=False))
    got = _session(proto).run([OUTPUT_NAME], {INPUT_NAME: _to_layout(sample, layout)})[0]
    got = got.transpose(0, 2, 3, 1) if layout == "NCHW" else got
    if got.shape != expected.shape:
        raise ModelError(f"ONNX output shape {got.shape} differs from the Keras output shape {expected.shape}")
    spread = float(expected.max() - expected.min()) or 1.0
    relative = float(np.max(np.abs(got - expected))) / spread
    if not relative <= PARITY_TOLERANCE:
        raise ModelError(
            f"exported ONNX model disagrees with Keras: max |difference| is {relative:.2e} of the output range "
            f"(tolerance {PARITY_TOLERANCE:.0e})"
        )
    return relative


def _versions() -> dict[str, str]:
    tf = tensorflow()  # before keras, which imports it
    import keras
    import onnx
    import onnxruntime
    import tf2onnx

    return {
        "ssc_edge": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def build_contract(
    fit: FitResult,
    evaluation: Evaluation,
    *,
    layout: str,
    scene_sha256: str,
    scene_name: str,
    registration: dict | None = None,
    **bands: Any,
) -> ModelContract:
    """The :class:`ModelContract` of an exported fit (halo derived from the Keras graph).

    ``registration``: the scene's estimate and the training pair's model
    (``{"estimate": RegistrationEstimate.to_dict(), "pair_model": PairModel.to_dict()}``), if any. ``bands``: the
    contract's ``ratio``, ``input_bands`` and ``output_bands`` where not the 20 m model's.
    """
    config = fit.config
    training = {k: v for k, v in config.to_dict().items() if k != "model"}
    training.update(best_epoch=fit.best_epoch, patches=fit.patches, fit_seconds=round(fit.seconds, 2))
    return ModelContract(
        halo=receptive_halo(fit.model),
        scale=fit.scale,
        layout=layout,
        upsampling=config.upsampling,
        architecture=config.model.to_dict(),
        protocol=config.protocol,
        training=training,
        scene_sha256=scene_sha256,
        scene_name=scene_name,
        metrics=evaluation.to_dict(),
        versions=_versions(),
        registration=registration or {},
        **bands,
    )


@dataclass
class ExportResult:
    """What :func:`fit_and_export` wrote and measured.

    Attributes
    ----------
    paths : dict of str to Path
        ``"onnx"``, ``"keras"``, ``"json"``, ``"markdown"``.
    layout_seconds : dict of str to float
        onnxruntime's fastest run time per layout on the scene input, s (:func:`measure_layouts`).
    parity : float
        max |Keras - ONNX| / output range.
    phases : dict of str to float
        Wall time of each step, s: ``"read"`` (opening the scene), ``"estimate"`` (the registration),
        ``"fit"`` (drawing the patches and training; ``"stage"``, the full-resolution stage, is part of it),
        ``"evaluate"`` (the report's scores, with its second fit when there is one), ``"export"`` (conversion,
        layout timing, parity check) and ``"full_resolution"`` (the report's no-reference indexes); the report's
        ``phases_seconds`` adds ``"precision_gate"`` (measured while the files are written).
    sample_window : tuple of int
        ``(row, col, height, width)`` of the fine-grid window the layout timing and the parity check ran on;
        empty when they ran on the training pair's input (the 60 m model).
    """

    paths: dict[str, Path]
    fit: FitResult
    evaluation: Evaluation
    contract: ModelContract
    layout_seconds: dict[str, float] = field(default_factory=dict)
    parity: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    sample_window: tuple[int, ...] = ()


def _add_precision_gate(proto, scene: Scene | Callable[[], Scene]) -> None:
    """Measure each reduced precision this machine runs natively on the scene's held-out pair; store it.

    The runtime's ``--precision auto`` reads it (``ssc_edge.runtime.precision``); nothing is added on a machine
    without bf16 instructions or OpenVINO (``infer`` then measures it where it runs). ``scene`` may be a function
    that reads it (a full tile's central crop: read only when the gate is measured).
    """
    from ..runtime.hardware import detected_flags
    from ..runtime.precision import bf16_provider, openvino_runs
    from ..runtime.providers import available_providers
    from ..runtime.session import GATE_KEY
    from ..runtime.sharpen import gate_metadata

    where, why = bf16_provider("auto", available_providers(), openvino=openvino_runs(), flags=detected_flags())
    if not where:  # checked before the model is written to a temporary file (a full disk is then no concern)
        logger.info("precision gate not measured at export: %s", why)
        return
    try:
        with tempfile.TemporaryDirectory(prefix="ssc-edge-gate-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(proto.SerializeToString())
            gate = gate_metadata(path, scene() if callable(scene) else scene)
    except OSError as exc:  # never lose a finished fit to the gate: infer measures it where it runs
        # debug, not a warning: a full disk fails the model's own write next, with the one error line
        logger.debug("precision gate not measured at export (%s)", exc)
        return
    if gate:
        entry = proto.metadata_props.add()
        entry.key, entry.value = GATE_KEY, json.dumps(gate, sort_keys=True)
        logger.info("precision gate: %s", gate)


def output_paths(output: Path) -> dict[str, Path]:
    """The files written for ``output`` = ``NAME.onnx``: the model, ``NAME.keras``, ``NAME.json``, ``NAME.md``."""
    output = Path(output)
    if output.suffix != ".onnx":
        raise OptionError(f"{output}: the output must end in .onnx")
    return {
        "onnx": output,
        "keras": output.with_suffix(".keras"),
        "json": output.with_suffix(".json"),
        "markdown": output.with_suffix(".md"),
    }


def written_paths(paths: dict[str, Path], *, write_keras: bool) -> list[Path]:
    """The files of :func:`output_paths` an export writes (``NAME.keras`` only with ``write_keras``)."""
    return [path for key, path in paths.items() if key != "keras" or write_keras]


def _write(path: Path, write) -> None:
    """Run ``write()``; an OSError (a full disk) becomes an OutputError naming ``path``, the file being written."""
    try:
        write()
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


#: Side of the window of the scene on which the NHWC/NCHW timing and the parity check run, 10 m pixels.
SAMPLE_WINDOW = 256


def layout_sample(source, *, upsampling: str, scale: float):
    """One window of the full-scale network input, for the layout timing and the parity check.

    The first :data:`SAMPLE_WINDOW`-px square window (clipped to the scene) free of no-data, looking at the scene's
    centre first, then along the runtime's tile grid.

    Returns
    -------
    sample : (1, h, w, 10) float32 ndarray
        Normalised DN (DN / ``scale``), the 20 m bands upsampled with ``upsampling``.
    window : Tile
    """
    from ..runtime.sharpen import upsampled_window
    from ..tiling import Tile

    height, width = source.shape
    h, w = min(SAMPLE_WINDOW, height), min(SAMPLE_WINDOW, width)
    centre = Tile((height - h) // 2 // 2 * 2, (width - w) // 2 // 2 * 2, h, w)
    grid = [Tile(r, c, h, w) for r in range(0, height - h + 1, h) for c in range(0, width - w + 1, w)]
    first = None
    for window in [centre, *grid]:
        up = upsampled_window(source.read, window, (height, width), COARSE_BANDS, method=upsampling)
        fine = np.stack([np.asarray(source.read(b, window), np.float32) for b in FINE_BANDS], axis=-1)
        stacked = np.concatenate([up, fine], axis=-1)
        first = first or (stacked, window)
        if np.all(stacked != 0):
            break
    else:  # no window free of no-data: the first
        stacked, window = first
    return (stacked / np.float32(scale))[None], window


def fit_and_export(
    scene: Path | Scene | int | None,
    output: Path,
    config: FitConfig | None = None,
    *,
    force: bool = False,
    write_keras: bool = True,
    progress: ProgressCallback | None = None,
    evaluation: str = "auto",
    score_before_stage: bool = False,
) -> ExportResult:
    """Fit SSC-CNN on one scene, evaluate it at reduced resolution, and write the ONNX model and its report.

    Parameters
    ----------
    scene : Path, Scene, int or None
        A scene file (any format :func:`ssc_edge.io.read_scene` reads), a Scene, or the synthetic demo scene
        (:func:`ssc_edge.demo.demo_scene`): None for its default size, an int for that side in pixels.
    output : Path
        ``NAME.onnx``; ``NAME.keras``, ``NAME.json`` and ``NAME.md`` are written beside it.
    config : FitConfig, optional
    force : bool
        Overwrite existing outputs.
    write_keras : bool
        Also write the Keras model (for retraining).
    progress : callable, optional
        Per-epoch progress of the fit(s).
    evaluation : {"auto", "one-scale-down", "spatial-holdout"}
        How a scene without a reference is scored (:func:`~ssc_edge.train.fit.evaluate_fit`); ``"auto"`` needs no
        second fit on a scene with many more patches than the budget (a full tile).
    score_before_stage : bool
        Also score the fit before the full-resolution stage on the spatial hold-out's windows (the report's
        ``evaluation.before_stage``): a second inference of every window, about 12 s on a full tile; off by default.

    Returns
    -------
    ExportResult

    Raises
    ------
    OutputError
        Before any training, if an output exists (without ``force``) or cannot be written.
    SceneError, SceneReadError
        Unreadable scene, or too small for one training patch one scale down.
    ModelError
        The ONNX model disagrees with Keras beyond :data:`PARITY_TOLERANCE`.
    """
    config = config or FitConfig()
    paths = output_paths(output)
    options = {
        "write_keras": write_keras,
        "progress": progress,
        "evaluation": evaluation,
        "score_before_stage": score_before_stage,
    }
    clock = time.perf_counter()
    with (  # no output may be the scene, even with force; claimed until renamed: a second writer is refused
        output_guard(written_paths(paths, write_keras=write_keras), inputs=[scene], force=force),
        opened_scene(scene) as (scene_obj, sha, name),
    ):
        return _fit_and_export(scene_obj, sha, name, scene, paths, config, clock, **options)


@contextlib.contextmanager
def opened_scene(scene: Path | Scene | int | None) -> Iterator[tuple[Any, str, str]]:
    """``(scene to fit, its identity, its name)`` for :func:`fit_and_export`'s ``scene`` argument.

    None or an int: the demo scene (no identity); a :class:`Scene` as it is; a path opened once
    (:func:`~ssc_edge.io.sources.open_band_source`; closed on exit): rasters read window by window, a ``.mat`` or
    ``.npz`` (small, may carry a reference) in memory.
    """
    if scene is None or isinstance(scene, int):
        demo = demo_scene() if scene is None else demo_scene(size=scene)
        yield demo, "", demo.name
    elif isinstance(scene, Scene):
        path = scene.source  # None for a generated scene: no identity
        yield scene, (scene_identity(Path(path)) if path is not None and Path(path).exists() else ""), scene.name
    else:
        with open_band_source(Path(scene)) as source:
            yield (source if source.windowed else source.to_scene()), source.identity, source.name


def _fit_and_export(
    scene_obj: Any,
    sha: str,
    scene_name: str,
    scene: Any,
    paths: dict[str, Path],
    config: FitConfig,
    clock: float,
    *,
    write_keras: bool,
    progress: ProgressCallback | None,
    evaluation: str,
    score_before_stage: bool = False,
) -> ExportResult:
    """:func:`fit_and_export` on an opened scene (``scene`` as the caller gave it, for messages)."""
    phases: dict[str, float] = {}
    source = scene_source(scene_obj)
    where = f"{scene}: " if isinstance(scene, (str, Path)) else ""
    has_reference = getattr(scene_obj, "reference", None) is not None
    if hasattr(source, "check_has_data"):  # a band source read window by window: refuse an all no-data band now
        source.check_has_data(FINE_BANDS + COARSE_BANDS)
    check_training_size(source.shape, config.patch, levels=1, where=where)
    if evaluation not in EVALUATIONS:
        raise OptionError(f"--evaluation must be one of {', '.join(EVALUATIONS)}, got {evaluation!r}")
    if not has_reference and evaluation != "spatial-holdout":  # a fit two scales down may follow: fail now if too small
        check_training_size(source.shape, config.patch, levels=2, where=where)
    phases["read"] = time.perf_counter() - clock
    clock = time.perf_counter()
    estimate = None
    if config.protocol == "heldout" and "auto" in (config.degradation, config.registration):
        estimate = estimate_scene_registration(source)  # a bounded central crop, read through the source
        for line in estimate.lines():
            logger.info("registration: %s", line)
    pair = pair_model_for(source, config, estimate=estimate)
    phases["estimate"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if config.protocol == "paper":
        fit = fit_model(*training_data(scene_obj, config), config, progress=progress)
    else:
        # the fit before the stage, when asked, is scored on the spatial hold-out's windows (Evaluation.before_stage)
        fit = fit_scene(source, config, progress=progress, pair=pair, keep_before_stage=score_before_stage)
    phases["fit"] = time.perf_counter() - clock
    if fit.stage is not None:
        phases["stage"] = fit.stage["seconds"]
    clock = time.perf_counter()
    evaluation = evaluate_fit(scene_obj, fit, progress=progress, pair=pair, evaluation=evaluation)
    phases["evaluate"] = time.perf_counter() - clock
    clock = time.perf_counter()

    sample, sample_window = layout_sample(source, upsampling=config.upsampling, scale=fit.scale)
    proto, layout, timings, parity = export_onnx(fit.model, sample)
    registration = {k: v.to_dict() for k, v in (("estimate", estimate), ("pair_model", pair)) if v is not None}
    contract = build_contract(
        fit, evaluation, layout=layout, scene_sha256=sha, scene_name=scene_name, registration=registration
    )
    result = ExportResult(paths, fit, evaluation, contract, timings, parity, phases, astuple(sample_window))
    phases["export"] = time.perf_counter() - clock
    clock = time.perf_counter()
    full_resolution = full_resolution_summary(source, fit, pair=pair)  # no-reference indexes, full scale
    phases["full_resolution"] = time.perf_counter() - clock
    summary = report_dict(result) | {"full_resolution": full_resolution}
    gate = scene_obj if isinstance(scene_obj, Scene) else (lambda: central_scene(source, 2 * GATE_SIZE))
    write_model_files(result, proto, summary, gate_scene=gate, write_keras=write_keras)
    return result


def export_onnx(model, sample: np.ndarray) -> tuple[Any, str, dict[str, float], float]:
    """``(proto, layout, timings, parity)``: a fitted Keras model exported in the faster layout, checked.

    Both layouts are exported and timed on ``sample`` ((1, H, W, C) NHWC, normalised DN; :func:`measure_layouts`),
    NCHW kept only when clearly faster (the two measure within noise of each other on this project's CPUs), and
    the kept one compared with Keras (:func:`check_parity`).
    """
    protos = {layout: pad_concat_channels(keras_to_onnx(model, layout=layout)) for layout in ("NHWC", "NCHW")}
    timings = measure_layouts(protos, sample)
    layout = "NCHW" if timings["NCHW"] < (1 - _LAYOUT_MARGIN) * timings["NHWC"] else "NHWC"
    nhwc, nchw, (h, w) = 1e3 * timings["NHWC"], 1e3 * timings["NCHW"], sample.shape[1:3]
    logger.info("onnxruntime: NHWC %.1f ms, NCHW %.1f ms on %dx%d: exporting %s", nhwc, nchw, h, w, layout)
    proto = protos[layout]
    return proto, layout, timings, check_parity(model, proto, sample, layout=layout)


def write_model_files(result: ExportResult, proto, summary: dict, *, gate_scene, write_keras: bool) -> None:
    """Write a fitted model's files (``result.paths``): the ONNX model with ``result.contract`` and the precision
    gate (:func:`_add_precision_gate` on ``gate_scene``) in its metadata, the report ``summary`` as JSON and
    Markdown, and the Keras model when ``write_keras`` (else its path leaves ``result.paths``).

    Every file goes to a temporary file first and all are renamed only once all are written (the ONNX model last,
    so a model file implies its report): a full disk leaves none of them behind.
    """
    paths = result.paths
    for key, value in result.contract.to_metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    start = time.perf_counter()
    _add_precision_gate(proto, gate_scene)
    summary.setdefault("phases_seconds", {})["precision_gate"] = round(time.perf_counter() - start, 2)
    with contextlib.ExitStack() as stack:
        tmp_onnx = stack.enter_context(atomic_output(paths["onnx"]))
        tmp_md = stack.enter_context(atomic_output(paths["markdown"]))
        tmp_json = stack.enter_context(atomic_output(paths["json"]))
        if write_keras:
            tmp_keras = stack.enter_context(atomic_output(paths["keras"]))
            _write(paths["keras"], lambda: result.fit.model.save(tmp_keras))
        _write(paths["json"], lambda: tmp_json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n"))
        _write(paths["markdown"], lambda: tmp_md.write_text(render_markdown(summary)))
        _write(paths["onnx"], lambda: tmp_onnx.write_bytes(proto.SerializeToString()))
    if not write_keras:
        paths.pop("keras")
