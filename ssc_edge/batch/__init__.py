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
    """Sharpen every scene of ``inputs`` into ``out_dir``; see :func:`ssc_edge.batch.local.run_batch`.

    Parameters
    ----------
    engine : {"local", "ray"}
        ``local``: a process pool on this machine. ``ray``: Ray actors and tasks
        (:func:`ssc_edge.batch.ray_engine.run_batch`).
    ray_address : str, optional
        Address of an existing Ray cluster (engine ``ray`` only; default: a local Ray).
    retries : int, optional
        Times Ray runs a scene again after its worker died (engine ``ray`` only; default 2).

    Raises
    ------
    OptionError
        An unknown engine, Ray options without engine ``ray``, engine ``ray`` without Ray
        installed, and everything :func:`ssc_edge.batch.local.run_batch` refuses.
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
