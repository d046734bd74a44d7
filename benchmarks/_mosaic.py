"""A scene of any size made of real Sentinel-2 texture: the scenes of ../shared/data mirrored and tiled.

:class:`MosaicSource` is a band source (``shape``, ``read(band, tile)``: the runtime's ``BandReader``) that
computes any window on demand, so a 10980 x 10980 tile never has to be in memory. The fine grid is cut into
``block`` x ``block`` squares; square ``(i, j)`` shows texture ``(i + 2 j) mod 4`` of four real scenes (the full
Coastal scene, the real L1C crop, the Reykjavik and Coastal RR cells), each extended by mirroring (period twice
its side, so the texture is continuous inside a square). The 20 m bands use the same mirror on their own grid,
so they stay the observed 20 m bands of the same ground. An optional no-data wedge (0 DN in every band) covers
the lower-left corner, as outside the swath on edge-of-swath tiles.

With ``sixty=True`` the source also has the 60 m bands (B01, B09), mirrored on their own grid the same way; only
the three scenes with real 60 m bands are used then (the Reykjavik cell's B01/B09 are zero placeholders), and
``block`` must be a multiple of 6 so that a square's edge falls on the 60 m grid too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.bandset import band_ratio
from ssc_edge.tiling import Tile

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_textures(data: Path = DATA, *, sixty: bool = False) -> list[dict[str, np.ndarray]]:
    """The fine and 20 m bands of four real scenes, float32 DN (``sixty``: and the 60 m bands, of the three
    scenes that have real ones)."""
    from ssc_edge.io import read_scene

    paths = [
        data / "CoastalA_cell.mat",
        data / "real" / "l1c_T31TDH_20150726_crop",
        data / "reykjavik_cell_RR.mat",
        data / "coastalA_cell_RR.mat",
    ]
    bands = FINE_BANDS + COARSE_BANDS + (VERY_COARSE_BANDS if sixty else ())
    textures = []
    for path in paths:
        try:
            scene = read_scene(path)
        except Exception:  # a band folder needs the geo extra; skip it rather than fail the benchmark
            continue
        if not all(b in scene.bands and np.any(scene.bands[b]) for b in bands):
            continue
        textures.append({b: np.asarray(scene.bands[b], np.float32) for b in bands})
    return textures


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    m = index % (2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


class MosaicSource:
    """A ``size`` x ``size`` band source of mirrored real texture (see the module notes).

    Parameters
    ----------
    size : int
        Side of the fine (10 m) grid, pixels; even.
    block : int
        Side of the squares of one texture, fine pixels; even.
    wedge : float
        Fraction of the scene's side the no-data wedge spans along the left and bottom edges (0: none).
    """

    def __init__(self, size: int, *, block: int = 1024, wedge: float = 0.0, textures=None, sixty: bool = False) -> None:
        if sixty and (block % 6 or size % 6):
            raise ValueError(f"with the 60 m bands, block ({block}) and size ({size}) must be multiples of 6")
        self.shape = (int(size), int(size))
        self.block, self.wedge = int(block), float(wedge)
        self.textures = textures if textures is not None else real_textures(sixty=sixty)
        if not self.textures:
            raise FileNotFoundError(f"no real scene to take texture from under {DATA} (../shared/data beside the repo)")
        self.bands = FINE_BANDS + COARSE_BANDS + (VERY_COARSE_BANDS if sixty else ())
        self.source = None
        self.name = f"mosaic{size}"

    def read(self, band: str, tile: Tile) -> np.ndarray:
        """(h, w) float32 DN of ``tile`` on ``band``'s own grid."""
        factor = band_ratio(band)
        block = self.block // factor
        rows = np.arange(tile.row, tile.row + tile.height)
        cols = np.arange(tile.col, tile.col + tile.width)
        which = ((rows // block)[:, None] + 2 * (cols // block)[None, :]) % len(self.textures)
        out = np.empty((tile.height, tile.width), np.float32)
        for k, texture in enumerate(self.textures):
            sel = which == k
            if not sel.any():
                continue
            array = texture[band]
            rr = _mirror(rows, array.shape[0])[:, None]
            cc = _mirror(cols, array.shape[1])[None, :]
            out[sel] = np.broadcast_to(array[rr, cc], sel.shape)[sel]
        if self.wedge > 0:
            n = self.shape[0] / factor
            # lower-left triangle: below the line from (row (1 - wedge) n, col 0) to (row n, col wedge n)
            outside = rows[:, None] - (1 - self.wedge) * n > cols[None, :]
            out[outside] = 0.0
        return out
