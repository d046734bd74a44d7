"""The one door out: the guard every file ssc-edge writes goes through (``infer``, ``batch``, ``fit-and-export``...).

Rules
-----
* **No output is an input** (:func:`check_outputs`), by resolved path or by device and inode (a hard or symbolic
  link), even with ``force``; nor may two outputs of one command be one file. An output name that is not valid
  UTF-8 is refused (it could not be printed).
* **Existing files** (and dangling symbolic links: the link is replaced, never written through) only with ``force``.
* **One writer per output** (:func:`claim_output`, :func:`output_guard`): an exclusive ``flock`` on the claim file
  ``.claim-NAME`` beside output ``NAME``, held from before the work until the output is renamed into place;
  ``infer`` and ``batch`` (:mod:`ssc_edge.batch.local`) share these claims.
* **Nothing created through a link.** Claim files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW``; an existing
  one is used only if it is a regular file with one name (a planted link or FIFO is refused, never opened).
  Temporary files come from ``tempfile.mkstemp`` (``O_EXCL``) in the output's folder.
* **Atomic** (:func:`atomic_output`): written to a temporary file beside the output and renamed into place; any
  error, Ctrl-C or SIGTERM removes the temporary file.
* **Killed runs leave nothing for long** (:func:`remove_stale_files`): a later write in the folder removes the
  temporary files of this host's dead processes (their pid is in the name) and the claim files no one holds.

Why ``flock`` and not a file created with ``O_EXCL`` alone: such a file outlives a killed process (SIGKILL, out of
memory, a lost node), and whether its pid still runs cannot be told (pids are reused; a pid on another machine
of a Ray cluster cannot be checked). The kernel releases a ``flock`` when its holder dies; on NFS, Linux
implements it with the server's byte-range locks (NFSv4, or NFSv3 with ``lockd``), which every client sees.
The file itself only names its holder (pid, host, start time; JSON) for messages.

The temporary file of ``OUT.tif`` is ``.OUT.tif.ssc-edge-HOST-PID.XXXXXXXX.tif`` in the same folder: hidden,
named after its output, and after the host and process that write it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..contract import parse_json
from ..errors import OutputError, SscEdgeError

__all__ = [
    "CLAIM_PREFIX",
    "OutputClaim",
    "atomic_output",
    "check_name",
    "check_output_folder",
    "check_outputs",
    "claim_holder",
    "claim_output",
    "claim_path",
    "input_finder",
    "output_guard",
    "printable",
    "read_small_text",
    "remove_stale_files",
    "same_file",
    "temporary_file",
    "temporary_prefix",
]

logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"

#: Prefix of claim files (beside the output they claim).
CLAIM_PREFIX = ".claim-"

_TEMPORARY = re.compile(r"^\..+\.ssc-edge-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.[a-z0-9_]{8}")


def printable(path: Path | str) -> str:
    """``path`` as text any terminal can print: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def temporary_prefix(path: Path, *, pid: int | None = None) -> str:
    """``.NAME.ssc-edge-HOST-PID.``: how the temporary files of output ``path`` begin (see module notes)."""
    return f".{Path(path).name}.ssc-edge-{_HOST}-{os.getpid() if pid is None else pid}."


def temporary_file(path: Path, *, suffix: str) -> Path:
    """Create an empty temporary file beside output ``path`` (``mkstemp``: ``O_EXCL``, mode 0600), named by
    :func:`temporary_prefix` so that :func:`remove_stale_files` finds it after a kill; return its path.
    Raises :class:`OutputError` naming ``path`` when it cannot be created."""
    try:
        fd, name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    return Path(name)


def claim_path(output: Path) -> Path:
    """The claim file of output ``output``: ``.claim-NAME`` in the same folder (never a temporary file's name)."""
    output = Path(output)
    return output.parent / f"{CLAIM_PREFIX}{output.name}"


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file or folder: the same resolved path, or the same device and inode."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop
        return False


def input_finder(inputs: Iterable[object]) -> Callable[[Path], tuple[Path | None, bool]]:
    """``find(path)``: ``(the input path is, False)``, ``(the input folder it lies in, True)`` or ``(None, False)``.

    Compared by resolved path and by device and inode (a hard or symbolic link to an input is caught); entries of
    ``inputs`` that are not paths (None, a scene in memory) are skipped. Built once for many outputs (a batch).
    """
    by_path: dict[Path, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for raw in inputs:
        if isinstance(raw, (str, os.PathLike)):
            with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: a symbolic link loop
                by_path.setdefault(Path(raw).resolve(), Path(raw))
                info = os.stat(raw)
                by_inode.setdefault((info.st_dev, info.st_ino), Path(raw))
    folders = {key: path for key, path in by_path.items() if key.is_dir()}

    def find(path: Path) -> tuple[Path | None, bool]:
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):
            return None, False
        same = by_path.get(resolved)
        if same is None:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                same = by_inode.get((info.st_dev, info.st_ino))
        if same is not None:
            return same, False
        return next(((folders[p], True) for p in resolved.parents if p in folders), (None, False))

    return find


