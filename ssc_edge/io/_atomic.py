"""Atomic output files: write to a temporary file beside the target, then rename.

Temporary files
---------------
The temporary file of ``OUT.tif`` is ``.OUT.tif.ssc-edge-HOST-PID.XXXXXXXX.tif`` in the same folder:
hidden, named after its output, and after the host and process that write it. It is removed on any
error, on Ctrl-C and on SIGTERM (the CLI turns SIGTERM into an exit that unwinds, see
:mod:`ssc_edge.cli`). A process killed outright (SIGKILL, power loss) cannot remove it; the next
:func:`atomic_output` for the same output removes the temporary files of that output whose process
(on this host) no longer runs. Nothing else is touched: only this pattern, only this output's name,
only dead processes of this host (a shared batch folder's other hosts keep theirs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import OutputError, SscEdgeError

__all__ = ["atomic_output", "check_output_folder", "check_output_path", "remove_stale_temporaries", "temporary_prefix"]

logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


def temporary_prefix(path: Path, *, pid: int | None = None) -> str:
    """``.NAME.ssc-edge-HOST-PID.``: how the temporary files of output ``path`` begin (see module notes)."""
    return f".{Path(path).name}.ssc-edge-{_HOST}-{os.getpid() if pid is None else pid}."


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: Path, *, force: bool = False, inputs: Iterable[Path | None] = ()) -> Path:
    """Check before any work starts that ``path`` can be written.

    Parameters
    ----------
    path : Path
        The output.
    force : bool
        Overwrite an existing output (or replace a symbolic link: the link is replaced, never
        written through).
    inputs : iterable of Path or None
        The files the command reads (None entries are skipped): the output may not be one of them,
        even with ``force`` (same resolved path, or the same file through a hard link).

    Raises
    ------
    OutputError
        ``path`` is an input; exists (or is a dangling symbolic link) and ``force`` is false; is a
        folder; its folder is missing or not writable.
    """
    path = Path(path)
    for other in inputs:
        if other is not None and _same_file(path, Path(other)):
            raise OutputError(f"{path}: output is the input {other}; writing it would destroy the input")
    if path.is_symlink() and not path.exists() and not force:
        raise OutputError(
            f"{path}: output is a dangling symbolic link (to {os.readlink(path)}); pass --force to replace the link"
        )
    if path.exists() and not force:
        raise OutputError(f"{path}: output exists; pass --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"{path}: output is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: folder {folder} is not writable")
    _probe(folder, temporary_prefix(path), where=f"{path}: cannot write in folder {folder}")
    return path


def _probe(folder: Path, prefix: str, *, where: str) -> None:
    """Create and remove a temporary file in ``folder``: what ``os.access`` cannot tell (root, /proc, a
    read-only mount)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=prefix, suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{where} ({exc.strerror or exc})") from None


def check_output_folder(folder: Path) -> Path:
    """Check that files can be created in an existing output folder (a batch's OUTDIR); return it.

    Raises
    ------
    OutputError
        Not a folder, or a file cannot be created in it (permissions, a read-only mount, ``/proc``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist or is not a folder")
    _probe(folder, f".ssc-edge-{_HOST}-{os.getpid()}.", where=f"{folder}: cannot write in output folder")
    return folder


def _running(pid: int) -> bool:
    """True if process ``pid`` exists on this host (or may: no permission to signal it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of output ``path`` left by killed processes of this host; return them.

    Only names of :func:`temporary_prefix`'s pattern for this output, with this host, whose process
    no longer runs. Never raises (a folder that cannot be listed has nothing to clean).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    stem = f".{path.name}.ssc-edge-{_HOST}-"
    pattern = re.compile(rf"^{re.escape(stem)}(\d+)\.[a-z0-9_]{{8}}")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(stem) or not (match := pattern.match(entry.name)):
            continue
        if _running(int(match.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
                logger.info("removed %s, left by a killed run (pid %s)", entry.path, match.group(1))
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_output(path: Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception (including ``KeyboardInterrupt``, ``SystemExit`` from the CLI's SIGTERM
    handler, and a full disk) the temporary file is removed and nothing is left at ``path``.
    ``OSError`` (creating the temporary file included: ``-o /proc/x.tif``) is re-raised as
    :class:`OutputError` naming ``path``, except ssc-edge's own errors (a scene that fails to read
    while the output is being written keeps its own message). Temporary files of this output left
    by killed runs are removed first (:func:`remove_stale_temporaries`).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=suffix or path.suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual permissions
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, SscEdgeError):
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
