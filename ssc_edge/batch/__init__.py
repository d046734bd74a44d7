"""Batch processing: many scenes (files, folders, SAFE products, scene lists) into one output folder.

``run_batch(inputs, out_dir, config, engine="local")`` is the entry point. The ``local`` engine is a
process pool on this machine (:mod:`.local`); the ``ray`` engine runs the same per-scene work as Ray
actors and tasks on a Ray cluster or a local Ray, and can split a scene into row bands across its
workers (:mod:`.ray_engine`, needs the ``distributed`` extra). Both keep the same manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import OptionError
from ..progress import ProgressCallback
from .local import MODES, BatchConfig, BatchResult, process_scene
from .local import run_batch as run_local_batch
from .manifest import MANIFEST_NAME, OUTPUT_FORMATS, SceneJob, collect_scenes, plan_jobs, read_manifest

__all__ = [
    "ENGINES",
    "MANIFEST_NAME",
    "MODES",
    "OUTPUT_FORMATS",
    "BatchConfig",
    "BatchResult",
    "SceneJob",
    "collect_scenes",
    "plan_jobs",
    "process_scene",
    "read_manifest",
    "run_batch",
]

#: Batch engines.
ENGINES = ("local", "ray")


def run_batch(
    inputs: Iterable[Path],
    out_dir: Path,
    config: BatchConfig,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    retries: int | None = None,
    progress: ProgressCallback | None = None,
) -> BatchResult:
    """Sharpen every scene of ``inputs`` into ``out_dir``; resumable.

    Parameters
    ----------
    inputs : iterable of Path
        Scene files, SAFE products, folders of scenes, CSV/JSON scene lists (see :mod:`ssc_edge.batch.manifest`).
    out_dir : Path
        Output folder (created if missing). Holds ``NAME_sharpened.FORMAT`` (the (H, W, B) DN image: bands
        ``COARSE_BANDS``, then B01 B09 with ``config.model_60m``, or every band in canonical order with
        ``config.with_fine``; the record's ``band_names``) and ``NAME_sharpened.json`` (its report) per scene,
        ``models/`` in mode ``fit-and-infer``, and the manifest ``batch.json``.
    config : BatchConfig
        With engine ``ray``, ``config.workers`` is the number of Ray actors (or tasks in flight) and
        ``config.split`` the row bands per scene (engine ``local``: 1).
    engine : {"local", "ray"}
        ``local``: a process pool on this machine (:mod:`.local`). ``ray``: Ray actors and tasks
        (:mod:`.ray_engine`).
    ray_address : str, optional
        Address of an existing Ray cluster (``"auto"``, ``"ray://HOST:10001"``, ``"HOST:6379"``; engine ``ray``
        only). Default: the Ray runtime this process already runs, else a new local Ray with ``max(workers,
        cores)`` CPUs, shut down at the end.
    retries : int, optional
        Times Ray runs a scene or row band again after its worker died (engine ``ray`` only; default 2).
    progress : callable, optional
        ``progress(finished, to_run, message)`` after each scene; the message counts done and failed.

    Returns
    -------
    BatchResult
        Failed scenes are recorded there and in the manifest, never raised. Engine ``ray`` adds ``node`` (IP of
        the Ray node), ``worker_restarted`` (actor runs) and ``row_bands`` (split scenes) to the records.

    Raises
    ------
    OptionError
        Before anything runs: a missing input, two scenes with one output, an output escaping ``out_dir``, a bad
        option; an unknown engine, Ray options without engine ``ray``; engine ``ray`` without Ray installed or
        with ``config.in_process``, a negative ``retries``, a Ray cluster that cannot be reached.
    ModelError
        Before anything runs: a model unreadable or in the wrong place (:func:`ssc_edge.runtime.infer.open_models`).
    OutputError
        ``out_dir`` cannot be created or the manifest cannot be written.
    """
    if engine not in ENGINES:
        raise OptionError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        from .ray_engine import DEFAULT_RETRIES
        from .ray_engine import run_batch as run_ray_batch

        retries = DEFAULT_RETRIES if retries is None else retries
        return run_ray_batch(inputs, out_dir, config, ray_address=ray_address, retries=retries, progress=progress)
    if ray_address is not None:
        raise OptionError("--ray-address needs --engine ray")
    if retries is not None:
        raise OptionError("--retries needs --engine ray")
    return run_local_batch(inputs, out_dir, config, progress=progress)
