"""Drawing a bounded sample of training patches from a scene read window by window.

The zero-shot fit trains on ``patch`` x ``patch`` windows of the training grid whose origins lie
on a ``stride`` grid (the released code's ``GenerateCube``). A full Sentinel-2 tile has about
470,000 of them one scale down, far more than a fit needs and than memory holds. This module plans
the windows a scene is read in, tells which patches are valid (no no-data pixel under them or their
kernel margin), and keeps a uniform random sample of at most ``budget`` valid patches while the
windows stream past, in memory set by the budget, not by the scene area.

The sample is defined without reference to the windows: every patch origin gets a random key
(``numpy.random.default_rng(seed)``, one key per origin in row-major order), and the sample is the
``budget`` valid patches with the smallest keys, returned in row-major order of their origins. So
the same patches are drawn whatever the window size, and when a scene has at most ``budget`` valid
patches all of them are kept in the order of :func:`ssc_edge.train.fit.extract_patches`. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import OptionError, check_positive

__all__ = [
    "OriginBlock",
    "PatchReservoir",
    "origin_grid",
    "origin_blocks",
    "patch_keys",
    "valid_origins",
    "block_any",
]


def origin_grid(shape: tuple[int, int], *, patch: int, stride: int) -> tuple[int, int]:
    """Number of patch origins ``(rows, cols)`` on an (h, w) training grid; ``(0, 0)`` if no patch fits."""
    h, w = (int(n) for n in shape)
    if h < patch or w < patch:
        return 0, 0
    return (h - patch) // stride + 1, (w - patch) // stride + 1


@dataclass(frozen=True)
class OriginBlock:
    """A rectangle of patch origins and the training-grid region their patches cover.

    Attributes
    ----------
    rows, cols : (int, int)
        Origin indices ``[start, stop)`` along each axis (origin ``i`` sits at pixel ``i * stride``).
    region : (int, int, int, int)
        ``(row, col, height, width)`` of the training grid, pixels: every patch of the block, extended
        to the grid's bottom/right edge for the last block of a row or column, so that the regions of
        all blocks cover the whole grid (neighbours overlap by ``patch - stride`` pixels).
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    region: tuple[int, int, int, int]


def _axis_blocks(n_origins: int, length: int, *, patch: int, stride: int, per_block: int):
    for start in range(0, n_origins, per_block):
        stop = min(start + per_block, n_origins)
        first = start * stride
        last = length if stop == n_origins else (stop - 1) * stride + patch
        yield (start, stop), (first, last - first)


def origin_blocks(shape: tuple[int, int], *, patch: int, stride: int, window: int) -> Iterator[OriginBlock]:
    """Cut the patch origins of an (h, w) training grid into blocks whose regions are at most about ``window`` px.

    Parameters
    ----------
    shape : (int, int)
        ``(h, w)`` of the training grid, pixels.
    patch, stride : int
        Patch side and origin spacing, pixels.
    window : int
        Target side of a block's region, pixels (a block holds ``max(1, (window - patch) // stride + 1)``
        origins a side).

    Yields
    ------
    OriginBlock
        Row-major.
    """
    if window < 1:
        raise OptionError(f"window must be a positive number of pixels, got {window}")
    n_rows, n_cols = origin_grid(shape, patch=patch, stride=stride)
    per = max(1, (window - patch) // stride + 1)
    rows = list(_axis_blocks(n_rows, int(shape[0]), patch=patch, stride=stride, per_block=per))
    cols = list(_axis_blocks(n_cols, int(shape[1]), patch=patch, stride=stride, per_block=per))
    for r, (r0, rh) in rows:
        for c, (c0, cw) in cols:
            yield OriginBlock(rows=r, cols=c, region=(r0, c0, rh, cw))


def patch_keys(count: int, *, seed: int) -> np.ndarray:
    """One uniform random key per patch origin (row-major), float64; the sample keeps the smallest."""
    return np.random.default_rng([int(seed), 13]).random(int(count))


def block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    """(h, w) bool -> (ceil(h / factor), ceil(w / factor)) bool: True where any pixel of the block is True."""
    if factor == 1:
        return mask
    h, w = mask.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).any(axis=(1, 3))


def valid_origins(nodata: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, patch: int, margin: int) -> np.ndarray:
    """Which patches have no no-data pixel under them or within ``margin`` pixels.

    Parameters
    ----------
    nodata : (h, w) bool ndarray
        No-data pixels of a region of the training grid.
    rows, cols : 1-D int ndarray
        Patch origins, pixels of that region (each patch ``[r, r + patch) x [c, c + patch)`` inside it).
    patch : int
        Patch side, pixels.
    margin : int
        Pixels around each patch that must be valid as well (the footprint is clipped to the region).

    Returns
    -------
    (len(rows), len(cols)) bool ndarray
    """
    h, w = nodata.shape
    table = np.zeros((h + 1, w + 1), dtype=np.int64)  # summed-area table of the no-data count
    np.cumsum(np.cumsum(nodata, axis=0), axis=1, out=table[1:, 1:])
    r0 = np.clip(rows - margin, 0, h)[:, None]
    r1 = np.clip(rows + patch + margin, 0, h)[:, None]
    c0 = np.clip(cols - margin, 0, w)[None, :]
    c1 = np.clip(cols + patch + margin, 0, w)[None, :]
    return (table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]) == 0


class PatchReservoir:
    """Keeps the ``budget`` patches with the smallest keys seen so far, with their pixels.

    Parameters
    ----------
    keys : (N,) float64 ndarray
        One key per patch origin of the whole grid (:func:`patch_keys`), row-major.
    budget : int
        Patches kept at most.
    """

    def __init__(self, keys: np.ndarray, budget: int) -> None:
        check_positive(budget, "the patch budget")
        self.keys, self.budget = keys, int(budget)
        self.index = np.empty(0, dtype=np.int64)
        self.arrays: list[np.ndarray] | None = None
        self.offered = 0

    def threshold(self) -> float:
        """Keys at or above this cannot enter any more (infinite until the reservoir is full)."""
        return float(self.keys[self.index].max()) if len(self.index) >= self.budget else np.inf

    def candidates(self, index: np.ndarray) -> np.ndarray:
        """The subset of ``index`` (global origin indices of valid patches) that may enter; counts them as offered."""
        self.offered += len(index)
        return index[self.keys[index] < self.threshold()]

    def add(self, index: np.ndarray, *arrays: np.ndarray) -> None:
        """Offer patches ``index`` (from :meth:`candidates`) with their pixels, one (n, p, p, C) array per tensor."""
        if len(index) == 0:
            return
        if self.arrays is None:
            self.arrays = [a[:0] for a in arrays]
        index = np.concatenate([self.index, index])
        merged = [np.concatenate([old, new]) for old, new in zip(self.arrays, arrays, strict=True)]
        if len(index) > self.budget:
            keep = np.argpartition(self.keys[index], self.budget - 1)[: self.budget]
            index, merged = index[keep], [m[keep] for m in merged]
        self.index, self.arrays = index, merged

    def result(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(index, arrays)`` of the kept patches in row-major order of their origins."""
        order = np.argsort(self.index, kind="stable")
        return self.index[order], [a[order] for a in (self.arrays or [])]
