"""Real Sentinel-2 products assembled for tests from ``../shared/data/real`` (see its README).

- :func:`crop_folder`: the real L1C granule crop, its JP2 band files as in ``IMG_DATA``.
- :func:`build_real_safe`: a SAFE folder built in a temporary folder from the real L2A metadata
  (``S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454``: baseline 04.00,
  ``BOA_ADD_OFFSET`` -1000, ``BOA_QUANTIFICATION_VALUE`` 10000) with the crop's pixels, + 1000 DN,
  written as lossless JPEG 2000 at the paths the metadata names. Read back, it must give the
  crop's own values. ``with_bands=False`` builds the product as published (``TREE.txt``): its
  10 m and 20 m band files are absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, GSD

CROP = "l1c_T31TDH_20150726_crop"
CROP_PREFIX = "T31TDH_20150726T105026"
PRODUCT = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"
GRANULE = "L2A_T29UNU_A038058_20221005T115407"
L2A_PREFIX = "T29UNU_20221005T115411"
OFFSET_DN = 1000  # the product's BOA_ADD_OFFSET is -1000


def crop_folder(shared_data: Path) -> Path:
    """The real L1C crop's JP2 band folder (300 x 300 px at 10 m)."""
    return shared_data / "real" / CROP


def crop_band(shared_data: Path, band: str) -> np.ndarray:
    """One band of the real crop as stored (uint16 DN = reflectance x 10000, baseline 02.04)."""
    import rasterio

    with rasterio.open(crop_folder(shared_data) / f"{CROP_PREFIX}_{band}.jp2") as dataset:
        return dataset.read(1)


def write_lossless_jp2(path: Path, dn: np.ndarray, like: Path) -> None:
    """Write ``dn`` (uint16) as lossless JPEG 2000 with the georeferencing of ``like``."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(like) as src:
        crs, transform = src.crs, src.transform
    profile = dict(driver="JP2OpenJPEG", width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16",
                   crs=crs, transform=transform, QUALITY=100, REVERSIBLE="YES")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(dn, 1)


def build_real_safe(shared_data: Path, dest: Path, *, with_bands: bool = True, bands=None, edit=None) -> Path:
    """Assemble the real L2A product under ``dest``; return the ``.SAFE`` folder.

    Parameters
    ----------
    with_bands : bool
        Write the 10 m and 20 m band files (the crop + 1000 DN). False: the product as published,
        every file of ``TREE.txt`` present (as empty placeholders) but no 10 m/20 m band file.
    bands : iterable of str, optional
        Write only these band files (default: the 10 used ones).
    edit : callable, optional
        ``edit(band, dn) -> dn``: changes a band's stored DN (its own grid) before it is written,
        e.g. a no-data wedge (DN 0).
    """
    metadata = shared_data / "real" / "safe_metadata" / PRODUCT
    product = dest / f"{PRODUCT}.SAFE"
    product.mkdir(parents=True)
    shutil.copy(metadata / "MTD_MSIL2A.xml", product / "MTD_MSIL2A.xml")
    shutil.copy(metadata / "manifest.safe", product / "manifest.safe")
    granule = product / "GRANULE" / GRANULE
    granule.mkdir(parents=True)
    shutil.copy(metadata / "MTD_TL.xml", granule / "MTD_TL.xml")
    if not with_bands:
        for line in (metadata / "TREE.txt").read_text().splitlines():
            relative = line.strip().removeprefix("./")
            if relative and "." in Path(relative).name and not (product / relative).exists():
                (product / relative).parent.mkdir(parents=True, exist_ok=True)
                (product / relative).touch()
        return product
    for band in bands or (FINE_BANDS + COARSE_BANDS):
        res = GSD[band]
        source = crop_folder(shared_data) / f"{CROP_PREFIX}_{band}.jp2"
        dn = crop_band(shared_data, band).astype(np.uint32) + OFFSET_DN
        if edit is not None:
            dn = edit(band, dn)
        target = granule / "IMG_DATA" / f"R{res}m" / f"{L2A_PREFIX}_{band}_{res}m.jp2"
        write_lossless_jp2(target, dn.astype(np.uint16), source)
    return product
