"""The Ray batch engine: the local engine's per-scene work as Ray actors and tasks (docs/batch.md).

Ray (the ``distributed`` extra) is imported only here, when the engine runs. The bookkeeping, the per-scene
work and its claims are the local engine's (:func:`~ssc_edge.batch.local.run_jobs`,
:func:`~ssc_edge.batch.local.process_scene`), so Ray runs and local runs can share one OUTDIR; the manifest says
``"engine": "ray"`` and has the cluster under ``engine_info``.

- Mode ``infer``: ``workers`` actors, each holding the model's sessions (both models' with ``model_60m``) for
  all its scenes, one scene in flight per actor, asking for the cluster's CPUs shared out between the workers
  and for a GPU (or an equal share) when Ray reports GPUs.
- With ``config.split > 1``: a coordinating task (no CPU of its own) per scene cuts its tile plan into row bands
  (:mod:`ssc_edge.runtime.split`), has the actors sharpen them and stitches them, bit for bit as one worker.
- Mode ``fit-and-infer``: one Ray task per scene, at most ``workers`` in flight.

A worker that dies (killed, out of memory, lost node) is restarted by Ray and its scene or band run again, up to
``retries`` times; a scene whose worker dies every time is recorded as failed. On a cluster the inputs and
OUTDIR must be on a file system every node mounts at the same path.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..contract import ModelContract
from ..errors import OptionError, check_positive
from ..progress import ProgressCallback
from ..runtime.split import RowBandInput, RowBandSharpener, sharpen_row_band
from .local import WORKER_DIED, BatchConfig, BatchResult, failed_record, process_scene, run_jobs, worker_sharpener
from .manifest import SceneJob

__all__ = ["RAY_MISSING", "DEFAULT_RETRIES", "run_batch"]

logger = logging.getLogger(__name__)

#: The one-line error when Ray is not installed.
RAY_MISSING = "engine ray needs the 'distributed' extra: pip install 'ssc-edge[distributed]'"

#: Times Ray runs a scene (or row band) again after its worker died.
DEFAULT_RETRIES = 2


def _node(ray: ModuleType) -> str:
    return ray.util.get_node_ip_address()


class SceneWorker:
    """A Ray actor (wrapped with ``ray.remote`` at run time): one onnxruntime session for its scenes and bands.

    Parameters
    ----------
    config : BatchConfig
        Mode ``infer``, with ``threads`` set to the CPUs Ray gives the actor.
    """

    def __init__(self, config: BatchConfig) -> None:
        import warnings

        import ray

        self._config = config
        with warnings.catch_warnings():  # Ray 2.60 calls one of its own deprecated APIs here
            warnings.simplefilter("ignore", DeprecationWarning)
            self._restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        self._node = _node(ray)

    def process(self, job: SceneJob) -> dict[str, Any]:
        """:func:`~ssc_edge.batch.local.process_scene` on this actor's session, plus ``node``, ``worker_restarted``."""
        return {**process_scene(job, self._config), "node": self._node, "worker_restarted": self._restarted}

    def sharpen_row_band(self, part: RowBandInput) -> np.ndarray:
        """One row band of a split scene (see :func:`ssc_edge.runtime.split.sharpen_row_band`), (h, W, 6) float32 DN."""
        return sharpen_row_band(worker_sharpener(self._config), part)


def _fit_scene(job: SceneJob, config: BatchConfig) -> dict[str, Any]:
    """Ray task of mode ``fit-and-infer``: :func:`~ssc_edge.batch.local.process_scene`, plus ``node``."""
    import ray

    return {**process_scene(job, config), "node": _node(ray)}


def _split_scene(
    job: SceneJob, config: BatchConfig, actors: list[Any], first: int, contract: ModelContract, tile: int, retries: int
) -> dict[str, Any]:
    """Ray task: one scene in row bands sharpened by ``actors`` (round robin from ``first``), then written."""
    import ray

    bands = {"count": 0}

    def run(parts: list[RowBandInput]) -> Iterable[np.ndarray]:
        bands["count"] = len(parts)
        refs = [actors[(first + k) % len(actors)].sharpen_row_band.remote(p) for k, p in enumerate(parts)]
        try:
            return ray.get(refs)
        except _died_errors(ray) as exc:
            raise RuntimeError(
                f"{WORKER_DIED} while sharpening a row band, {retries} retries ({type(exc).__name__})"
            ) from None
        except ray.exceptions.RayTaskError as exc:  # the band's own error (ModelError...), not Ray's wrapper
            raise (exc.cause or exc) from None

    sharpen = RowBandSharpener(contract, config.model, count=config.split, tile=tile, run=run, provider="ray")
    record = process_scene(job, config, sharpen=sharpen)
    return {**record, "node": _node(ray), "row_bands": bands["count"]}


