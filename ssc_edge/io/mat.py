"""MATLAB scene files: v5 (scipy.io) and v7.3 (HDF5, h5py), two layouts.

- *cell* layout (SSC-CNN data sets): ``Yim``, 12 cells in ``bands.ALL_BANDS`` order, and an
  optional reference ``Xm_im`` (H x W x 6, ``COARSE_BANDS`` order).
- *grouped* layout (DSen2 test scenes): ``im10`` (B02, B03, B04, B08), ``im20`` (B05, B06, B07,
  B8A, B11, B12), optional ``im60`` (B01, B09); optional reference ``Xm_im`` as in the cell
  layout. Each group is a MATLAB array of H x W x bands, as DSen2 publishes it (HDF5 stores that
  as (bands, W, H)), or of bands x H x W. The band axis is the one whose length is the group's
  band count (4, 6 or 2); a group where both the first and the last axis have that length is
  refused as ambiguous.

HDF5 stores MATLAB arrays column-major, so every array read with h5py is transposed to recover
MATLAB's index order (see ``../shared/data/README.md``).

Sizes are added up for the whole file before anything is read (:class:`ssc_edge.io.limits.ReadBudget`): in a
v7.3 file each variable read and every dataset its cells refer to, once per reference (a cell of 3000
references to one 32 MB dataset is 96 GB); in a v5 file every variable (a compressed one is inflated once in
4 MB chunks and counted, never held).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ..errors import SceneError, SceneReadError
from ..scene import GeoReference, Scene
from . import limits
from .limits import ReadBudget

__all__ = ["is_hdf5", "read_mat_arrays", "read_mat_scene", "write_mat"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_GROUPS = {"im10": FINE_BANDS, "im20": COARSE_BANDS, "im60": VERY_COARSE_BANDS}

#: The variables a scene is read from (cell layout, grouped layout, reference, georeference).
_SCENE_VARIABLES = ("Yim", *_GROUPS, "Xm_im", "transform", "crs")


def is_hdf5(path: Path) -> bool:
    """True if ``path`` holds an HDF5 superblock at offset 0 or 512 (MATLAB v7.3 puts it at 512)."""
    with open(path, "rb") as f:
        head = f.read(520)
    return head[:8] == _HDF5_SIGNATURE or head[512:520] == _HDF5_SIGNATURE


def _h5_value(h5file, item) -> object:
    """Convert one HDF5 dataset written by MATLAB into numpy, following cell references."""
    import h5py

    data = item[()]
    matlab_class = item.attrs.get("MATLAB_class", b"")
    matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
    if matlab_class == "cell" or (isinstance(data, np.ndarray) and data.dtype == h5py.ref_dtype):
        return [_h5_value(h5file, h5file[ref]) for ref in np.asarray(data).ravel(order="F")]
    if matlab_class == "char" and isinstance(data, np.ndarray):  # UTF-16 code units, column-major
        return np.array("".join(map(chr, data.T.ravel())))
    if isinstance(data, np.ndarray) and data.ndim >= 2:
        return data.T  # column-major storage: reverse the axes to get MATLAB's order
    return data


def _read_errors() -> tuple[type[BaseException], ...]:
    """What h5py and scipy.io raise for a corrupt file (zlib.error and MatReadError are not OSError/ValueError)."""
    from scipy.io.matlab import MatReadError

    return (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, NotImplementedError, RuntimeError,
            OverflowError, zlib.error, MatReadError)  # fmt: skip


#: MAT-file v5 data type of a compressed top-level variable (The MathWorks, "MAT-File Format", 2023, table 1-1).
_MI_COMPRESSED = 15
#: Bytes inflated at a time when a compressed v5 variable is measured.
_INFLATE_CHUNK = 1 << 22


def _h5_budget(h5, item, name: str, budget: ReadBudget, *, as_float32: bool, depth: int = 0) -> None:
    """Add one HDF5 dataset to the file's budget, and every dataset its references point to, once per reference."""
    import h5py

    if item.shape is None:  # an empty dataspace
        return
    if h5py.check_dtype(ref=item.dtype) is None:
        budget.add(item.shape, item.dtype, what=f"dataset {name}", as_float32=as_float32)
        return
    budget.add(item.shape, item.dtype, what=f"dataset {name}")
    if depth:
        raise SceneReadError(f"{budget.where}: dataset {name} is a cell inside a cell, not a scene layout")
    for index, ref in enumerate(np.asarray(item[()]).ravel(order="F"), start=1):
        try:
            target = h5[ref]
        except (ValueError, KeyError, OSError, RuntimeError):
            raise SceneReadError(f"{budget.where}: dataset {name} cell {index} refers to nothing") from None
        if not isinstance(target, h5py.Dataset):
            raise SceneReadError(f"{budget.where}: dataset {name} cell {index} refers to a group, not an array")
        _h5_budget(h5, target, f"{name}{{{index}}}", budget, as_float32=as_float32, depth=depth + 1)


