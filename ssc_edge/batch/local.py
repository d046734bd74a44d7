"""The local batch engine: every scene of a batch on a process pool of this machine.

Per scene a worker fits a model (mode ``fit-and-infer``, TensorFlow imported only then) or uses the given one
(mode ``infer``), sharpens the scene and writes its output, then its report with the output's sha256, each
atomically; the parent merges the records into the manifest after every scene (:func:`run_jobs`). A rerun
skips every scene whose report says done and whose output still has the reported checksum. Several runs may
share one OUTDIR: a worker claims each scene first (:func:`ssc_edge.io.output.claim_output`), and a scene
another live run holds is waited for at the end, and taken over if that run dies.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bands import COARSE_BANDS
from ..errors import OptionError, OutputError, check_positive
from ..io.output import atomic_output, check_output_folder, claim_holder, claim_output, claim_path
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
    "failed_record",
    "process_scene",
    "run_batch",
    "run_jobs",
    "worker_sharpener",
]

if TYPE_CHECKING:
    from ..io.sources import BandSource
    from ..runtime.options import OutputOptions, RunOptions
    from ..runtime.session import ModelFile
    from ..runtime.sharpen import SharpenerLike

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
        Run the scenes one after another in this process (debugging, tests; engine ``local`` only): a crash in
        native code or the out-of-memory killer then stops the batch (finished scenes are kept).
    threads : int, optional
        onnxruntime threads per worker (default: the cores shared out between the workers; Ray: its CPUs).
    split : int
        Row bands per scene (mode ``infer``, engine ``ray``), sharpened by different workers and stitched
        (:mod:`ssc_edge.runtime.split`); the result equals the one-worker result.
    cog : bool
        ``tif`` outputs are Cloud-Optimized GeoTIFFs (:mod:`ssc_edge.io.cog`); False: plain tiled GeoTIFFs.
    model_60m : Path, optional
        Mode ``infer``: a 60 m model run on the same tiles as ``model``, adding B01 and B09 after the six
        20 m bands, as ``ssc-edge infer --model-60m``; not with ``split`` > 1.
    wait : float, optional
        Seconds to wait at the end for scenes another live run holds; None: until they are released. Scenes
        still held then stay ``pending`` with ``claimed_by`` in the manifest.
    with_fine : bool
        Write the complete 10 m product, as ``ssc-edge infer --with-fine``.
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
        check_positive(self.workers, "workers")
        if self.output_format not in OUTPUT_FORMATS:
            choices = ", ".join(OUTPUT_FORMATS)
            raise OptionError(f"unknown output format {self.output_format!r}; choose one of {choices}")
        if self.epochs is not None:
            check_positive(self.epochs, "epochs")
        self.run_options(), self.output_options()  # provider, precision, threads, tile; dtype, with_fine, cog
        if not isinstance(self.split, int) or self.split < 1:
            raise OptionError(f"split must be a positive integer (row bands per scene), got {self.split!r}")
        if self.split > 1 and self.mode != "infer":
            raise OptionError("splitting scenes into row bands needs mode infer (one model for every band)")
        if self.wait is not None and (
            isinstance(self.wait, bool) or not isinstance(self.wait, (int, float)) or not 0 <= self.wait < float("inf")
        ):
            raise OptionError(f"wait must be a number of seconds >= 0, got {self.wait!r}")
        if self.model_60m is not None:
            if self.mode != "infer":
                raise OptionError("--model-60m needs mode infer and --model (fit-and-infer fits 20 m models only)")
            if not Path(self.model_60m).is_file():
                raise OptionError(f"{self.model_60m}: no such model file")
            if self.split > 1:  # runtime.split cuts the 20 m grid only: no 60 m rows, no combined contract
                raise OptionError("--split cuts scenes for one 20 m model; drop --split or --model-60m")

    def run_options(self) -> RunOptions:
        """How each scene's model(s) run, as ``infer`` takes it; ``threads`` by default this machine's cores shared
        out between the workers (in-process: onnxruntime's choice)."""
        from ..runtime.options import DEFAULT_TILE, RunOptions

        threads = self.threads
        if threads is None and not self.in_process:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
        return RunOptions(self.provider or "auto", self.precision, threads, self.tile or DEFAULT_TILE)

    def output_options(self) -> OutputOptions:
        """What each scene's product is, as ``infer`` takes it; a batch replaces its own outputs."""
        from ..runtime.options import OutputOptions

        return OutputOptions(dtype=self.dtype, with_fine=self.with_fine, cog=self.cog, force=True)

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "fit_options": dict(self.fit_options)}
        for key in ("model", "model_60m"):
            data[key] = str(data[key]) if data[key] is not None else None
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


