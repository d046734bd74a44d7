"""Batch inputs and bookkeeping: which scenes, where their outputs go, and the batch manifest.

Each input is a scene file (``.mat``, ``.npz``, GeoTIFF, a SAFE ``.zip``), a SAFE product folder, a band folder
(single-band JP2 or GeoTIFF rasters named by band), a folder of scenes (its direct entries of those kinds,
sorted), or a *scene list*: a ``.csv`` with a ``path`` (and optional ``output``) column, or a ``.json`` list of
paths or ``{"path": ..., "output": ...}`` objects (or ``{"scenes": [...]}``); its paths are relative to the
list's folder, an ``output`` to OUTDIR.

Scene ``NAME`` (the file stem, or the SAFE product name) is written to ``OUTDIR/NAME_sharpened.FORMAT`` with its
report ``NAME_sharpened.json``; no output or report may be an input (another scene, a model), and the products
of an earlier run in OUTDIR are recognised by their reports and not taken for scenes. The manifest
``OUTDIR/batch.json`` lists every scene with its status, timings, metrics, error and output sha256; every run
merges its records into it under a lock (:func:`update_manifest`), so concurrent runs keep each other's records.
A manifest that cannot be read as one is never overwritten: it is kept aside as
``batch.json.damaged-TIMESTAMP`` with one warning, and a fresh one started.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..contract import parse_json
from ..errors import OptionError, OutputError
from ..io.output import (
    atomic_output,
    check_name,
    claim_holder,
    claim_output,
    claim_path,
    input_finder,
    read_small_text,
    same_file,
)
from ..io.sources import _file_sha256 as sha256_file  # SceneReadError, an OSError, when unreadable

__all__ = [
    "MANIFEST_NAME",
    "OUTPUT_FORMATS",
    "SceneJob",
    "collect_scenes",
    "plan_jobs",
    "read_manifest",
    "sha256_file",
    "model_sha256",
    "read_json",
    "source_signature",
    "update_manifest",
]

#: The batch manifest's file name inside OUTDIR.
MANIFEST_NAME = "batch.json"

#: Largest manifest read, bytes (a scene's record is about 2 KiB).
MANIFEST_MAX_BYTES = 256 * 1024 * 1024

#: Largest scene report or scene list read, bytes.
JSON_MAX_BYTES = 16 * 1024 * 1024

logger = logging.getLogger(__name__)

#: Scene statuses that end a scene's run (``pending`` does not).
FINAL_STATUSES = ("done", "failed")

#: Output formats ``write_result`` writes, by suffix.
OUTPUT_FORMATS = ("tif", "npz", "mat")

_SCENE_SUFFIXES = (".mat", ".npz", ".tif", ".tiff", ".zip")
_LIST_SUFFIXES = (".csv", ".json")
_SAFE_METADATA = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")


@dataclass(frozen=True)
class SceneJob:
    """One scene of a batch.

    Attributes
    ----------
    name : str
        Scene name, unique in the batch.
    source : Path
        The scene file or folder (may not exist: the scene then fails with a clear error).
    output : Path
        The sharpened (H, W, 6) image, inside OUTDIR.
    report : Path
        The per-scene report (JSON), beside ``output``.
    run : str, optional
        The batch run this job belongs to (``HOST:PID:STARTED``), recorded in the scene's record
        and report; set by the engine (:func:`dataclasses.replace`), not by :func:`plan_jobs`.
    """

    name: str
    source: Path
    output: Path
    report: Path
    run: str | None = None

    def to_dict(self) -> dict[str, str]:
        data = {"name": self.name, "source": str(self.source), "output": str(self.output), "report": str(self.report)}
        if self.run is not None:
            data["run"] = self.run
        return data


def _is_scene_folder(path: Path) -> bool:
    """A SAFE product folder, or a band folder (:func:`_is_band_folder`)."""
    return (path.is_dir() and any((path / name).is_file() for name in _SAFE_METADATA)) or _is_band_folder(path)


def _is_band_folder(path: Path) -> bool:
    """A folder of single-band rasters named by band (one scene): a file named like a band
    (:func:`ssc_edge.io.geotiff.band_of_file_name`) and no scene file of its own (``.mat``, ``.npz``, ``.zip``)."""
    from ..io.geotiff import band_of_file_name

    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    if any(p.suffix.lower() in (".mat", ".npz", ".zip") for p in files):
        return False
    return any(band_of_file_name(p) is not None for p in files)


def _scene_name(path: Path) -> str:
    """``x.npz`` -> ``x``; ``S2A_..._T32TQM.SAFE`` and ``S2A_..._T32TQM.zip`` -> ``S2A_..._T32TQM``."""
    name = path.name
    if name.lower().endswith(".zip"):
        name = name[:-4]
    if name.lower().endswith(".safe"):
        return name[:-5]
    return Path(name).stem if Path(name).suffix.lower() in _SCENE_SUFFIXES else name


def read_json(path: Path, *, what: str, max_bytes: int = JSON_MAX_BYTES, error: type[Exception] = ValueError) -> Any:
    """The JSON value in file ``path`` (``what`` names it in messages), read with a size and a nesting limit.

    The text as :func:`~ssc_edge.io.output.read_small_text` reads it, parsed by :func:`ssc_edge.contract.parse_json`
    (at most :data:`~ssc_edge.contract.MAX_JSON_DEPTH` levels deep: no ``RecursionError``).

    Raises
    ------
    FileNotFoundError
        No such file.
    error
        Not a regular file, larger than ``max_bytes``, not UTF-8, not JSON or nested too deep: one line.
    """
    try:
        text = read_small_text(Path(path), max_bytes=max_bytes)
    except ValueError as exc:
        raise error(f"{path}: {what} cannot be read ({exc})") from None
    return parse_json(text, what=what, source=path, error=error, max_bytes=max_bytes)


def _read_list(path: Path) -> list[tuple[Path, str | None]]:
    """Entries (scene path, requested output or None) of a CSV or JSON scene list."""
    if path.suffix.lower() == ".csv":
        try:
            text = read_small_text(path, max_bytes=JSON_MAX_BYTES)
        except ValueError as exc:
            raise OptionError(f"{path}: cannot read scene list ({exc})") from None
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "path" not in rows[0]:
            raise OptionError(f"{path}: scene list needs a 'path' column (has {', '.join(rows[0])})")
        entries: list[Any] = rows
    else:
        data = read_json(path, what="scene list", error=OptionError)
        entries = data.get("scenes") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise OptionError(f"{path}: scene list must be a JSON list (or an object with a 'scenes' list)")
    result = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise OptionError(f"{path}: scene list entry {number} has no path")
        scene = Path(entry["path"].strip())
        output = (entry.get("output") or "").strip() or None
        result.append((scene if scene.is_absolute() else path.parent / scene, output))
    return result


def collect_scenes(inputs: Iterable[Path]) -> list[tuple[Path, str | None]]:
    """Expand batch inputs into (scene path, requested output or None), in input order.

    Parameters
    ----------
    inputs : iterable of Path
        Scene files, SAFE folders, folders of scenes, and CSV/JSON scene lists (see module notes).

    Raises
    ------
    OptionError
        An input (not a scene listed in a scene list) does not exist, a folder holds no scene, or
        a scene list is malformed. Scenes *listed* but missing are kept: they fail in the batch.
    """
    scenes: list[tuple[Path, str | None]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise OptionError(f"{path}: no such input file or folder")
        if path.is_file() and path.suffix.lower() in _LIST_SUFFIXES:
            scenes.extend(_read_list(path))
        elif path.is_file() or _is_scene_folder(path):
            scenes.append((path, None))
        else:
            found = sorted(p for p in path.iterdir()
                           if (p.is_file() and p.suffix.lower() in _SCENE_SUFFIXES) or _is_scene_folder(p))  # fmt: skip
            if not found:
                raise OptionError(
                    f"{path}: folder holds no scene (.mat, .npz, .tif, .zip, .SAFE or a folder of band files)"
                )
            scenes.extend((p, None) for p in found)
    return scenes


def _inside(out_dir: Path, requested: str, source: Path) -> Path:
    candidate = Path(requested)
    resolved = (out_dir / candidate).resolve()
    if candidate.is_absolute() or not resolved.is_relative_to(out_dir.resolve()):
        raise OptionError(f"{source}: output {requested!r} escapes the output folder {out_dir}; refusing")
    return out_dir / candidate


def _earlier_product(source: Path) -> str | None:
    """The scene whose product ``source`` is, by the done report beside it (an earlier batch's output), or None."""
    try:
        report = read_json(source.with_suffix(".json"), what="scene report")
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("status") != "done" or not isinstance(report.get("output"), str):
        return None
    return str(report.get("source")) if same_file(Path(report["output"]), source) else None


def plan_jobs(
    scenes: Sequence[tuple[Path, str | None]],
    out_dir: Path,
    *,
    output_format: str = "tif",
    models: Sequence[Path | None] = (),
) -> list[SceneJob]:
    """Give every scene its output and report paths inside ``out_dir``, checking them all first.

    Parameters
    ----------
    scenes : sequence of (Path, str or None)
        From :func:`collect_scenes`. A file that an earlier batch wrote (its done report beside it names it as
        the output) is not a scene: it is left out, with an info line.
    out_dir : Path
        The batch's output folder.
    output_format : {"tif", "npz", "mat"}
        Format of outputs without an explicit ``output``.
    models : sequence of Path or None
        The models the batch reads; no output or report may be one of them.

    Raises
    ------
    OptionError
        Before anything runs: an unknown format, an output escaping ``out_dir``, or two scenes
        mapping to the same output or report (both named), or an output named like the manifest.
    OutputError
        Before anything runs: ``out_dir``'s name is not UTF-8; a scene's output or report is one of the inputs
        (another scene, a model), e.g. ``batch DIR -o DIR`` where DIR holds ``a.npz`` and a scene
        ``a_sharpened.npz``.
    """
    if output_format not in OUTPUT_FORMATS:
        raise OptionError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    check_name(out_dir)
    kept = []
    for source, requested in scenes:
        made_from = _earlier_product(source) if Path(source).is_file() else None
        if made_from is None:
            kept.append((source, requested))
        else:
            logger.info("%s: the product of %s written by an earlier batch, not a scene; left out", source, made_from)
    scenes = kept
    find_input = input_finder([*(source for source, _ in scenes), *models])
    jobs: list[SceneJob] = []
    owners: dict[Path, Path] = {}
    names: set[str] = set()
    for source, requested in scenes:
        if requested is None:
            output = out_dir / f"{_scene_name(source)}_sharpened.{output_format}"
        else:
            output = _inside(out_dir, requested, source)
            if output.suffix.lower().lstrip(".") not in (*OUTPUT_FORMATS, "tiff"):
                raise OptionError(f"{source}: output {requested!r} must end in .tif, .npz or .mat")
        report = output.with_suffix(".json")
        for path in (output, report):
            taken, inside = find_input(path)
            if taken is not None:
                what = "be written inside the input folder" if inside else "overwrite the input"
                raise OutputError(f"{path}: the output of {source} would {what} {taken}; refusing (write to another "
                                  "OUTDIR, or name its output in a scene list)")  # fmt: skip
            key = path.resolve()
            if key == (out_dir / MANIFEST_NAME).resolve():
                raise OptionError(f"{source}: output {path} would overwrite the batch manifest; refusing")
            if key in owners:
                raise OptionError(f"{owners[key]} and {source} both write {path}; give one of them another output")
            owners[key] = source
        name = output.stem
        if name in names:  # same stem in different sub-folders of OUTDIR: keep names unique
            name = str(output.relative_to(out_dir).with_suffix(""))
        names.add(name)
        jobs.append(SceneJob(name=name, source=source, output=output, report=report))
    return jobs


def model_sha256(path: Path) -> str:
    """:func:`sha256_file` of a model, hashed once per process while its size, mtime and inode stay the same
    (every scene's report names it: one read per worker, yet a model replaced mid-run is hashed again)."""
    stat = os.stat(path)
    return _sha256_once(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=8)
def _sha256_once(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_file(Path(path))


def source_signature(path: Path) -> dict[str, int] | None:
    """Size (bytes) and modification time (ns) of a scene file, or of all a folder's files; None if missing."""
    path = Path(path)
    try:
        if path.is_dir():
            stats = [p.stat() for p in path.rglob("*") if p.is_file()]
            return {"size": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
        stat = path.stat()
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _manifest_problem(data: Any) -> str | None:
    """Why ``data`` is not a manifest this module wrote (its records would be lost by merging it), or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("scenes", []), list):
        return f"'scenes' is a {type(data['scenes']).__name__}, not a list"
    for number, record in enumerate(data.get("scenes", []), 1):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            return f"scene record {number} has no name"
    if not isinstance(data.get("runs", {}), dict):
        return f"'runs' is a {type(data['runs']).__name__}, not an object"
    return None


def _load_manifest(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(manifest, None)``, ``(None, None)`` when there is none, or ``(None, why it is damaged)`` (one line that
    names ``path``)."""
    try:
        data = read_json(path, what="the batch manifest", max_bytes=MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        return None, None
    except ValueError as exc:
        return None, str(exc)
    problem = _manifest_problem(data)
    return (None, f"{path}: the batch manifest is damaged ({problem})") if problem else (data, None)


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The batch manifest of ``out_dir``, or None if there is none or it is damaged (see module notes)."""
    return _load_manifest(Path(out_dir) / MANIFEST_NAME)[0]


def _keep_aside(path: Path, problem: str) -> Path:
    """Rename a damaged manifest to ``batch.json.damaged-TIMESTAMP`` (never over another file) with one warning."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for number in range(1000):
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{number}" if number else ""))
        try:
            os.link(path, aside, follow_symlinks=False)  # fails if ``aside`` exists: nothing is replaced
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{problem}; it cannot be kept aside ({exc.strerror})") from None
        os.unlink(path)
        logger.warning("warning: %s; kept as %s, and a fresh manifest started", problem, aside.name)
        return aside
    raise OutputError(f"{problem}; it cannot be kept aside: too many copies")


def _newer(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether record ``ours`` should replace ``theirs`` (same scene) in the manifest.

    A final record (done, failed) beats a pending one; of two final records the later ``finished``
    (UTC, ISO 8601) wins, and a tie goes to ``ours`` (a run that found a scene done keeps the copy
    of its report, marked ``skipped``, which names the ``run`` that sharpened it). Of two pending
    records, ``ours``.
    """
    ours_final, theirs_final = ours.get("status") in FINAL_STATUSES, theirs.get("status") in FINAL_STATUSES
    if ours_final != theirs_final:
        return ours_final
    return not ours_final or str(ours.get("finished") or "") >= str(theirs.get("finished") or "")


def merge_records(on_disk: Sequence[dict[str, Any]], ours: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's scene records after a run's update: the ``scenes`` read (``on_disk``) in their order, this
    run's new ones appended; one record per ``name``, the one :func:`_newer` picks where both have it."""
    merged = {r["name"]: r for r in on_disk if isinstance(r, dict) and isinstance(r.get("name"), str)}
    for record in ours:
        previous = merged.get(record["name"])
        if previous is None or _newer(record, previous):
            merged[record["name"]] = record
    return list(merged.values())


def update_manifest(
    out_dir: Path, fields: dict[str, Any], records: Sequence[dict[str, Any]], *, wait: float | None = None
) -> Path | None:
    """Merge this run's ``records`` into ``OUTDIR/batch.json`` under an exclusive lock, atomically.

    Parameters
    ----------
    out_dir : Path
        The batch's output folder.
    fields : dict
        This run's top-level fields (``engine``, ``config``, ``started``...; ``run`` names the run),
        written at the top and kept, with the other runs', under ``runs``.
    records : sequence of dict
        This run's scene records (see :func:`merge_records`).
    wait : float, optional
        Seconds to wait for another run that holds the manifest's lock; None: until it releases it.

    Returns
    -------
    Path or None
        The manifest (its ``summary`` counts every scene it lists); None when another run held the lock
        for all of ``wait`` (nothing was written).

    Raises
    ------
    OutputError
        The lock or the manifest cannot be written, or a damaged manifest cannot be kept aside.

    The lock is the manifest's claim (:func:`ssc_edge.io.output.claim_output`): a killed run never leaves it held.
    """
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_NAME
    try:
        lock = claim_output(claim_path(path), wait=wait)
    except OSError as exc:
        raise OutputError(f"{path}: cannot lock the manifest ({exc.strerror or exc})") from None
    if lock is None:
        holder = claim_holder(claim_path(path)) or {}
        logger.debug("%s: another run (pid %s on %s) held its lock for more than %g s; not updated", path,
                     holder.get("pid", "?"), holder.get("host", "?"), wait)  # fmt: skip
        return None
    with lock:
        for leftover in out_dir.glob(f".{MANIFEST_NAME}.*"):  # no live writer: we hold the lock
            leftover.unlink(missing_ok=True)
        previous, problem = _load_manifest(path)
        if problem is not None:
            _keep_aside(path, problem)
        previous = previous or {}
        scenes = merge_records(previous.get("scenes", []), records)
        runs = previous.get("runs", {})
        this = {k: fields.get(k) for k in ("engine", "started", "finished", "updated", "pid", "host")}
        runs = {**runs, fields["run"]: {**this, "scenes": len(records)}}
        counts = {s: sum(1 for r in scenes if r.get("status") == s) for s in (*FINAL_STATUSES, "pending")}
        counts["skipped"] = sum(1 for r in scenes if r.get("skipped"))
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:  # a kill leaves the old or the new
            json.dump({**fields, "summary": counts, "scenes": scenes, "runs": runs}, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        return path