def _v5_budget(path: Path, budget: ReadBudget) -> None:
    """Add every top-level variable of a v5 file to the budget, from its tag; a compressed one is inflated in
    4 MB chunks and counted (memory: one chunk), so a zip bomb stops at the limit."""
    with open(path, "rb") as f:
        header = f.read(128)
        endian = "<" if header[126:128] == b"IM" else ">"
        while len(tag := f.read(8)) == 8:
            mdtype, nbytes = struct.unpack(endian + "II", tag)
            if mdtype >> 16:  # small data element: 4 bytes of data in the tag itself
                continue
            name = f"variable at byte {f.tell() - 8}"
            if mdtype == _MI_COMPRESSED:
                size = _inflated_size(f, nbytes)
            else:
                size = nbytes
                f.seek(nbytes, 1)
            if size > limits.MAX_ARRAY_BYTES:
                raise SceneReadError(
                    f"{path}: {name}: holds more than {limits.MAX_ARRAY_BYTES / 1e9:.3g} GB"
                    f"{' once inflated' if mdtype == _MI_COMPRESSED else ''}, more than a full Sentinel-2 tile "
                    "can take; refused before reading"
                )
            budget.add((size,), np.uint8, what=name)


def _inflated_size(f, nbytes: int) -> int:
    """Inflate the next ``nbytes`` of ``f`` (a zlib stream) in chunks; its size, stopping past the limit."""
    inflate = zlib.decompressobj()
    total, remaining = 0, nbytes
    while remaining > 0 and (chunk := f.read(min(remaining, 1 << 20))):
        remaining -= len(chunk)
        data = inflate.decompress(chunk, _INFLATE_CHUNK)
        while True:
            total += len(data)
            if total > limits.MAX_ARRAY_BYTES or not inflate.unconsumed_tail:
                break
            data = inflate.decompress(inflate.unconsumed_tail, _INFLATE_CHUNK)
        if total > limits.MAX_ARRAY_BYTES:
            break
    return total


def read_mat_arrays(path: Path, *, names: tuple[str, ...] | None = None, as_float32: bool = False) -> dict[str, object]:
    """Read the top-level variables ``names`` (all by default) of a MATLAB file (v5 or v7.3).

    Cell arrays come back as lists in MATLAB linear (column-major) order; numeric arrays in MATLAB's index
    order. Sizes are checked first (module notes; ``as_float32``: a float32 copy of each numeric array is
    counted too). Raises :class:`SceneReadError` for a file neither reader accepts or one over the limits.
    """
    path = Path(path)
    budget = ReadBudget(str(path))
    read_errors = _read_errors()
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as h5:
                top = [k for k in h5 if not k.startswith("#") and isinstance(h5[k], h5py.Dataset)]
                chosen = [k for k in top if names is None or k in names]
                for key in chosen:
                    _h5_budget(h5, h5[key], key, budget, as_float32=as_float32)
                return {k: _h5_value(h5, h5[k]) for k in chosen}
        from scipy import io as sio

        _v5_budget(path, budget)
        raw = sio.loadmat(path, variable_names=names)
    except SceneReadError:
        raise
    except MemoryError:
        raise SceneReadError(
            f"{path}: not enough memory to read the MATLAB file ({budget.total / 1e9:.3g} GB)"
        ) from None
    except read_errors as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise SceneReadError(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {detail})") from None
    out: dict[str, object] = {}
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype == object:
            value = [np.asarray(v) for v in value.ravel(order="F")]
        out[key] = value
    return out