@lru_cache(maxsize=1)
def _worker_models(model: Path, model_60m: Path | None) -> tuple[ModelFile, ...]:
    """The models of mode ``infer`` read once per worker process (:func:`ssc_edge.runtime.infer.open_models`);
    their sessions stay with them for every scene the worker runs."""
    from ..runtime.infer import open_models

    return open_models(model, model_60m)


def worker_sharpener(config: BatchConfig, source: BandSource | None = None, models: Sequence[ModelFile] = ()):
    """The sharpener of one scene (:func:`ssc_edge.runtime.infer.build_sharpener`), as ``infer`` builds it.

    ``models`` (a model fitted for the scene), else ``config.model`` and ``config.model_60m`` (:func:`_worker_models`);
    ``--precision auto`` measures on ``source`` if it must. With ``config.model_60m``: the 20 m and the 60 m model on
    one plan, the six 20 m bands then B01, B09.
    """
    from ..runtime.infer import build_sharpener

    models = models or _worker_models(config.model, config.model_60m)
    return build_sharpener(models, config.run_options(), source)


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


def process_scene(job: SceneJob, config: BatchConfig, *, sharpen: SharpenerLike | None = None) -> dict[str, Any]:
    """Claim one scene of a batch, then sharpen it and write its output and report; never raises for a bad scene.

    The claim (:func:`ssc_edge.io.output.claim_output`) is held until output and report are in place, so two
    runs never sharpen a scene twice; holding it, a scene another run finished meanwhile is not run again, and
    the temporary files a killed writer of the scene left are removed (no live writer can own them).

    Parameters
    ----------
    job : SceneJob
    config : BatchConfig
    sharpen : SharpenerLike, optional
        Mode ``infer``: the sharpener instead of this worker's (the Ray engine's shares the scene out in row bands).

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


def _sharpen_scene(job: SceneJob, config: BatchConfig, *, sharpen: SharpenerLike | None = None) -> dict[str, Any]:
    """Sharpen one (claimed) scene of a batch and write its output and report; never raises for a bad scene.

    The pipeline ``infer`` runs (:func:`ssc_edge.runtime.infer.sharpen_scene`): the same product, bit for bit.

    Returns
    -------
    dict
        The scene's record: ``status`` ``"done"`` (with ``output_sha256``, ``seconds``, ``metrics``,
        ``shape`` (H, W) of the 10 m grid, ``band_names`` of the output in file order, ``model`` and
        ``model_sha256``, and ``model_60m`` and ``model_60m_sha256`` with a 60 m model, ``precision``, and
        ``warning`` when a model was fitted on another scene) or ``"failed"`` (with ``error``).
    """
    from ..io.sources import open_band_source
    from ..runtime.infer import sharpen_scene

    record: dict[str, Any] = {**job.to_dict(), "mode": config.mode, "started": _now(), "pid": os.getpid(),
                              "source_signature": source_signature(job.source)}  # fmt: skip
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    warnings: list[str] = []
    try:
        with open_band_source(job.source) as source:
            seconds["read"] = time.perf_counter() - start
            metrics: dict[str, Any] = {}
            models: list[ModelFile] = []
            if config.mode == "fit-and-infer":
                from ..runtime.session import open_model

                tick = time.perf_counter()
                model, metrics = _fit(job.source if source.windowed else source.to_scene(), job, config)
                seconds["fit"] = time.perf_counter() - tick
                models.append(open_model(model))
            else:
                model = Path(config.model)
            sharpener = sharpen or worker_sharpener(config, source, models)
            record.update(model=str(model), model_sha256=model_sha256(model), precision=sharpener.precision)
            if config.model_60m is not None:
                record.update(model_60m=str(config.model_60m), model_60m_sha256=model_sha256(config.model_60m))
            result = sharpen_scene(sharpener, source, job.output, out=config.output_options(), warn=warnings.append)
        seconds["stream" if result.streamed else "sharpen"] = result.seconds  # read, network and write overlapped
        metrics.update(_quality_metrics(result))
        seconds["total"] = time.perf_counter() - start
        record.update(status="done", shape=list(result.shape), with_fine=config.with_fine,
                      band_names=list(result.band_names), seconds=seconds, metrics=metrics, error=None,
                      output_sha256=sha256_file(job.output), finished=_now())  # fmt: skip
        if warnings:
            record["warning"] = "\n".join(warnings)
        with atomic_output(job.report) as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except Exception as exc:  # one bad scene never stops the batch; the error is recorded
        seconds["total"] = time.perf_counter() - start
        record.update(status="failed", seconds=seconds, error=f"{type(exc).__name__}: {exc}", finished=_now())
        logger.debug("scene %s failed", job.name, exc_info=True)
    return record


def _quality_metrics(result: Any) -> dict[str, Any]:
    """The record's no-reference indexes (the 20 m model's bands) from the pipeline's result."""
    quality = result.full_resolution
    if quality is None:
        return {"full_resolution": None, "full_resolution_skipped": "the scene is smaller than the quality windows "
                "or the model does not output the six 20 m bands"}  # fmt: skip
    return {"consistency_sre_db": dict(zip(COARSE_BANDS, map(float, quality.consistency_sre), strict=True)),
            "mean_consistency_sre_db": quality.consistency_mean_sre, "full_resolution": quality.to_dict()}  # fmt: skip


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
        previous = read_json(job.report, what="scene report")
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
    """Delete temporary files a killed worker left beside the output or report (only holding the scene's claim:
    then no live process writes them)."""
    for target in (job.output, job.report):
        for leftover in target.parent.glob(f".{target.name}.*"):
            leftover.unlink(missing_ok=True)