def check_name(path: Path) -> None:
    """Raise :class:`OutputError` (naming it with ``\\xNN`` escapes) for an output whose name is not valid UTF-8:
    it could not be printed or logged."""
    shown = printable(path)
    if shown != str(path):
        raise OutputError(f"{shown}: output name is not valid UTF-8; give it a UTF-8 name")


def check_outputs(
    outputs: Iterable[Path | None], *, inputs: Iterable[Path | None] = (), force: bool = False
) -> list[Path]:
    """Check, before any work starts, that every one of ``outputs`` may be written; return them as paths.

    Parameters
    ----------
    outputs : iterable of Path or None
        The files the command writes (None entries are skipped).
    inputs : iterable of Path, None or other objects
        The files and folders it reads: scene, model(s) (entries that are not paths are skipped: None, a scene
        in memory). No output may be one of them, even with ``force``, nor may two outputs be one file.
    force : bool
        Overwrite an existing output (or replace a symbolic link: the link is replaced, never written through).

    Raises
    ------
    OutputError
        An output is an input or another output; its name is not UTF-8; it exists (or is a dangling symbolic
        link) and ``force`` is false; it is a folder; its folder is missing or takes no files.
    """
    paths = [Path(p) for p in outputs if p is not None]
    find_input = input_finder(inputs)
    for number, path in enumerate(paths):
        check_name(path)
        other, inside = find_input(path)
        if other is not None and inside:
            raise OutputError(f"{path}: output is inside the input folder {other}; writing it would change the input")
        if other is not None:
            raise OutputError(f"{path}: output is the input {other}; writing it would destroy the input")
        for other in paths[:number]:
            if same_file(path, other):
                raise OutputError(f"{path}: is also the output {other}; give each output its own name")
        if path.is_symlink() and not path.exists() and not force:
            raise OutputError(
                f"{path}: output is a dangling symbolic link (to {os.readlink(path)}); pass --force to replace the link"
            )
        if path.is_dir():
            raise OutputError(f"{path}: output is a folder")
        if path.exists() and not force:
            raise OutputError(f"{path}: output exists; pass --force to overwrite it")
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: folder {folder} does not exist")
        _probe(folder, temporary_prefix(path), where=f"{path}: cannot write in folder {folder}")
    return paths


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

    Raises :class:`OutputError` for a non-folder or one that takes no files (permissions, read-only, ``/proc``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist or is not a folder")
    _probe(folder, f".ssc-edge-{_HOST}-{os.getpid()}.", where=f"{folder}: cannot write in output folder")
    return folder


# -- claims -------------------------------------------------------------------------------------------------


class OutputClaim(contextlib.AbstractContextManager):
    """A held claim: an open descriptor of a claim file with an exclusive ``flock``; :meth:`release` ends it.

    Attributes
    ----------
    path : Path
        The claim file.
    holder : dict
        ``pid``, ``host`` and ``since`` (UTC, ISO 8601) of this process, as written in the file.
    """

    def __init__(self, fd: int, path: Path, holder: dict[str, Any]) -> None:
        self._fd: int | None = fd
        self.path = path
        self.holder = holder

    def release(self) -> None:
        """Remove the claim file (while still holding it) and unlock. Idempotent."""
        if self._fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_claim_file(path: Path) -> int:
    """A descriptor of claim file ``path``, created if missing; never through a link, never anything but a regular
    file with one name (see module notes)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    while True:
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            pass
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:  # removed between the two opens: create it
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(f"{path}: is a symbolic link, not a claim file; remove it") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(fd)
            kind = "a file with several names (a hard link)" if stat.S_ISREG(info.st_mode) else "not a regular file"
            raise OutputError(f"{path}: is {kind}, not a claim file; remove it")
        return fd


def _wait_for_lock(fd: int, wait: float | None) -> bool:
    """``flock`` ``fd`` exclusively: at once (``wait`` 0), within ``wait`` seconds, or whenever (None)."""
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def claim_output(path: Path, *, wait: float | None = 0, write_holder: bool = True) -> OutputClaim | None:
    """Take the exclusive claim file ``path`` (created if missing).

    Parameters
    ----------
    path : Path
        The claim file (:func:`claim_path` of an output); its folder must exist.
    wait : float or None
        Seconds to wait for a live holder to release it: 0 (default) not at all, None until it does.
    write_holder : bool
        Write this process's pid, host and start time into the file.

    Returns
    -------
    OutputClaim or None
        None when a live process still holds it after ``wait``.

    Raises
    ------
    OutputError
        ``path`` is a symbolic link, a hard link or not a regular file (nothing is written through it).
    OSError
        The file cannot be created or locked (a read-only folder, a file system without locks).
    """
    path = Path(path)
    while True:
        fd = _open_claim_file(path)
        try:
            locked = _wait_for_lock(fd, wait)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            return None
        try:  # the holder we waited for removed the file: lock the new one
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)
            continue
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        if write_holder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return OutputClaim(fd, path, holder)


def read_small_text(path: Path, *, max_bytes: int) -> str:
    """The UTF-8 text of regular file ``path`` (never through a link, never a FIFO), at most ``max_bytes``.

    Raises
    ------
    ValueError
        Why it cannot be read (``FileNotFoundError`` passes through: a missing file is no damage).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{info.st_size} bytes, more than {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"more than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def claim_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the claim ``path`` (``pid``, ``host``, ``since``) as its file says; None if unknown.

    Informative only (the file may be a dead process's, or half written): :func:`claim_output` decides. Read
    without following a link and at most 4 KiB (:func:`read_small_text`).
    """
    try:  # no RecursionError from a planted file
        data = parse_json(read_small_text(path, max_bytes=4096), what="claim", source=path, error=ValueError)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def output_guard(
    outputs: Iterable[Path | None], *, inputs: Iterable[Path | None] = (), force: bool = False
) -> Iterator[list[Path]]:
    """Check ``outputs`` (:func:`check_outputs`) and hold their claims for the ``with`` block, which holds the
    command's work and the renames of its outputs. A second writer is refused at once; the checks run again once
    the claims are held (a writer that finished in between made the output exist).

    Raises
    ------
    OutputError
        See :func:`check_outputs`; or another live process (another ``infer``, a batch run) holds a claim.
    """
    paths = check_outputs(outputs, inputs=inputs, force=force)
    with contextlib.ExitStack() as claims:
        for path in paths:
            try:
                claim = claim_output(claim_path(path))
            except OutputError:
                raise
            except OSError as exc:
                raise OutputError(f"{path}: cannot claim it ({exc.strerror or exc})") from None
            if claim is None:
                holder = claim_holder(claim_path(path)) or {}
                raise OutputError(
                    f"{path}: another ssc-edge run (pid {holder.get('pid', '?')} on {holder.get('host', '?')}) is "
                    "writing it; wait for it to finish or write elsewhere"
                )
            claims.enter_context(claim)
        check_outputs(paths, inputs=inputs, force=force)
        yield paths


# -- temporary files ----------------------------------------------------------------------------------------


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


def remove_stale_files(folder: Path) -> list[Path]:
    """Remove what killed runs left in ``folder``; return the paths removed.

    Temporary files (:func:`temporary_prefix`'s pattern, any output) of this host's processes that no longer run,
    and claim files no process holds. Other hosts' temporary files, live processes' files and links are kept.
    Never raises (a folder that cannot be listed has nothing to clean).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.name.startswith(CLAIM_PREFIX):
                claim = claim_output(Path(entry.path), write_holder=False) if entry.is_file(follow_symlinks=False) \
                    else None  # fmt: skip
                if claim is not None:
                    claim.release()
                    removed.append(Path(entry.path))
                continue
            match = _TEMPORARY.match(entry.name)
            if match is None or match["host"] != _HOST or _running(int(match["pid"])):
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
                logger.info("removed %s, left by a killed run (pid %s)", printable(entry.path), match["pid"])
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception (including ``KeyboardInterrupt``, ``SystemExit`` from the CLI's SIGTERM handler, and a full
    disk) the temporary file is removed and nothing is left at ``path``. ``OSError`` (creating the temporary file
    included: ``-o /proc/x.tif``) is re-raised as :class:`OutputError` naming ``path``, except ssc-edge's own
    errors (a scene that fails to read while the output is being written keeps its own message). What killed runs
    left in the folder is removed first (:func:`remove_stale_files`).
    """
    path = Path(path)
    remove_stale_files(path.parent)
    tmp = temporary_file(path, suffix=path.suffix)
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
