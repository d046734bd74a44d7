"""Claims: which batch run is sharpening which scene, so two runs can share one output folder.

A scene is claimed by an exclusive ``fcntl.flock`` on a small claim file beside its output,
``OUTDIR/.claim-NAME_sharpened.FORMAT``, taken before the scene starts and released (the file
removed) after its output and report are renamed into place. The claim file holds the holder's
pid, host and start time (JSON), for the messages and the manifest only: whether a claim is held
is the kernel's answer, never read from the file.

Why ``flock`` and not a file created with ``O_CREAT | O_EXCL``: an exclusive file outlives a
process that is killed (SIGKILL, out of memory, a lost node), so another run would have to guess
from the pid in it whether the claim is stale; pids are reused, and a pid on another machine of a
Ray cluster cannot be checked at all. The kernel releases a ``flock`` when its holder dies (all its
descriptors close), so a claim is exactly as alive as the process holding it; a claim file a dead
process left is simply locked again by the next run. On NFS, Linux implements ``flock`` with the
server's byte-range locks (NFSv4, or NFSv3 with ``lockd``), which every client sees.

Taking a claim on a file that another process removes (the usual race of removable lock files) is
guarded: after locking, the claim checks that its descriptor is still the file at the path, and
starts again if not. The holder removes the file while it still holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["Claim", "claim_holder", "claim_path", "exclusive", "try_claim"]

#: Prefix of claim files (beside the output they claim).
CLAIM_PREFIX = ".claim-"


def claim_path(output: Path) -> Path:
    """The claim file of a scene whose output is ``output``: ``.claim-NAME`` in the same folder.

    The name does not start with ``.NAME.``, so it is never taken for a temporary file of
    :func:`ssc_edge.io._atomic.atomic_output` (``.NAME.XXXX.SUFFIX``).
    """
    output = Path(output)
    return output.parent / f"{CLAIM_PREFIX}{output.name}"


class Claim:
    """A held claim (an open descriptor with an exclusive ``flock``); :meth:`release` ends it.

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

    def release(self, *, remove: bool = True) -> None:
        """Remove the claim file (while still holding it, unless ``remove`` is false) and unlock. Idempotent."""
        if self._fd is None:
            return
        try:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder() -> dict[str, Any]:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": since}


def try_claim(path: Path, *, blocking: bool = False, write_holder: bool = True) -> Claim | None:
    """Take the exclusive claim ``path`` (created if missing), or None if a live process holds it.

    Parameters
    ----------
    path : Path
        The claim file (:func:`claim_path`); its folder must exist.
    blocking : bool
        Wait until the holder releases it instead of returning None.
    write_holder : bool
        Write this process's pid, host and start time into the file.

    Raises
    ------
    OSError
        The file cannot be created or locked (a read-only folder, a file system without locks).
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:  # the holder we waited for removed it: lock the new one
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)
            continue
        holder = _holder()
        if write_holder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return Claim(fd, path, holder)


def claim_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the claim ``path`` (``pid``, ``host``, ``since``) as its file says; None if unknown.

    Informative only: the file may be a dead process's, or half written; :func:`try_claim` decides.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[Claim]:
    """Hold the claim ``path`` for the ``with`` block, waiting for it if needed; the file is removed after."""
    claim = try_claim(path, blocking=True, write_holder=False)
    assert claim is not None  # a blocking claim waits; it never comes back empty
    with claim:
        yield claim