def _variable_names(path: Path) -> list[str]:
    """Names of a MATLAB file's top-level variables, none read (for the message of an unknown layout)."""
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as h5:
                return sorted(k for k in h5 if not k.startswith("#"))
        from scipy import io as sio

        return sorted(name for name, _, _ in sio.whosmat(path))
    except _read_errors():
        return []


def _group_bands_first(stack: np.ndarray, names: tuple[str, ...], where: str) -> np.ndarray:
    """A grouped-layout array as (bands, H, W): the band axis is the first or last one of length ``len(names)``."""
    count = len(names)
    if stack.ndim == 2 and count == 1:
        return stack[None]
    shape = "x".join(map(str, stack.shape))
    first = stack.ndim == 3 and stack.shape[0] == count
    last = stack.ndim == 3 and stack.shape[2] == count
    if first and last:
        raise SceneError(
            f"{where} is {shape}: ambiguous, both the first and the last axis could hold the {count} bands "
            f"{', '.join(names)}; store it as H x W x {count}"
        )
    if not (first or last):
        raise SceneError(
            f"{where} must be H x W x {count} (or {count} x H x W) for bands {', '.join(names)}, got {shape}"
        )
    return np.moveaxis(stack, -1, 0) if last else stack


def read_mat_scene(path: Path) -> Scene:
    """Read a MATLAB scene file in the cell or grouped layout as a :class:`Scene` of float32 DN.

    ``fine_pixel_size`` is 20 m with a reference ``Xm_im`` (an RR file), else 10; all-zero 60 m placeholders
    are dropped; ``georef`` comes from ``transform`` and ``crs`` variables (what ``write_result`` stores).
    """
    path = Path(path)
    arrays = read_mat_arrays(path, names=_SCENE_VARIABLES, as_float32=True)
    where = f"{path}: "
    bands: dict[str, np.ndarray] = {}
    if "Yim" in arrays:
        cells = arrays["Yim"]
        if not isinstance(cells, list) or len(cells) != len(ALL_BANDS):
            count = len(cells) if isinstance(cells, list) else "a non-cell"
            raise SceneError(f"{where}Yim must be a cell array of {len(ALL_BANDS)} bands, got {count}")
        for name, cell in zip(ALL_BANDS, cells, strict=True):
            array = np.asarray(cell)
            if array.dtype == object:
                raise SceneError(f"{where}Yim band {name} is not a numeric array")
            bands[name] = np.squeeze(array) if array.ndim > 2 else array
    elif "im10" in arrays and "im20" in arrays:
        for group, names in _GROUPS.items():
            if group not in arrays:
                continue
            stack = _group_bands_first(np.asarray(arrays[group]), names, f"{where}{group}")
            bands.update(zip(names, stack, strict=True))
    else:
        found = ", ".join(_variable_names(path)) or "nothing"
        raise SceneReadError(f"{where}unknown MATLAB layout: expected Yim (cell) or im10/im20 (grouped), found {found}")
    reference = arrays.get("Xm_im")
    fine_pixel_size = 20.0 if reference is not None else 10.0
    georef = GeoReference.stored(arrays, where=str(path))
    return Scene(bands=bands, reference=reference, fine_pixel_size=fine_pixel_size, georef=georef, source=path,
                 name=path.stem)  # fmt: skip


def write_mat(path: Path, image: np.ndarray, *, name: str = "xpr", extra: dict | None = None) -> None:
    """Write an (H, W, B) array as a MATLAB v5 file under variable ``name`` (``Xm_im`` layout)."""
    from scipy import io as sio

    sio.savemat(path, {name: image, **(extra or {})}, do_compression=True)
