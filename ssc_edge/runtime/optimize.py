"""Make fp16 and int8 versions of an ssc-edge model, and refuse any that loses quality (needs ``onnx``).

fp16
    Weights and activations in float16, graph input and output kept float32 (``keep_io_types``), with
    ``onnxconverter_common.float16`` when installed, else its copy in ``onnxruntime.transformers.float16``.
int8
    Static quantization (``onnxruntime.quantization.quantize_static``): QDQ, signed int8 weights per output
    channel and activations per tensor, MinMax calibration on non-overlapping tiles of the calibration scene's
    normalised full-scale input (:func:`ssc_edge.wald.full_scale_input`), after ``quant_pre_process``. int8 runs
    fastest on CPUs with VNNI (``avx512_vnni`` / ``avx_vnni``).

The quality gate: ``mean SRE(fp32) - mean SRE(optimized)`` in dB (:mod:`ssc_edge.metrics`, mean over the bands,
no border cut), both models run whole-image on the CPU provider on the central 1024 x 1024 pixels at most,
against the scene's ``reference`` when it has one (full-scale input), else the Wald pair one scale down
(:func:`ssc_edge.wald.training_pair` with the model's own training pair and upsampling; target: the observed
20 m bands), the only honest target a scene without reference has. Another provider's fp16 arithmetic may
round differently: ``ssc-edge bench`` shows the loss beside the speed on the target device. A model that loses
more than ``max_loss_db`` is refused (:class:`QualityGateError`) unless ``force``; the loss and the precision
are written into the new model's :class:`~ssc_edge.contract.ModelContract`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import wald
from ..contract import INPUT_NAME, OUTPUT_NAME, ModelContract
from ..errors import ModelError, OptionError, SscEdgeError
from ..io import atomic_output, check_outputs, read_scene
from ..metrics import signal_to_reconstruction_error
from ..progress import ProgressCallback, report
from ..scene import Scene
from .flops import import_onnx, load_onnx
from .precision import training_pair_model
from .providers import make_session
from .session import ModelFile

__all__ = [
    "PRECISIONS",
    "MAX_LOSS_DB",
    "DependencyError",
    "QualityGateError",
    "OptimizeResult",
    "optimize_model",
    "read_contract",
]

logger = logging.getLogger(__name__)

#: Precisions :func:`optimize_model` makes.
PRECISIONS = ("fp16", "int8")
#: Largest accepted mean-SRE loss against the fp32 model, dB.
MAX_LOSS_DB = 0.1
#: int8 calibration: tile side (10 m pixels) and most tiles, spread evenly over the scene.
CALIBRATION_TILE, CALIBRATION_TILES = 128, 32


class DependencyError(SscEdgeError, ImportError):
    """An optional package that this operation needs is not installed."""


class QualityGateError(OptionError):
    """The optimized model loses more quality than allowed; nothing was written."""


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`optimize_model` measured and wrote.

    Attributes
    ----------
    path : Path or None
        The written model (None when ``out_path`` was None: measured only).
    precision : {"fp16", "int8"}
    quality_loss_db : float
        ``sre_fp32_db - sre_optimized_db``, dB; positive means the optimized model is worse.
    sre_fp32_db, sre_optimized_db : float
        Mean SRE over the six bands against ``target``, dB.
    target : {"reference", "wald-reduced-scale"}
        What the SRE was measured against (see the module docstring).
    scene : str
        Name of the calibration / evaluation scene.
    calibration_tiles : int
        Tiles fed to the int8 calibrator (0 for fp16).
    passed : bool
        ``quality_loss_db <= max_loss_db``.
    seconds : float
        Wall time, s.
    """

    path: Path | None
    precision: str
    quality_loss_db: float
    sre_fp32_db: float
    sre_optimized_db: float
    target: str
    scene: str
    calibration_tiles: int
    passed: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {**asdict(self), "path": None if self.path is None else str(self.path)}


def read_contract(model: Any, *, source: object = "model") -> ModelContract:
    """The :class:`ModelContract` in an ``onnx.ModelProto``'s metadata."""
    return ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, source=source)


