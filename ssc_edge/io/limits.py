"""Limits on what the scene readers accept, checked from declared sizes before anything is read.

A file declares the size of what it holds before it holds it (an ``.npy`` header, an HDF5 dataset's shape
and dtype, a zip member's uncompressed size, a raster's width, height and sample type), and a small file can
declare a huge array (a *zip bomb*, or an HDF5 dataset declared 10^6 x 10^6 with no data written). The readers
add up what a whole file declares (every member, dataset and cell reference they will read, each reference as
often as it is followed) in a :class:`ReadBudget` and refuse with one line
(:class:`~ssc_edge.errors.SceneReadError`) before allocating, instead of running out of memory: over
:data:`MAX_ARRAY_BYTES` (a full tile's six sharpened bands in float64, the largest a reference ``Xm_im`` or an
``(H, W, 6)`` estimate can be; its 12 bands in float64 take 5.36 GB) or over the memory available
(:func:`available_memory`). Only regular files are opened (:func:`check_regular_file`): a FIFO would block the
reader forever, a device (``/dev/zero``) never ends.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SceneReadError

__all__ = [
    "TILE_SIDE",
    "MAX_ARRAY_BYTES",
    "MAX_COMPRESSION_RATIO",
    "MAX_METADATA_BYTES",
    "ReadBudget",
    "available_memory",
    "cgroup_memory_headroom",
    "check_array_size",
    "check_regular_file",
    "check_zip_member",
]

#: Side of a full Sentinel-2 tile at 10 m, pixels (109.8 km).
TILE_SIDE = 10980

#: Largest array a reader accepts, bytes: a full tile's six bands in float64 (5.79 GB; see module notes).
MAX_ARRAY_BYTES = 6 * TILE_SIDE * TILE_SIDE * 8

#: Largest uncompressed / compressed size ratio of a SAFE zip's band member. JPEG 2000 files do not
#: compress further (a real product's members are about 1:1); a zip bomb's are 1000:1.
MAX_COMPRESSION_RATIO = 100

#: Largest metadata file read whole (a SAFE product's ``MTD_MSIL2A.xml`` is about 60 kB), bytes.
MAX_METADATA_BYTES = 64 * 1024 * 1024


def _gigabytes(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


#: What a path is when it is not a regular file, by ``stat`` test.
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
                (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_regular_file(path: Path | str) -> int:
    """Refuse anything but a regular file (links followed) before it is opened; return its size in bytes.

    Raises :class:`SceneReadError` for no such file, a folder, FIFO, device or socket (nothing is opened).
    """
    label = f"{path}: "
    try:
        mode = os.stat(path)
    except FileNotFoundError:
        raise SceneReadError(f"{label}no such file or folder") from None
    except OSError as exc:
        raise SceneReadError(f"{label}cannot open ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode.st_mode)), "not a regular file")
        raise SceneReadError(f"{label}is {kind}, not a regular file; refused")
    return mode.st_size


def available_memory() -> int | None:
    """Bytes this process may still allocate, as far as the system says: ``MemAvailable`` of ``/proc/meminfo``,
    capped by the memory cgroup's headroom (:func:`cgroup_memory_headroom`) and by the address-space limit
    (``ulimit -v``, ``RLIMIT_AS``) where they are set; None where none is known.
    """
    import resource

    known = []
    try:
        with open("/proc/meminfo", "rb") as f:
            known += [int(line.split()[1]) * 1024 for line in f if line.startswith(b"MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    headroom = cgroup_memory_headroom()
    if headroom is not None:
        known.append(headroom)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        known.append(soft)
    return min(known) if known else None


#: A cgroup v1 memory limit at or above this means none (the kernel writes a page-rounded LONG_MAX), bytes.
_NO_CGROUP_LIMIT = 1 << 60


def cgroup_memory_headroom(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Bytes the process's memory cgroup still allows (its limit less its usage); None without a limit.

    A container (Docker, Kubernetes) limits memory through a cgroup while ``/proc/meminfo`` shows the host's, so
    a read that fits the host but not the container would be killed instead of refused. cgroup v2: ``memory.max``
    and ``memory.current`` of the group named by the ``0::GROUP`` line of ``membership``; v1: ``memory.limit_in_bytes``
    and ``memory.usage_in_bytes`` of the ``memory`` controller's group. Inside a container the group is usually
    the mount's root, which is tried after the group's own folder. Hand-written: the standard library has no
    reader for it and psutil reports the host's memory too.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        group = parts[2].lstrip("/")
        if parts[1] == "":
            folders, names = (root / group, root), ("memory.max", "memory.current")
        elif "memory" in parts[1].split(","):
            folders, names = (
                (root / "memory" / group, root / "memory"),
                ("memory.limit_in_bytes", "memory.usage_in_bytes"),
            )
        else:
            continue
        for folder in folders:
            try:
                limit, usage = ((folder / name).read_text().strip() for name in names)
                if limit == "max" or int(limit) >= _NO_CGROUP_LIMIT:
                    return None
                return max(int(limit) - int(usage), 0)
            except (OSError, ValueError):
                continue
    return None


class ReadBudget:
    """What one file makes a reader allocate, added up before anything is read: a reader calls :meth:`add`
    with each array it will read and reads only when every call passed.

    Parameters
    ----------
    where : str
        The file, named in errors.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.total = 0
        self._memory = available_memory()

    def add(self, shape: Sequence[int], dtype: np.dtype | str, *, what: str, as_float32: bool = False) -> int:
        """Count an array of ``shape`` and ``dtype`` named ``what`` (and its float32 copy); return the total, bytes.

        Parameters
        ----------
        shape, dtype
            Declared shape and sample type.
        what : str
            How errors name the array (``"array 'B02'"``, ``"dataset im10"``).
        as_float32 : bool
            The reader also keeps a float32 copy of it (a scene's band): counted too, unless it is float32.

        Raises
        ------
        SceneReadError
            A negative dimension, or the file's total over :data:`MAX_ARRAY_BYTES` or the memory available.
        """
        size = check_array_size(shape, dtype, where=f"{self.where}: {what}")
        self.total += size
        if as_float32 and np.dtype(dtype) != np.float32 and np.dtype(dtype).itemsize:
            self.total += size // np.dtype(dtype).itemsize * 4
        for limit, of in ((MAX_ARRAY_BYTES, "a full Sentinel-2 tile can take"), (self._memory, "of memory available")):
            if limit is not None and self.total > limit:
                raise SceneReadError(
                    f"{self.where}: {what} brings what the file declares to {_gigabytes(self.total)}, more than the "
                    f"{_gigabytes(limit)} {of}; refused before reading"
                )
        return self.total


