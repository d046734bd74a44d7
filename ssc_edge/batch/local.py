"""The local batch engine: every scene of a batch on a process pool of this machine.

Per scene a worker reads the scene, fits a model on it (mode ``fit-and-infer``, TensorFlow imported
only then) or uses the one given model (mode ``infer``, onnxruntime only), sharpens the full scene,
writes the output with :func:`ssc_edge.io.write_result` (atomic) and then its report (atomic, with
the output's sha256). The parent rewrites the batch manifest atomically after every scene, so a
kill loses no finished scene and leaves no half-written file. A rerun skips every scene whose
report says done and whose output still has the reported checksum, and retries the others.

Several runs may share one OUTDIR at once: a worker claims each scene before it starts
(:func:`ssc_edge.io.output.claim_output`), a scene another live run holds is skipped and waited for at the
end (taken over if that run dies first), and every run merges its records into the manifest
under a lock (:func:`ssc_edge.batch.manifest.update_manifest`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from ..bands import COARSE_BANDS
from ..errors import OptionError
from ..io.output import atomic_output, check_output_folder, claim_holder, claim_output, claim_path
from ..io.results import RESULT_DTYPES
from ..progress import ProgressCallback, report
from ..scene import Scene
from .manifest import (
    MANIFEST_NAME,
    OUTPUT_FORMATS,
    SceneJob,
    collect_scenes,
    model_sha256,
    plan_jobs,
    read_json,
    sha256_file,
    source_signature,
    update_manifest,
)

__all__ = [
    "MODES",
    "WORKER_DIED",
    "BatchConfig",
    "BatchResult",
    "SceneExecutor",
    "check_models",
    "failed_record",
    "process_scene",
    "run_batch",
    "run_jobs",
    "worker_sharpener",
]

logger = logging.getLogger(__name__)

#: Batch modes: fit a model per scene, or run one given model on every scene.
MODES = ("fit-and-infer", "infer")


@dataclass(frozen=True)
class BatchConfig:
    """Options of a batch.

    Attributes
    ----------
    mode : {"fit-and-infer", "infer"}
        ``fit-and-infer`` fits SSC-CNN on each scene (zero-shot) and keeps the model in
        ``OUTDIR/models/NAME.onnx``; ``infer`` runs ``model`` on every scene.
    model : Path, optional
        The ONNX model of mode ``infer``.
    workers : int
        Worker processes; each runs one scene at a time.
    output_format : {"tif", "npz", "mat"}
        Format of the sharpened images.
    dtype : {"float32", "uint16"}
        Sample type of the sharpened images (DN).
    epochs : int, optional
        Training epochs of mode ``fit-and-infer`` (default: the trainer's).
    fit_options : mapping, optional
        Further :class:`ssc_edge.train.FitConfig` fields for mode ``fit-and-infer`` (JSON form).
    provider : str, optional
        onnxruntime execution provider of the sharpener (default: the runtime's choice).
    tile : int, optional
        Tile side of the sharpener, 10 m pixels (default: the runtime's).
    in_process : bool
        Run the scenes one after another in this process instead of in worker processes (for
        debugging and tests). No isolation: a crash in native code (or the out-of-memory killer)
        then stops the batch, although every scene finished before is kept. Engine ``local`` only.
    threads : int, optional
        onnxruntime intra-op threads per worker (default: this machine's cores shared out between
        the workers; the Ray engine sets the CPUs Ray gives each worker).
    split : int
        Row bands per scene (mode ``infer``, engine ``ray``): each scene's tile plan is cut into
        up to ``split`` bands of whole tile rows, sharpened by different workers with the model's
        halo and stitched (:mod:`ssc_edge.runtime.split`); the result equals the one-worker result.
        1 (default): each scene on one worker.
    cog : bool
        ``tif`` outputs are Cloud-Optimized GeoTIFFs (:mod:`ssc_edge.io.cog`); False: plain tiled GeoTIFFs.
    model_60m : Path, optional
        Mode ``infer``: a 60 m model (``NAME_60m.onnx`` from ``fit-and-export --bands all``) run on the
        same tiles as ``model`` (:class:`~ssc_edge.runtime.product.CombinedSharpener`), adding B01 and
        B09 after the six 20 m bands; as ``ssc-edge infer --model-60m``. Not with ``split`` > 1.
    wait : float, optional
        Seconds this run waits, once it has nothing else to do, for scenes another live run holds
        (:func:`ssc_edge.io.output.claim_output`); None (default): until they are released. Scenes still held
        then stay ``pending`` with ``claimed_by`` in the manifest (a hung or stopped other run).
    with_fine : bool
        Write the complete 10 m product: the sharpened bands and the four 10 m bands as read (0 DN
        no-data), in canonical band order (:func:`ssc_edge.runtime.stream.output_band_names`): 10 bands,
        or 12 (B01..B12 without B10) with ``model_60m``; as ``ssc-edge infer --with-fine``.
    """

    mode: str = "infer"
    model: Path | None = None
    workers: int = 1
    output_format: str = "tif"
    dtype: str = "float32"
    epochs: int | None = None
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    provider: str | None = None
    tile: int | None = None
    in_process: bool = False
    threads: int | None = None
    split: int = 1
    precision: str | None = None
    cog: bool = True
    model_60m: Path | None = None
    with_fine: bool = False
    wait: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.mode == "infer" and self.model is None:
            raise OptionError("mode infer needs a model (--model MODEL.onnx)")
        if self.mode == "infer" and not Path(self.model).is_file():
            raise OptionError(f"{self.model}: no such model file")
        if self.mode == "fit-and-infer" and self.model is not None:
            raise OptionError("mode fit-and-infer fits one model per scene; drop --model or use --mode infer")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise OptionError(f"workers must be a positive integer, got {self.workers!r}")
        if self.output_format not in OUTPUT_FORMATS:
            choices = ", ".join(OUTPUT_FORMATS)
            raise OptionError(f"unknown output format {self.output_format!r}; choose one of {choices}")
        if self.dtype not in RESULT_DTYPES:
            raise OptionError(f"unknown output dtype {self.dtype!r}; choose one of {', '.join(RESULT_DTYPES)}")
        if self.epochs is not None and self.epochs < 1:
            raise OptionError(f"epochs must be positive, got {self.epochs}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise OptionError(f"threads must be a positive integer, got {self.threads!r}")
        if self.precision is not None and self.precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
            raise OptionError(f"unknown precision {self.precision!r}; choose one of auto, fp32, bf16, fp16, int8")
        if not isinstance(self.split, int) or self.split < 1:
            raise OptionError(f"split must be a positive integer (row bands per scene), got {self.split!r}")
        if self.split > 1 and self.mode != "infer":
            raise OptionError("splitting scenes into row bands needs mode infer (one model for every band)")
        if self.wait is not None and (
            isinstance(self.wait, bool) or not isinstance(self.wait, (int, float)) or not 0 <= self.wait < float("inf")
        ):
            raise OptionError(f"wait must be a number of seconds >= 0, got {self.wait!r}")
        if not isinstance(self.with_fine, bool):
            raise OptionError(f"with_fine must be true or false, got {self.with_fine!r}")
        if self.model_60m is not None:
            if self.mode != "infer":
                raise OptionError("--model-60m needs mode infer and --model (fit-and-infer fits 20 m models only)")
            if not Path(self.model_60m).is_file():
                raise OptionError(f"{self.model_60m}: no such model file")
            if self.split > 1:  # runtime.split cuts the 20 m grid only: no 60 m rows, no combined contract
                raise OptionError("--split cuts scenes for one 20 m model; drop --split or --model-60m")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = str(self.model) if self.model is not None else None
        data["model_60m"] = str(self.model_60m) if self.model_60m is not None else None
        data["fit_options"] = dict(self.fit_options)
        return data


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    manifest : Path
        ``OUTDIR/batch.json``.
    records : list of dict
        One per scene, in input order (the manifest's ``scenes``).
    seconds : float
        Wall time of this run.
    """

    manifest: Path
    records: list[dict[str, Any]]
    seconds: float

    def count(self, status: str) -> int:
        """Scenes with ``status`` (``"done"``, ``"failed"``); ``"skipped"`` counts done-before scenes."""
        if status == "skipped":
            return sum(1 for r in self.records if r.get("skipped"))
        return sum(1 for r in self.records if r.get("status") == status)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_any_scene(path: Path) -> Scene:
    """Any scene :func:`ssc_edge.io.read_scene` reads, and SAFE products."""
    from ..io import read_scene
    from ..io.safe import is_safe_product, read_safe_scene

    if is_safe_product(path):
        return read_safe_scene(path)
    return read_scene(path)


def _threads(config: BatchConfig) -> int | None:
    """onnxruntime threads per worker: ``config.threads``, else the cores shared out (None in-process)."""
    if config.threads is not None:
        return config.threads
    if config.in_process:
        return None
    return max(1, (os.cpu_count() or 1) // config.workers)


@lru_cache(maxsize=2)
def _sharpener(model: str, provider: str | None, tile: int | None, threads: int | None, precision: str | None = None):
    """One onnxruntime session per model per worker process, reused across its scenes.

    ``precision="auto"`` decides from the model's metadata or the gate cache (see
    :func:`prepare_precision_gate`), as :class:`~ssc_edge.runtime.sharpen.Sharpener` does.
    """
    from ..runtime.sharpen import Sharpener

    options: dict[str, Any] = {"threads": threads, "precision": precision}
    if provider is not None:
        options["provider"] = provider
    if tile is not None:
        options["tile"] = tile
    return Sharpener(Path(model), **options)


def worker_sharpener(config: BatchConfig):
    """The :class:`~ssc_edge.runtime.sharpen.Sharpener` of mode ``infer``: one session per model per worker process.

    Built on first use with ``config.model``, ``provider``, ``tile``, ``precision`` and the worker's threads,
    then reused for every scene (and row band) the process runs. With ``config.model_60m``: a
    :class:`~ssc_edge.runtime.product.CombinedSharpener` of the 20 m and the 60 m model (same options, as
    ``infer --model-60m`` builds it), whose outputs are the six 20 m bands, then B01 and B09.
    """
    threads = _threads(config)

    def session(model: Path):
        args = (str(model), config.provider, config.tile, threads)
        return _sharpener(*args) if config.precision is None else _sharpener(*args, config.precision)

    twenty = session(config.model)
    if config.model_60m is None:
        return twenty
    from ..runtime.product import CombinedSharpener

    return CombinedSharpener([twenty, session(config.model_60m)])


def check_models(config: BatchConfig) -> None:
    """Mode ``infer``: each model in its place, before any scene starts (as ``infer`` checks them).

    ``config.model`` must not be a 60 m model and ``config.model_60m`` must be one
    (:func:`ssc_edge.runtime.session.check_model_kind`). Without ``model_60m``, a model whose metadata
    cannot be read is left to each scene to report (as before); with it, both are read here.

    Raises
    ------
    ModelError
        One line naming the misplaced (or, with ``model_60m``, unreadable) model file.
    """
    if config.mode != "infer":
        return
    from ..runtime.session import check_model_kind, read_model_contract

    if config.model_60m is None:
        contract = _model_contract(str(config.model))
        if contract is not None:
            check_model_kind(contract, ratio=2, source=config.model)
        return
    check_model_kind(read_model_contract(Path(config.model)), ratio=2, source=config.model)
    check_model_kind(read_model_contract(Path(config.model_60m)), ratio=6, source=config.model_60m)


def prepare_precision_gate(model: Path, scene: Scene | Callable[[], Scene], config: BatchConfig) -> None:
    """For ``precision="auto"``: measure and cache the model's bf16 loss on this scene if it is needed and unknown.

    Does nothing when the machine does not run bf16 natively, or the model's metadata or the cache already
    has the verdict (:func:`ssc_edge.runtime.precision.find_verdict`), so the sharpener built next decides
    from it.
    """
    if config.precision != "auto":
        return
    from ..runtime.openvino_backend import openvino_available
    from ..runtime.precision import bf16_provider, detected_flags, find_verdict
    from ..runtime.providers import available_providers
    from ..runtime.session import load_model

    available = available_providers()
    where, _ = bf16_provider(config.provider or "auto", available, openvino=openvino_available() or
                             "openvino" in available, flags=detected_flags())  # fmt: skip
    if not where:
        return
    probe = load_model(model, provider="cpu", threads=1, optimization="disabled")
    if probe.contract.precision == "fp32":
        scene = scene() if callable(scene) else scene  # a streamed scene: its central crop, read only now
        find_verdict(model, probe.gate, "bf16", where, scene=scene, contract=probe.contract,
                     tile=config.tile or 512, threads=_threads(config))  # fmt: skip


@lru_cache(maxsize=2)
def _model_contract(model: str):
    """The contract in a model's metadata, or None if it cannot be read (sharpening then reports why)."""
    try:
        from ..runtime.providers import make_session
        from ..runtime.session import _read_contract

        session, _ = make_session(Path(model), provider="cpu", threads=1, optimization="disabled")
        return _read_contract(session, model)
    except Exception:  # the model's real problem is reported by the sharpening step
        logger.debug("cannot read the contract of %s", model, exc_info=True)
        return None


def scene_warning(job: SceneJob, config: BatchConfig) -> str | None:
    """Mode ``infer``: the warning line when the scene is not the one ``config.model`` (or ``config.model_60m``)
    was fitted on; one line per such model."""
    if config.mode != "infer" or config.model is None:
        return None
    warnings = []
    for model in (config.model, config.model_60m):
        contract = _model_contract(str(model)) if model is not None else None
        if contract is not None:
            from ..io.sources import scene_identity
            from ..runtime.infer import scene_mismatch

            warning = scene_mismatch(contract, scene_identity(job.source), job.source, model=model)
            if warning is not None:
                warnings.append(warning)
    return "\n".join(warnings) or None


def _model_degradation(model: Path, sharpen: Callable) -> Any:
    """The degradation a model was fitted with (its metadata), for the full-resolution indexes.

    Taken from the sharpener's contract when ``sharpen`` is a :class:`Sharpener` method, else read from
    the model file; ``"mtf"`` (the sensor model) when neither says.
    """
    from ..errors import ModelError
    from ..quality import model_degradation
    from ..runtime.bench import _read_contract

    owner = getattr(sharpen, "__self__", None)
    owner = getattr(owner, "sharpeners", (owner,))[0]  # a CombinedSharpener: its first, the 20 m model
    contract = getattr(owner, "contract", None)
    if contract is None:
        try:
            contract = _read_contract(Path(model))
        except ModelError:
            logger.debug("%s: no metadata to read the degradation from; using mtf", model)
            return "mtf"
    return model_degradation(contract.training, getattr(contract, "registration", None))


def _consistency(image: np.ndarray, scene: Scene, degradation: Any = "mtf") -> dict[str, Any]:
    """Wald's consistency SRE (dB, the sharpened bands degraded back to 20 m) and every no-reference index
    of :mod:`ssc_edge.quality` (under ``full_resolution``), with the model's degradation."""
    from ..errors import SceneError
    from ..quality import full_resolution_quality

    try:
        quality = full_resolution_quality(image, scene.fine(), scene.coarse(), degradation=degradation)
    except SceneError as exc:  # smaller than the quality windows: consistency SRE only
        from ..metrics import signal_to_reconstruction_error
        from ..quality import degradation_function

        sre = signal_to_reconstruction_error(scene.coarse(), degradation_function(degradation)(image))
        return {"consistency_sre_db": dict(zip(COARSE_BANDS, map(float, sre), strict=True)),
                "mean_consistency_sre_db": float(np.mean(sre)), "full_resolution": None,
                "full_resolution_skipped": str(exc)}  # fmt: skip
    sre = quality.consistency_sre
    return {"consistency_sre_db": dict(zip(COARSE_BANDS, map(float, sre), strict=True)),
            "mean_consistency_sre_db": quality.consistency_mean_sre, "full_resolution": quality.to_dict()}  # fmt: skip


def _gate_scene(path: Path, *, with_60m: bool = False) -> Scene:
    """The central crop of a streamed scene that the precision gate measures on (read only when it measures);
    ``with_60m``: read with B01 and B09, for the 60 m model's gate."""
    from ..runtime.infer import _source_gate_scene

    return _source_gate_scene(Path(path), with_60m=with_60m)


def _twenty_metre_bands(image: np.ndarray, output_bands: tuple[str, ...]) -> np.ndarray:
    """The six sharpened 20 m bands (``COARSE_BANDS`` order) of a sharpener's output, for the quality indexes."""
    if tuple(output_bands[: len(COARSE_BANDS)]) == COARSE_BANDS:
        return image[..., : len(COARSE_BANDS)]
    return image  # a stand-in or another model: scored as it is (its own error if it cannot be)


def _band_names(output_bands: tuple[str, ...], *, with_fine: bool) -> tuple[str, ...]:
    """The output's bands in file order: :func:`ssc_edge.runtime.stream.output_band_names` (imported only
    with ``with_fine``, so that the in-memory path runs with any ``sharpen`` and no streaming code)."""
    if not with_fine:
        return tuple(output_bands)
    from ..runtime.stream import output_band_names

    return output_band_names(output_bands, with_fine=True)


def _stream_scene(sharpener: Any, job: SceneJob, config: BatchConfig) -> tuple[tuple[int, int], dict[str, Any]]:
    """Sharpen a band-raster or SAFE scene into a GeoTIFF window by window (as ``infer`` does), in memory
    bounded by the tile and the scene width; the no-reference indexes come from the same pass, on evenly
    spaced strips of a large scene (:class:`ssc_edge.quality.QualityHook`)."""
    from ..runtime.infer import _quality_hook
    from ..runtime.stream import sharpen_stream

    # with a 60 m model too, the indexes are the 20 m model's: the first six bands of each core
    hook = _quality_hook(getattr(sharpener, "sharpeners", (sharpener,))[0].contract)
    on_core = hook
    if hook is not None and tuple(sharpener.contract.output_bands) != COARSE_BANDS:

        def on_core(core, values, read_band, shape):
            hook(core, _twenty_metre_bands(values, sharpener.contract.output_bands), read_band, shape)

    # sharpen_stream opens the source with a bounded GDAL cache
    streamed = sharpen_stream(sharpener, Path(job.source), job.output, dtype=config.dtype, with_fine=config.with_fine,
                              force=True, on_core=on_core, cog=config.cog)  # fmt: skip
    quality = hook.result() if hook is not None else None
    if quality is None:
        why = getattr(hook, "skipped", None) or "the model does not output the six 20 m bands"
        return streamed.shape, {"full_resolution": None, "full_resolution_skipped": why}
    return streamed.shape, {
        "consistency_sre_db": dict(zip(COARSE_BANDS, map(float, quality.consistency_sre), strict=True)),
        "mean_consistency_sre_db": quality.consistency_mean_sre,
        "full_resolution": quality.to_dict(),
    }


def _fit(scene: Scene | Path, job: SceneJob, config: BatchConfig) -> tuple[Path, dict[str, Any]]:
    """Fit and export a model for one scene (TensorFlow is imported here only); a path is fitted window by
    window (:func:`ssc_edge.train.fit_and_export`), never read whole."""
    from ..train import FitConfig, fit_and_export

    options = dict(config.fit_options)
    if config.epochs is not None:
        options["epochs"] = config.epochs
    model_path = job.output.parent / "models" / f"{job.output.stem}.onnx"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    result = fit_and_export(scene, model_path, FitConfig.from_dict(options), force=True, write_keras=False)
    evaluation = result.evaluation
    metrics = {
        "fit_kind": evaluation.kind,
        "fit_mean_sre_db": float(evaluation.model.mean_sre),
        "bicubic_mean_sre_db": float(evaluation.bicubic.mean_sre),
        "best_epoch": result.fit.best_epoch,
    }
    return model_path, metrics


def process_scene(
    job: SceneJob, config: BatchConfig, *, sharpen: Callable[[Scene], np.ndarray] | None = None
) -> dict[str, Any]:
    """Claim one scene of a batch, then sharpen it and write its output and report; never raises for a bad scene.

    The scene's claim (:func:`ssc_edge.io.output.claim_output`) is held from before the scene starts until its
    output and report are renamed into place, so two runs on one OUTDIR never sharpen a scene twice.
    Holding it, this process removes the temporary files a killed writer of this scene left (no live
    writer can own them), and first checks again whether another run finished the scene meanwhile.

    Parameters
    ----------
    job : SceneJob
    config : BatchConfig
    sharpen : callable, optional
        ``sharpen(scene) -> (H, W, 6) float32 DN`` in mode ``infer`` instead of this worker's
        sharpener (the Ray engine passes one that shares the scene out in row bands).

    Returns
    -------
    dict
        The scene's record (see :func:`_sharpen_scene`); ``status`` ``"busy"`` (with ``claimed_by``:
        ``pid``, ``host``, ``since``) when another live process holds the claim; the report of a
        scene another run finished meanwhile, with ``skipped`` and ``done_by_other_run`` true.
    """
    path = claim_path(job.output)
    try:
        claim = claim_output(path)
    except OSError as exc:  # OutputError: a planted link or FIFO, never written through
        why = str(exc) if exc.strerror is None else f"{path}: {exc.strerror}"
        return failed_record(job, config, f"cannot claim the scene: {why}")
    if claim is None:
        return {**job.to_dict(), "mode": config.mode, "status": "busy", "claimed_by": claim_holder(path)}
    with claim:
        previous = _completed_record(job, config, *_model_hashes(config))
        if previous is not None:
            return {**previous, "skipped": True, "done_by_other_run": True}
        _remove_leftovers(job)
        return _sharpen_scene(job, config, sharpen=sharpen)


def _sharpen_scene(
    job: SceneJob, config: BatchConfig, *, sharpen: Callable[[Scene], np.ndarray] | None = None
) -> dict[str, Any]:
    """Sharpen one (claimed) scene of a batch and write its output and report; never raises for a bad scene.

    Parameters
    ----------
    job : SceneJob
    config : BatchConfig
    sharpen : callable, optional
        ``sharpen(scene) -> (H, W, 6) float32 DN`` in mode ``infer`` instead of this worker's
        sharpener (the Ray engine passes one that shares the scene out in row bands).

    Returns
    -------
    dict
        The scene's record: ``status`` ``"done"`` (with ``output_sha256``, ``seconds``, ``metrics``,
        ``shape`` (H, W) of the 10 m grid, ``band_names`` of the output in file order, ``model`` and
        ``model_sha256``, and ``model_60m`` and ``model_60m_sha256`` with a 60 m model) or ``"failed"``
        (with ``error``).
    """
    from ..io import write_result

    record: dict[str, Any] = {**job.to_dict(), "mode": config.mode, "started": _now(), "pid": os.getpid(),
                              "source_signature": source_signature(job.source)}  # fmt: skip
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    try:
        tick = time.perf_counter()
        from ..io.sources import streams

        # a missing scene is not streamed: the reader's own one-line error below
        streamed = sharpen is None and Path(job.source).exists() and streams(job.source, job.output)
        scene = None if streamed else _read_any_scene(job.source)  # a streamed scene is never read whole
        gate_scene = (lambda: _gate_scene(job.source)) if streamed else scene
        seconds["read"] = time.perf_counter() - tick
        warning = scene_warning(job, config)
        if warning is not None:
            record["warning"] = warning
        metrics: dict[str, Any] = {}
        sharpener = None  # None: ``sharpen`` was given (row bands), whose outputs are the 20 m model's
        if config.mode == "fit-and-infer":
            tick = time.perf_counter()
            model, metrics = _fit(job.source if streamed else scene, job, config)
            seconds["fit"] = time.perf_counter() - tick
            prepare_precision_gate(model, gate_scene, config)
            sharpener = _sharpener.__wrapped__(
                str(model), config.provider, config.tile, _threads(config), config.precision
            )
            sharpen = sharpener.sharpen
            record["precision"] = getattr(sharpener, "precision", None)
        else:
            model = Path(config.model)
            if sharpen is None:
                prepare_precision_gate(model, gate_scene, config)
                if config.model_60m is not None:  # its own ratio-6 gate, on a crop read with B01 and B09
                    gate_60m = (lambda: _gate_scene(job.source, with_60m=True)) if streamed else scene
                    prepare_precision_gate(Path(config.model_60m), gate_60m, config)
                sharpener = worker_sharpener(config)
                sharpen = sharpener.sharpen
                record["precision"] = getattr(sharpener, "precision", None)  # None: a stand-in without one
        record["model"] = str(model)
        record["model_sha256"] = model_sha256(model)
        if config.model_60m is not None:
            record["model_60m"] = str(config.model_60m)
            record["model_60m_sha256"] = model_sha256(config.model_60m)
        contract = getattr(sharpener, "contract", None)
        output_bands = tuple(contract.output_bands) if contract is not None else COARSE_BANDS
        names = _band_names(output_bands, with_fine=config.with_fine)
        record.update(with_fine=config.with_fine, band_names=list(names))
        tick = time.perf_counter()
        if streamed:
            shape, quality = _stream_scene(sharpener, job, config)
            seconds["stream"] = time.perf_counter() - tick  # read, network and write overlapped
            metrics.update(quality)
        else:
            image = sharpen(scene)
            seconds["sharpen"] = time.perf_counter() - tick
            twenty = _twenty_metre_bands(image, output_bands)
            metrics.update(_consistency(twenty, scene, _model_degradation(model, sharpen)))
            tick = time.perf_counter()
            product = image
            if tuple(names) != tuple(output_bands):  # imported only then: a stand-in ``sharpen`` needs no runtime
                from ..runtime.infer import memory_product

                product = memory_product(image, output_bands, names, scene)
            write_result(job.output, product, band_names=names, georef=scene.georef, dtype=config.dtype, force=True,
                         cog=config.cog)  # fmt: skip
            seconds["write"] = time.perf_counter() - tick
            shape = scene.shape
        seconds["total"] = time.perf_counter() - start
        record.update(status="done", shape=list(shape), seconds=seconds, metrics=metrics, error=None,
                      output_sha256=sha256_file(job.output), finished=_now())  # fmt: skip
        with atomic_output(job.report) as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except Exception as exc:  # one bad scene never stops the batch; the error is recorded
        seconds["total"] = time.perf_counter() - start
        record.update(status="failed", seconds=seconds, error=f"{type(exc).__name__}: {exc}", finished=_now())
        logger.debug("scene %s failed", job.name, exc_info=True)
    return record


def _model_hashes(config: BatchConfig) -> tuple[str | None, str | None]:
    """sha256 of ``config.model`` and of ``config.model_60m`` in mode ``infer`` (None where there is none)."""
    if config.mode != "infer":
        return None, None
    sixty = model_sha256(config.model_60m) if config.model_60m is not None else None
    return model_sha256(config.model), sixty


def _completed_record(
    job: SceneJob, config: BatchConfig, model_sha: str | None, model_60m_sha: str | None = None
) -> dict[str, Any] | None:
    """The report of a scene finished by an earlier run, if its output is intact and still current.

    Current: same mode, same model (``model_sha``) and the same 60 m model or none (``model_60m_sha``),
    the same ``with_fine``, the same source signature, and an output with the reported checksum.
    """
    try:
        previous = read_json(job.report)
    except (OSError, ValueError):
        return None
    if not isinstance(previous, dict) or previous.get("status") != "done" or previous.get("mode") != config.mode:
        return None
    if model_sha is not None and previous.get("model_sha256") != model_sha:
        return None
    if previous.get("model_60m_sha256") != model_60m_sha or bool(previous.get("with_fine")) != config.with_fine:
        return None
    if previous.get("source_signature") != source_signature(job.source) or not job.output.is_file():
        return None
    if sha256_file(job.output) != previous.get("output_sha256"):
        logger.warning("%s: output checksum differs from its report; sharpening again", job.output)
        return None
    return previous


def _remove_leftovers(job: SceneJob) -> None:
    """Delete temporary files a killed worker left beside the output or report (never the files themselves).

    Call it only holding the scene's claim: then no live process writes these files (another run's
    temporary files of the scenes it holds are left alone).
    """
    for target in (job.output, job.report):
        for leftover in target.parent.glob(f".{target.name}.*"):
            leftover.unlink(missing_ok=True)


def failed_record(job: SceneJob, config: BatchConfig, error: str) -> dict[str, Any]:
    """The record of a scene whose worker died before it could record anything."""
    return {**job.to_dict(), "mode": config.mode, "status": "failed", "error": error, "finished": _now()}


#: The error of a scene whose worker process died while running it.
WORKER_DIED = "worker process died (killed or out of memory)"


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit when the batch process dies (a killed batch leaves no orphan workers).

    A worker stopped this way may leave a temporary file beside an output; the next run removes it.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="ssc-edge-parent-watch", daemon=True).start()


def _pool(workers: int, context: Any) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_exit_with_parent,
                               initargs=(os.getpid(),))  # fmt: skip


def _run_alone(job: SceneJob, config: BatchConfig, context: Any) -> dict[str, Any]:
    """Run one scene in a fresh single-worker pool; a worker death there is the scene's own."""
    with _pool(1, context) as pool:
        try:
            return pool.submit(process_scene, job, config).result()
        except BrokenProcessPool:
            return failed_record(job, config, WORKER_DIED)


def _run_pool(jobs: list[SceneJob], config: BatchConfig, on_record: Callable[[dict[str, Any]], None]) -> None:
    """Run ``jobs`` on ``config.workers`` spawned processes, at most one scene in flight per worker.

    A worker that dies (killed, out of memory) breaks the pool: the scenes then in flight are run
    again one at a time, so only the scene that kills its worker again is failed, and the remaining
    scenes go to a fresh pool.
    """
    remaining = deque(jobs)
    context = get_context("spawn")  # no fork: onnxruntime and TensorFlow threads do not survive it
    while remaining:
        suspects: list[SceneJob] = []
        with _pool(config.workers, context) as pool:
            inflight: dict[Any, SceneJob] = {}
            while inflight or (remaining and not suspects):
                while remaining and not suspects and len(inflight) < config.workers:
                    job = remaining.popleft()
                    inflight[pool.submit(process_scene, job, config)] = job
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = inflight.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        suspects.append(job)
                        continue
                    on_record(record)
        for job in suspects:
            logger.warning("%s: a worker died while this scene ran; running it again alone", job.source)
            on_record(_run_alone(job, config, context))


#: Runs scenes and hands each scene's record to ``on_record`` as soon as it is final:
#: ``execute(jobs, on_record)``. The local engine's is a process pool; the Ray engine's, Ray actors.
SceneExecutor = Callable[[list[SceneJob], Callable[[dict[str, Any]], None]], None]


def run_batch(
    inputs: Iterable[Path],
    out_dir: Path,
    config: BatchConfig,
    *,
    progress: ProgressCallback | None = None,
) -> BatchResult:
    """Sharpen every scene of ``inputs`` into ``out_dir`` on a local process pool; resumable.

    Parameters
    ----------
    inputs : iterable of Path
        Scene files, SAFE products, folders of scenes, CSV/JSON scene lists
        (see :mod:`ssc_edge.batch.manifest`).
    out_dir : Path
        Output folder (created if missing). Holds ``NAME_sharpened.FORMAT`` (the (H, W, B) DN image: bands
        ``COARSE_BANDS``, then B01 B09 with ``config.model_60m``, or every band in canonical order with
        ``config.with_fine``; the record's ``band_names``) and ``NAME_sharpened.json`` (its report) per scene,
        ``models/`` in mode ``fit-and-infer``, and the manifest ``batch.json``.
    config : BatchConfig
    progress : callable, optional
        ``progress(finished, to_run, message)`` after each scene; the message counts done and failed.

    Returns
    -------
    BatchResult
        Failed scenes are recorded there and in the manifest, never raised.

    Raises
    ------
    OptionError
        Before anything runs: a missing input, two scenes with one output, an output escaping
        ``out_dir``, a bad option (``config.split`` > 1 needs the Ray engine).
    ModelError
        Before anything runs: a model in the wrong place (:func:`check_models`).
    OutputError
        ``out_dir`` cannot be created or the manifest cannot be written.
    """
    if config.split > 1:
        raise OptionError("splitting scenes into row bands needs --engine ray")

    def execute(jobs: list[SceneJob], on_record: Callable[[dict[str, Any]], None]) -> None:
        if config.in_process:
            for job in jobs:
                on_record(process_scene(job, config))
        else:
            _run_pool(jobs, config, on_record)

    return run_jobs(inputs, out_dir, config, execute, engine="local", progress=progress)


def run_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    config: BatchConfig,
    execute: SceneExecutor,
    *,
    engine: str,
    engine_info: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> BatchResult:
    """The bookkeeping every engine shares: plan, skip finished scenes, run the rest, keep the manifest.

    Plans the jobs and refuses bad inputs before anything runs, skips scenes an earlier run
    finished (report done, output checksum intact, same source and model), hands the others to
    ``execute`` and merges every record into the manifest (atomically, under its lock). Scenes
    another live run holds (record ``"busy"``) are handed to ``execute`` again once that run releases
    them; :func:`process_scene` then finds them done or, if that run died, sharpens them. Temporary
    files a killed worker left are removed by whoever next holds the scene's claim. See
    :func:`run_batch` for ``inputs``, ``out_dir``, ``config`` and ``progress``.

    Parameters
    ----------
    execute : SceneExecutor
        ``execute(jobs, on_record)``: runs the scenes still to do, calls ``on_record`` once per
        scene with its record (from :func:`process_scene`, or a ``"failed"`` one when its worker
        died). Not called when nothing is left to do; called again for scenes that were busy.
    engine : str
        The manifest's ``engine``.
    engine_info : dict, optional
        Written to the manifest's ``engine_info`` at every save; ``execute`` may fill it in
        (the Ray engine records its cluster there).
    """
    start = time.perf_counter()
    check_models(config)  # a model in the wrong place: one line before anything is planned or written
    out_dir = Path(out_dir)
    jobs = plan_jobs(collect_scenes(inputs), out_dir, output_format=config.output_format,
                     models=(config.model, config.model_60m))  # fmt: skip
    if not jobs:
        raise OptionError("no scenes to process")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            job.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ..errors import OutputError

        raise OutputError(f"{out_dir}: cannot create output folder ({exc.strerror or exc})") from None
    check_output_folder(out_dir)  # exists but cannot be written (read-only mount, permissions): one line, now
    model_sha, model_60m_sha = _model_hashes(config)
    host, started = socket.gethostname(), _now()
    run_id = f"{host}:{os.getpid()}:{started}"
    jobs = [replace(job, run=run_id) for job in jobs]
    records: dict[str, dict[str, Any]] = {}
    to_run: list[SceneJob] = []
    for job in jobs:
        previous = _completed_record(job, config, model_sha, model_60m_sha)
        if previous is not None:
            records[job.name] = {**previous, "skipped": True}
        else:
            records[job.name] = {**job.to_dict(), "status": "pending"}
            to_run.append(job)
    manifest = {"format": "ssc-edge batch manifest", "version": 1, "engine": engine, "config": config.to_dict(),
                "model_sha256": model_sha, "model_60m_sha256": model_60m_sha, "started": started, "finished": None,
                "run": run_id, "pid": os.getpid(), "host": host}  # fmt: skip
    if engine_info is not None:
        manifest["engine_info"] = engine_info

    locked_out = [False]  # another run held the manifest's lock for all of --wait once

    def save(*, final: bool = False) -> Path | None:
        """Merge the records into the manifest, waiting at most ``config.wait`` s for another run's lock (a stopped
        run may hold it): once that wait has run out, the saves until the final one only try; the next save writes
        what one could not, and the final one raises if it cannot."""
        wait = 0 if locked_out[0] and not final else config.wait
        records_now = [records[job.name] for job in jobs]
        saved = update_manifest(out_dir, {**manifest, "updated": _now()}, records_now, wait=wait)
        locked_out[0] = locked_out[0] or saved is None
        if saved is None and final:
            from ..errors import OutputError

            raise OutputError(f"{out_dir / MANIFEST_NAME}: another run held its lock for more than {config.wait:g} s "
                              "(--wait); this run's records are in the scenes' reports")  # fmt: skip
        return saved

    tally = {"done": 0, "failed": 0}
    busy: dict[str, SceneJob] = {}
    by_name = {job.name: job for job in jobs}

    def on_record(record: dict[str, Any]) -> None:
        if record["status"] == "busy":  # another run holds it: pending here, taken up below when released
            busy[record["name"]] = by_name[record["name"]]
            holder = record.get("claimed_by") or {}
            records[record["name"]] = {**records[record["name"]], "claimed_by": holder}
            logger.info("%s: another run is sharpening it (pid %s on %s); waiting for it at the end",
                        record["source"], holder.get("pid", "?"), holder.get("host", "?"))  # fmt: skip
            save()
            return
        records[record["name"]] = record
        tally[record["status"]] += 1
        save()  # and what a worker that died left in OUTDIR goes (ssc_edge.io.output.remove_stale_files)
        if record.get("warning") and not record.get("skipped"):  # the run that sharpened it warned
            logger.warning("%s", record["warning"])
        if record["status"] == "failed":
            logger.warning("%s: failed: %s", record["source"], record["error"])
        by = " (by another run)" if record.get("done_by_other_run") else ""
        report(progress, tally["done"] + tally["failed"], len(to_run),
               f"{record['name']} {record['status']}{by} ({tally['done']} done, {tally['failed']} failed)")  # fmt: skip

    path = save()
    logger.info("batch: %d scenes, %d already done, %d to run on %d worker(s)",
                len(jobs), len(jobs) - len(to_run), len(to_run), config.workers)  # fmt: skip
    if to_run:
        execute(to_run, on_record)
    deadline = None if config.wait is None else time.monotonic() + config.wait
    while busy:  # scenes another run held: wait until it releases them, then take over those it left undone
        released = _wait_for_release(list(busy.values()), deadline=deadline)
        if not released:  # config.wait is over: they stay pending, with the run that holds them
            logger.info("%d scene(s) still held by another run after waiting %g s: left pending (%s)",
                           len(busy), config.wait, ", ".join(sorted(busy)))  # fmt: skip
            break
        for job in released:
            del busy[job.name]
        execute(released, on_record)
    manifest["finished"] = _now()
    path = save(final=True)
    return BatchResult(path, [records[job.name] for job in jobs], time.perf_counter() - start)


#: Seconds between two looks at the claims of scenes another run is sharpening.
CLAIM_POLL_SECONDS = 0.5


def _wait_for_release(jobs: list[SceneJob], *, deadline: float | None = None) -> list[SceneJob]:
    """Wait until another run releases (finishes, or dies holding) the claim of at least one of ``jobs``.

    Returns the jobs whose claims are free now; :func:`process_scene` then finds each done (the other
    run's report) or sharpens it. ``[]`` once ``time.monotonic()`` passes ``deadline`` (None: never).
    """
    while True:
        free = []
        for job in jobs:
            path = claim_path(job.output)
            try:
                claim = claim_output(path, write_holder=False)
            except OSError:  # the scene's own run reports the problem
                claim = None
                free.append(job)
            if claim is not None:
                claim.release()
                free.append(job)
        if free or (deadline is not None and time.monotonic() >= deadline):
            return free
        time.sleep(CLAIM_POLL_SECONDS)
