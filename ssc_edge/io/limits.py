"""Limits on what the scene readers accept, checked from declared sizes before anything is read.

A file names the size of what it holds before it holds it: an ``.npy`` header inside an ``.npz``
declares its array's shape and dtype, an HDF5 dataset its shape and dtype, a zip member its
uncompressed size, a raster its width, height and sample type. A small file can declare a huge
array (a *zip bomb*: a few kilobytes of deflate that decompress to terabytes, or an HDF5 dataset
declared 10^6 x 10^6 with no data written). The readers check the declaration against
:data:`MAX_ARRAY_BYTES` first and refuse with one line (:class:`~ssc_edge.errors.SceneReadError`)
instead of running out of memory.

The limit
---------
:data:`MAX_ARRAY_BYTES` is the largest legitimate array of a Sentinel-2 scene: a full tile's
(10980 x 10980 pixels at 10 m) six sharpened bands in float64, the largest a reference ``Xm_im``
or an ``(H, W, 6)`` estimate can be: 6 x 10980^2 x 8 bytes = 5.79 GB. Anything larger is not a
scene ssc-edge can have written or been meant to read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence

import numpy as np

from ..errors import SceneReadError

__all__ = ["TILE_SIDE", "MAX_ARRAY_BYTES", "MAX_COMPRESSION_RATIO", "check_array_size", "check_zip_member"]

#: Side of a full Sentinel-2 tile at 10 m, pixels (109.8 km).
TILE_SIDE = 10980

#: Largest array a reader accepts, bytes: a full tile's six bands in float64 (5.79 GB; see module notes).
MAX_ARRAY_BYTES = 6 * TILE_SIDE * TILE_SIDE * 8

#: Largest uncompressed / compressed size ratio of a SAFE zip's band member. JPEG 2000 files do not
#: compress further (a real product's members are about 1:1); a zip bomb's are 1000:1.
MAX_COMPRESSION_RATIO = 100


def _gigabytes(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_array_size(shape: Sequence[int], dtype: np.dtype | str, *, where: str) -> int:
    """Refuse an array whose declared size exceeds :data:`MAX_ARRAY_BYTES`; return its size in bytes.

    Parameters
    ----------
    shape : sequence of int
        Declared shape, any rank.
    dtype : numpy dtype or str
        Declared sample type.
    where : str
        What errors name: ``"FILE: array NAME"``.

    Raises
    ------
    SceneReadError
        Negative dimensions, or more than :data:`MAX_ARRAY_BYTES` bytes.
    """
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
    """Refuse a zip member whose declared uncompressed size (or compression ratio) is too large.

    Parameters
    ----------
    info : zipfile.ZipInfo
        The member, from the archive's central directory (nothing is decompressed).
    where : str
        The archive, named in errors.
    max_bytes : int, optional
        Largest uncompressed size, bytes; default :data:`MAX_ARRAY_BYTES`.
    max_ratio : float, optional
        Largest ``file_size / compress_size``; None: not checked.

    Raises
    ------
    SceneReadError
    """
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