def check_array_size(shape: Sequence[int], dtype: np.dtype | str, *, where: str) -> int:
    """Refuse an array whose declared ``shape`` (any rank) and ``dtype`` exceed :data:`MAX_ARRAY_BYTES` (or have a
    negative dimension) with a :class:`SceneReadError` naming ``where`` (``"FILE: array NAME"``); return its size in
    bytes."""
    dims = [int(n) for n in shape]
    if any(n < 0 for n in dims):
        raise SceneReadError(f"{where}: declared shape {tuple(dims)} has a negative dimension")
    size = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if size > MAX_ARRAY_BYTES:
        shape_text = "x".join(map(str, dims)) or "()"
        raise SceneReadError(
            f"{where}: declares a {shape_text} {np.dtype(dtype)} array of {_gigabytes(size)}, more than the "
            f"{_gigabytes(MAX_ARRAY_BYTES)} a full Sentinel-2 tile can take; refused before reading"
        )
    return size


def check_zip_member(
    info: zipfile.ZipInfo, *, where: str, max_bytes: int | None = None, max_ratio: float | None = None
) -> None:
    """Refuse (:class:`SceneReadError` naming the archive ``where``) a zip member whose uncompressed size, as the
    archive's central directory declares it, exceeds ``max_bytes`` (default :data:`MAX_ARRAY_BYTES`) or whose
    ``file_size / compress_size`` exceeds ``max_ratio`` (None: not checked). Nothing is decompressed."""
    max_bytes = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    if info.file_size > max_bytes:
        raise SceneReadError(
            f"{where}: member {info.filename} declares {_gigabytes(info.file_size)} uncompressed, more than "
            f"the {_gigabytes(max_bytes)} limit; refused before reading"
        )
    if max_ratio is not None and info.file_size > max_ratio * max(info.compress_size, 1) and info.file_size > 1 << 20:
        raise SceneReadError(
            f"{where}: member {info.filename} would decompress {info.file_size / max(info.compress_size, 1):.0f} "
            f"times ({info.compress_size} -> {info.file_size} bytes), more than {max_ratio:g} times: "
            "a zip bomb, not a Sentinel-2 band file; refused before reading"
        )