def _died_errors(ray: ModuleType) -> tuple[type[BaseException], ...]:
    """Ray's errors for work lost with its worker or node (not errors raised by our code)."""
    e = ray.exceptions
    return (e.RayActorError, e.WorkerCrashedError, e.OutOfMemoryError, e.NodeDiedError, e.ObjectLostError)


def _start(ray: ModuleType, address: str | None, workers: int) -> bool:
    """Connect to ``address`` or start a local Ray with ``max(workers, cores)`` CPUs; True if this call started it."""
    if ray.is_initialized():
        logger.info("using the Ray runtime this process already runs")
        return False
    verbose, quiet = logger.isEnabledFor(logging.DEBUG), not logger.isEnabledFor(logging.INFO)
    options: dict[str, Any] = {
        "log_to_driver": not quiet,  # the workers' output
        "logging_level": logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING,  # Ray's own
    }
    if address is None:
        options.update(address="local", num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise OptionError(f"cannot start or reach {where}: {exc}") from None
    return True


def _resources(ray: ModuleType, workers: int) -> tuple[int, float]:
    """CPUs (whole, >= 1) and GPUs (0, a share or 1) for each worker, from what the cluster has."""
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    largest = max((float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=cpus)
    per_cpu = max(1, min(int(cpus // workers), int(largest)))
    if workers * per_cpu > cpus:
        logger.warning("the Ray cluster has %g CPUs for %d workers; some wait until CPUs free up", cpus, workers)
    per_gpu = min(1.0, gpus / workers) if gpus else 0.0
    return per_cpu, per_gpu


def _drive(
    ray: ModuleType,
    jobs: list[SceneJob],
    slots: int,
    submit: Callable[[int, SceneJob], Any],
    on_record: Callable[[dict[str, Any]], None],
    config: BatchConfig,
    retries: int,
) -> None:
    """Keep at most one scene per slot in flight; hand each record over as soon as its scene ends."""
    remaining, free = deque(jobs), deque(range(slots))
    inflight: dict[Any, tuple[int, SceneJob]] = {}
    while remaining or inflight:
        while remaining and free:
            slot, job = free.popleft(), remaining.popleft()
            inflight[submit(slot, job)] = (slot, job)
        (ready,), _ = ray.wait(list(inflight), num_returns=1)
        slot, job = inflight.pop(ready)
        free.append(slot)
        try:
            record = ray.get(ready)
        except _died_errors(ray) as exc:
            logger.debug("%s: %s", job.source, exc)
            record = failed_record(job, config, f"{WORKER_DIED}, {retries} retries ({type(exc).__name__})")
        on_record(record)


def run_batch(
    inputs: Iterable[Path],
    out_dir: Path,
    config: BatchConfig,
    *,
    ray_address: str | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: ProgressCallback | None = None,
) -> BatchResult:
    """:func:`ssc_edge.batch.run_batch` on engine ``ray``: ``config.workers`` Ray actors (or tasks in flight)."""
    try:
        import ray
    except ImportError:
        raise OptionError(RAY_MISSING) from None
    if config.in_process:
        raise OptionError("in_process runs scenes in this process; it is an option of the local engine")
    check_positive(retries, "retries", zero=True)
    layout = None
    if config.split > 1:  # the model's contract (read here, on the CPU) and the workers' tile side, to plan row bands
        from ..runtime.session import open_model

        layout = open_model(Path(config.model)).contract, config.run_options().tile
    info: dict[str, Any] = {"ray_version": ray.__version__, "retries": retries}

    def execute(jobs: list[SceneJob], on_record: Callable[[dict[str, Any]], None]) -> None:
        started = _start(ray, ray_address, config.workers)
        actors: list[Any] = []
        try:
            cpus, gpus = _resources(ray, config.workers)
            info.update(address=ray.get_runtime_context().gcs_address, started_here=started,
                        cpus_per_worker=cpus, gpus_per_worker=gpus)  # fmt: skip
            worker_config = replace(config, threads=config.threads or cpus)
            if config.mode == "fit-and-infer":
                task = ray.remote(_fit_scene).options(num_cpus=cpus, max_retries=retries)
                _drive(ray, jobs, config.workers, lambda slot, job: task.remote(job, worker_config), on_record,
                       config, retries)  # fmt: skip
                return
            actor = ray.remote(SceneWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=-1,
                                                    max_task_retries=retries)  # fmt: skip
            actors = [actor.remote(worker_config) for _ in range(config.workers)]
            if layout is None:
                submit = lambda slot, job: actors[slot].process.remote(job)
            else:
                split = ray.remote(_split_scene).options(num_cpus=0, max_retries=retries)
                counter = iter(range(len(jobs)))
                submit = lambda slot, job: split.remote(job, worker_config, actors, next(counter), *layout,
                                                        retries)  # fmt: skip
            _drive(ray, jobs, config.workers, submit, on_record, config, retries)
        finally:
            for handle in actors:
                ray.kill(handle)
            if started:
                ray.shutdown()

    return run_jobs(inputs, out_dir, config, execute, engine="ray", engine_info=info, progress=progress)