def failed_record(job: SceneJob, config: BatchConfig, error: str) -> dict[str, Any]:
    """The record of a scene whose worker died before it could record anything."""
    return {**job.to_dict(), "mode": config.mode, "status": "failed", "error": error, "finished": _now()}


#: The error of a scene whose worker process died while running it.
WORKER_DIED = "worker process died (killed or out of memory)"


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit when the batch process dies (a killed batch leaves no orphan workers; the next
    run removes what they were writing)."""
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
    """:func:`ssc_edge.batch.run_batch` on engine ``local``: the scenes on a process pool of this machine
    (``config.in_process``: one after another in this process)."""
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

    Bad inputs are refused before anything runs; scenes another live run holds (record ``"busy"``) are handed
    to ``execute`` again once it releases them (:func:`process_scene` then finds them done, or sharpens them if
    that run died). See :func:`ssc_edge.batch.run_batch` for ``inputs``, ``out_dir``, ``config`` and ``progress``.

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
    if config.mode == "infer":  # each model read and in its place: one line before anything is planned or written
        from ..runtime.infer import open_models

        open_models(config.model, config.model_60m)
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
            try:
                claim = claim_output(claim_path(job.output), write_holder=False)
            except OSError:  # the scene's own run reports the problem
                free.append(job)
                continue
            if claim is not None:
                claim.release()
                free.append(job)
        if free or (deadline is not None and time.monotonic() >= deadline):
            return free
        time.sleep(CLAIM_POLL_SECONDS)