def _set_contract(model: Any, contract: ModelContract) -> None:
    """Replace the ssc-edge metadata of ``model`` (other metadata entries are kept)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("ssc_edge.")]
    del model.metadata_props[:]
    for key, value in [*keep, *contract.to_metadata().items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _predict(session, inputs: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Whole-image run: (H, W, 10) DN in, (H, W, 6) DN out, float64."""
    x = (np.asarray(inputs, np.float32) / np.float32(contract.scale))[None]
    if contract.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if contract.layout == "NCHW":
        y = y.transpose(0, 2, 3, 1)
    return y[0].astype(np.float64) * contract.scale


def _mean_sre(session, inputs: np.ndarray, target: np.ndarray, contract: ModelContract) -> float:
    """Mean SRE over the bands of a whole-image run (:func:`_predict`) against ``target``, dB."""
    return float(np.mean(signal_to_reconstruction_error(target, _predict(session, inputs, contract))))


def _evaluation_data(scene: Scene, contract: ModelContract, *, size: int = 1024) -> tuple[np.ndarray, np.ndarray, str]:
    """(inputs DN (h, w, 10), target DN (h, w, 6), target kind) per the module docstring.

    Both are cropped to the central ``size`` x ``size`` pixels at most, so that whole-image inference of the
    two models stays small on a full Sentinel-2 tile.
    """
    if scene.reference is not None:
        inputs, target = wald.full_scale_input(scene, upsampling=contract.upsampling), scene.reference
        kind = "reference"
    else:
        degradation, model = training_pair_model(contract)  # the model's own training pair
        pair = wald.training_pair(scene, degradation=degradation, upsampling=contract.upsampling, model=model)
        inputs, target, kind = pair.inputs, pair.target, "wald-reduced-scale"
    top, left = (max(0, (n - size) // 2) for n in inputs.shape[:2])
    window = (slice(top, top + size), slice(left, left + size))
    return inputs[window], np.asarray(target)[window], kind


def _calibration_tiles(inputs: np.ndarray, contract: ModelContract, tile: int, limit: int) -> list[np.ndarray]:
    """Non-overlapping (1, tile, tile, 10) normalised tiles (layout of the model), at most ``limit``, spread evenly."""
    height, width = inputs.shape[:2]
    size_y, size_x = min(tile, height), min(tile, width)
    corners = [(r, c) for r in range(0, height - size_y + 1, size_y) for c in range(0, width - size_x + 1, size_x)]
    picks = np.unique(np.linspace(0, len(corners) - 1, min(limit, len(corners))).round().astype(int))
    tiles = []
    for i in picks:
        r, c = corners[i]
        x = (inputs[r : r + size_y, c : c + size_x] / np.float32(contract.scale)).astype(np.float32)[None]
        tiles.append(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if contract.layout == "NCHW" else x)
    return tiles


def _convert_fp16(model: Any) -> Any:
    try:
        from onnxconverter_common.float16 import convert_float_to_float16
    except ImportError:
        try:
            from onnxruntime.transformers.float16 import convert_float_to_float16
        except ImportError:
            raise DependencyError(
                "fp16 conversion needs onnxconverter-common (pip install onnxconverter-common) or an onnxruntime "
                "that ships onnxruntime.transformers"
            ) from None
    return convert_float_to_float16(model, keep_io_types=True)


def _quantize_int8(source: Any, target: Path, tiles: list[np.ndarray]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(tiles)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._items, None)
            return None if x is None else {INPUT_NAME: x}

    # ONNX shape inference and onnxruntime's basic graph optimisations first, as onnxruntime recommends
    prepared = target.with_name(f"{target.stem}.prepared.onnx")
    quant_pre_process(source, str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )


def _scene(calibration_scene: Path | Scene | None) -> Scene:
    if isinstance(calibration_scene, Scene):
        return calibration_scene
    if calibration_scene is None:
        from ..demo import demo_scene

        return demo_scene()
    return read_scene(Path(calibration_scene))


def optimize_model(
    model_path: Path | ModelFile,
    *,
    precision: str,
    out_path: Path | None,
    calibration_scene: Path | Scene | None = None,
    force: bool = False,
    max_loss_db: float = MAX_LOSS_DB,
    progress: ProgressCallback | None = None,
) -> OptimizeResult:
    """Convert an fp32 ssc-edge model to fp16 or int8, measure its quality loss, and write it if it passes.

    Parameters
    ----------
    model_path : Path or ModelFile
        An fp32 ssc-edge ONNX model; a :class:`~ssc_edge.runtime.session.ModelFile` is not read again.
    precision : {"fp16", "int8"}
    out_path : Path or None
        Where to write the new model (atomically). None: measure only, write nothing.
    calibration_scene : Path, Scene or None
        Scene whose tiles calibrate int8 and on which the loss is measured (see the module docstring for
        the target). None: the synthetic demo scene (:func:`ssc_edge.demo.demo_scene`), which is a weak
        stand-in for int8 calibration: pass the scene the model was fitted on (:data:`CALIBRATION_TILES` tiles).
    force : bool
        Overwrite ``out_path`` and write the model even if it fails the gate (the loss is still recorded).
    max_loss_db : float
        The gate: largest accepted ``mean SRE(fp32) - mean SRE(optimized)``, dB.
    progress : callable, optional
        Called after each step (convert, measure, write).

    Raises
    ------
    QualityGateError
        The loss exceeds ``max_loss_db`` and ``force`` is false; nothing is written.
    DependencyError
        ``onnx`` (or the fp16 converter) is not installed.
    ModelError
        Not an ssc-edge model, or not an fp32 one.
    OutputError
        ``out_path`` exists (without ``force``) or cannot be written.
    """
    start = time.perf_counter()
    if precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not max_loss_db >= 0:
        raise OptionError(f"max_loss_db must be >= 0 dB, got {max_loss_db!r}")
    opened = model_path if isinstance(model_path, ModelFile) else None
    model_path = opened.path if opened is not None else Path(model_path)
    if out_path is not None:
        (out_path,) = check_outputs([out_path], inputs=[model_path, calibration_scene], force=force)
    onnx = import_onnx(DependencyError, "optimize")
    if opened is None and not model_path.is_file():  # a directory too
        raise ModelError(f"{model_path}: model file not found")
    model = load_onnx(opened.data if opened else model_path, onnx)
    contract = read_contract(model, source=model_path)
    if contract.precision != "fp32":
        raise ModelError(f"{model_path}: model is already {contract.precision}; optimize its fp32 parent")
    scene = _scene(calibration_scene)
    inputs, target, target_kind = _evaluation_data(scene, contract)
    steps = 3
    report(progress, 0, steps, f"converting to {precision}")
    with tempfile.TemporaryDirectory(prefix="ssc-edge-optimize-") as tmp:
        candidate_path = Path(tmp) / f"{precision}.onnx"
        tiles: list[np.ndarray] = []
        if precision == "fp16":
            candidate_path.write_bytes(_convert_fp16(model).SerializeToString())
        else:
            inputs_full = wald.full_scale_input(scene, upsampling=contract.upsampling)
            tiles = _calibration_tiles(inputs_full, contract, CALIBRATION_TILE, CALIBRATION_TILES)
            _quantize_int8(model, candidate_path, tiles)
        report(progress, 1, steps, "measuring the quality loss")
        fp32 = opened.data if opened is not None else str(model_path)
        sre_fp32, sre_opt = (
            _mean_sre(make_session(m, provider="cpu")[0], inputs, target, contract) for m in (fp32, str(candidate_path))
        )
        loss = sre_fp32 - sre_opt
        passed = bool(loss <= max_loss_db)
        logger.info("%s: mean SRE %.3f dB (fp32 %.3f dB) against the %s: loss %.3f dB", precision, sre_opt, sre_fp32,
                    target_kind, loss)  # fmt: skip
        if not passed and not force:
            raise QualityGateError(
                f"{model_path}: {precision} loses {loss:.3f} dB of mean SRE on {scene.name} (limit {max_loss_db} dB); "
                "not written (pass --force to write it anyway)"
            )
        report(progress, 2, steps, "writing")
        if out_path is not None:
            optimized = onnx.load(str(candidate_path))
            _set_contract(optimized, replace(contract, precision=precision, quality_loss_db=round(loss, 4)))
            with atomic_output(out_path) as tmp_out:
                tmp_out.write_bytes(optimized.SerializeToString())
    report(progress, steps, steps, "done")
    return OptimizeResult(
        path=out_path,
        precision=precision,
        quality_loss_db=loss,
        sre_fp32_db=sre_fp32,
        sre_optimized_db=sre_opt,
        target=target_kind,
        scene=scene.name,
        calibration_tiles=len(tiles),
        passed=passed,
        seconds=time.perf_counter() - start,
    )
