"""Atomic output files: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError, SscEdgeError

__all__ = ["atomic_output", "check_output_path"]


def check_output_path(path: Path, *, force: bool = False) -> Path:
    """Check before any work starts that ``path`` can be written.

    Raises
    ------
    OutputError
        If ``path`` exists and ``force`` is false, or its folder is missing or not writable.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path}: output exists; pass --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"{path}: output is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: folder {folder} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception (including ``KeyboardInterrupt`` and a full disk) the temporary file is
    removed and nothing is left at ``path``. ``OSError`` is re-raised as :class:`OutputError`
    naming ``path``, except ssc-edge's own errors (a scene that fails to read while the output is
    being written keeps its own message).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual permissions
    try:
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
