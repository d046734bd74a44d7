"""Sentinel-2 L1C and L2A SAFE products: the ``.SAFE`` folder or its ``.zip``.

The band files are found through the product metadata (``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``,
whose ``IMAGE_FILE`` entries name every JPEG 2000 file of the granule without its ``.jp2``
extension), and read with rasterio (``/vsizip/`` inside a zip). L2A products keep each band at
its native resolution: the 10 m bands come from ``R10m`` (``_B02_10m``), the 20 m bands from
``R20m`` (``_B05_20m``, ``_B8A_20m``...), the 60 m bands B01 and B09 from ``R60m`` (``_B01_60m``).
The 60 m bands are optional: a product whose metadata lists none, or whose 60 m files are absent,
is read without them (a 20 m model needs only the 10 m and 20 m bands).

Safety
------
Every ``IMAGE_FILE`` must name a file inside the product (no ``..``, no absolute path); the metadata and the
zip members are refused over the limits of :mod:`ssc_edge.io.limits` before they are read. The band files are
opened, checked and read by :class:`ssc_edge.io.sources.RasterBandSource`.

Units
-----
The scene holds *DN-like* values: reflectance x 10000 (float32), after the processing-baseline
radiometric offset (ESA, Sentinel-2 L1C / L2A Product Specification, PSD 14.9; processing
baseline 04.00 and later):

- L1C: ``reflectance = (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE``
- L2A: ``reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE``

Products older than baseline 04.00 have no offset list; the offset is then 0. Negative values
(dark pixels in baseline 04.00+ products) are kept, not clipped.

Nodata
------
Pixels equal to the product's ``NODATA`` special value (0 in every baseline) carry no
measurement. They are set to 0.0 *after* the offset (so they never become -1000) and their count
per band is logged as a warning. A band that is entirely nodata is rejected by :class:`Scene`
("all zeros").
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import numpy as np

from ..bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, GSD, VERY_COARSE_BANDS, band_name_or_none, canonical_band_name
from ..errors import SceneReadError
from .limits import MAX_COMPRESSION_RATIO, MAX_METADATA_BYTES, check_regular_file, check_zip_member

__all__ = ["SafeProduct", "is_safe_product", "looks_like_safe_zip", "read_safe_product"]

logger = logging.getLogger(__name__)

_METADATA_NAMES = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}

#: ``band_id`` of the offset lists, when the product has no Spectral_Information list (PSD 14.9).
_BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

#: A Sentinel-2 product name (``S2A_MSIL2A_...``, ``S2B_MSIL1C_...``): how a damaged zip is still known as a SAFE.
_PRODUCT_NAME = re.compile(r"^S2[A-D]_MSI(L1C|L2A)_", re.IGNORECASE)

_BAND_IN_NAME = re.compile(r"_(B(?:0?\d|1[0-2]|8A))(?:_(\d\d)m)?$", re.IGNORECASE)


@dataclass(frozen=True)
class SafeProduct:
    """What the product metadata says about a SAFE product.

    Attributes
    ----------
    path : Path
        The ``.SAFE`` folder, its ``.zip`` or its metadata XML, as given.
    name : str
        Product name (the ``.SAFE`` folder name without the suffix).
    level : {"L1C", "L2A"}
    baseline : str or None
        ``PROCESSING_BASELINE`` (``"05.09"``), when the metadata states it.
    quantification : float
        ``QUANTIFICATION_VALUE`` (L1C) or ``BOA_QUANTIFICATION_VALUE`` (L2A), DN per unit reflectance.
    offsets : mapping of str to float
        ``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` per band name, DN (0 for products before baseline 04.00).
    nodata : int
        The ``NODATA`` special value, DN (0).
    band_files : mapping of str to str
        Band name to the GDAL path of its JPEG 2000 file (``/vsizip/...`` inside a zip), for the
        bands ssc-edge uses, each at its native resolution: the 10 m and 20 m bands always, the
        60 m bands B01 and B09 when the metadata lists them and their files exist.
    """

    path: Path
    name: str
    level: str
    baseline: str | None
    quantification: float
    offsets: Mapping[str, float]
    nodata: int
    band_files: Mapping[str, str]


def is_safe_product(path: Path) -> bool:
    """True if ``path`` is a ``.SAFE`` folder, a zip holding one, or a product metadata XML.

    Looks only for an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` at the top of the product; never raises.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return any((path / name).is_file() for name in _METADATA_NAMES)
        if path.name in _METADATA_NAMES:
            return path.is_file()
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _zip_metadata_member(archive.namelist()) is not None
    except OSError:
        return False
    return False


def read_safe_product(path: Path) -> SafeProduct:
    """Read a SAFE product's metadata: level, offsets, quantification, nodata and band files.

    Parameters
    ----------
    path : Path
        A ``.SAFE`` folder, a ``.zip`` holding one, or the product's metadata XML.

    Raises
    ------
    SceneReadError
        Not a SAFE product, metadata missing or malformed, a 10 m or 20 m band listed nowhere or
        its file missing, an ``IMAGE_FILE`` outside the product, a zip member too large (see
        :mod:`ssc_edge.io.limits`). A 60 m band whose file is missing is left out (logged).
    """
    path = Path(path)
    xml_bytes, level, root_gdal, name, exists, members = _locate(path)
    try:
        tree = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise SceneReadError(f"{path}: product metadata is not valid XML ({exc})") from None
    elements = [(_local(el.tag), el) for el in tree.iter()]
    quantification = _quantification(elements, level, path)
    offsets = _offsets(elements, level, path)
    nodata = _nodata(elements)
    band_files = _band_files(elements, level, root_gdal, path)
    absent_60m = [band for band in VERY_COARSE_BANDS if band in band_files and not exists(band_files[band])]
    if absent_60m:
        logger.debug("%s: 60 m band file(s) of %s missing; read without them", path, ", ".join(absent_60m))
        band_files = {band: f for band, f in band_files.items() if band not in absent_60m}
    for gdal_path in band_files.values():
        if gdal_path in members:
            check_zip_member(members[gdal_path], where=str(path), max_ratio=MAX_COMPRESSION_RATIO)
    missing = [band for band, gdal_path in band_files.items() if not exists(gdal_path)]
    if missing:
        raise SceneReadError(
            f"{path}: band {missing[0]} file {band_files[missing[0]]} is missing"
            + (f" (and the files of {', '.join(missing[1:])}; an incomplete product)" if missing[1:] else "")
        )
    baseline = next((el.text.strip() for tag, el in elements if tag == "PROCESSING_BASELINE" and el.text), None)
    return SafeProduct(
        path=path, name=name, level=level, baseline=baseline, quantification=quantification,
        offsets=MappingProxyType(offsets), nodata=nodata, band_files=MappingProxyType(band_files),
    )  # fmt: skip


def _local(tag: str) -> str:
    """An XML tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def _zip_metadata_member(names: list[str]) -> str | None:
    """The shallowest ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` member of a zip, at most one folder deep."""
    found = [n for n in names if PurePosixPath(n).name in _METADATA_NAMES and n.count("/") <= 1]
    return min(found, key=lambda n: n.count("/")) if found else None


def _product_name(folder_name: str) -> str:
    return folder_name[: -len(".SAFE")] if folder_name.upper().endswith(".SAFE") else folder_name


def looks_like_safe_zip(path: Path) -> bool:
    """True if ``path`` is named as a zipped SAFE product (``*.SAFE.zip`` or ``S2?_MSIL1C_*.zip`` /
    ``S2?_MSIL2A_*.zip``) or its first zip member lies in a ``.SAFE`` folder, even when the zip itself is
    damaged (truncated: no central directory); never raises."""
    path = Path(path)
    name = path.name
    if name.lower().endswith(".zip") and (name.lower().endswith(".safe.zip") or _PRODUCT_NAME.match(name)):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(30 + 1024)
    except OSError:
        return False
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return False
    length = int.from_bytes(head[26:28], "little")
    first = head[30 : 30 + length].decode("utf-8", "replace")
    return ".SAFE/" in first.upper() or bool(_PRODUCT_NAME.match(first))


def _locate(path: Path) -> tuple[bytes, str, str, str, Callable[[str], bool], dict[str, zipfile.ZipInfo]]:
    """Return (metadata bytes, level, GDAL root of the product, product name, file-exists test, zip members by
    GDAL path (empty for a folder))."""
    if path.is_dir() or path.name in _METADATA_NAMES:
        folder = path if path.is_dir() else path.parent
        candidates = [folder / n for n in _METADATA_NAMES if (folder / n).is_file()]
        if not candidates:
            raise SceneReadError(
                f"{path}: not a Sentinel-2 SAFE product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml in {folder})"
            )
        xml_path = path if path.is_file() else candidates[0]
        size = check_regular_file(xml_path)
        if size > MAX_METADATA_BYTES:
            raise SceneReadError(
                f"{path}: {xml_path.name} is {size / 1e6:.3g} MB, more than the {MAX_METADATA_BYTES / 1e6:.3g} MB a "
                "product's metadata can take; refused before reading"
            )
        try:
            data = xml_path.read_bytes()
        except OSError as exc:
            raise SceneReadError(f"{path}: cannot read {xml_path.name} ({exc.strerror or exc})") from None
        name = _product_name(folder.resolve().name)
        # any entry exists (a FIFO or a folder too: opening the band then refuses it as not a regular file)
        return data, _METADATA_NAMES[xml_path.name], str(folder), name, os.path.lexists, {}
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        if looks_like_safe_zip(path):
            raise SceneReadError(f"{path}: damaged SAFE zip ({exc}); it may be truncated: download it again") from None
        raise SceneReadError(f"{path}: not a Sentinel-2 SAFE product (not a folder or readable zip: {exc})") from None
    with archive:
        names = archive.namelist()
        member = _zip_metadata_member(names)
        if member is None:
            raise SceneReadError(
                f"{path}: not a Sentinel-2 SAFE product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml in the zip)"
            )
        check_zip_member(archive.getinfo(member), where=str(path), max_bytes=MAX_METADATA_BYTES)
        try:
            data = archive.read(member)
        except (OSError, zipfile.BadZipFile, RuntimeError, EOFError, zlib.error) as exc:
            raise SceneReadError(f"{path}: damaged SAFE zip: cannot read {member} ({exc})") from None
        infos = archive.infolist()
    inner = str(PurePosixPath(member).parent)
    root = f"/vsizip/{path.resolve()}" + ("" if inner == "." else f"/{inner}")
    prefix = f"/vsizip/{path.resolve()}/"
    members = {prefix + info.filename: info for info in infos}
    name = _product_name(inner if inner != "." else path.stem)
    level = _METADATA_NAMES[PurePosixPath(member).name]
    return data, level, root, name, members.__contains__, members


def _number(text: str | None, what: str, path: Path) -> float:
    try:
        return float((text or "").strip())
    except ValueError:
        raise SceneReadError(f"{path}: product metadata {what} is {text!r}, not a number") from None


def _quantification(elements, level: str, path: Path) -> float:
    tags = ("QUANTIFICATION_VALUE",) if level == "L1C" else ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
    for tag, el in elements:
        if tag in tags:
            value = _number(el.text, tag, path)
            if not value > 0:
                raise SceneReadError(f"{path}: product metadata {tag} is {value}, must be positive")
            return value
    raise SceneReadError(f"{path}: product metadata has no {tags[0]}")


def _offsets(elements, level: str, path: Path) -> dict[str, float]:
    """Offset per band name; bands by ``band_id`` through Spectral_Information when present."""
    id_to_band = dict(enumerate(_BAND_IDS))
    for tag, el in elements:
        if tag == "Spectral_Information" and el.get("bandId") is not None and el.get("physicalBand"):
            try:
                id_to_band[int(el.get("bandId"))] = canonical_band_name(el.get("physicalBand"))
            except (KeyError, ValueError):
                continue
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    offsets = {band: 0.0 for band in ALL_BANDS}
    for tag, el in elements:
        if tag == offset_tag and el.get("band_id") is not None:
            try:
                band = id_to_band.get(int(el.get("band_id")))
            except ValueError:
                raise SceneReadError(f"{path}: product metadata {tag} band_id is {el.get('band_id')!r}") from None
            if band in offsets:
                offsets[band] = _number(el.text, f"{tag} of band {band}", path)
    return offsets


def _nodata(elements) -> int:
    for tag, el in elements:
        if tag == "Special_Values":
            children = {_local(c.tag): (c.text or "").strip() for c in el}
            if children.get("SPECIAL_VALUE_TEXT", "").upper() == "NODATA":
                try:
                    return int(children.get("SPECIAL_VALUE_INDEX", "0"))
                except ValueError:
                    return 0
    return 0


def _inside_product(relative: str, path: Path) -> str:
    """``relative`` normalised, refused when it names a file outside the product (absolute, or ``..``)."""
    normal = posixpath.normpath(relative.replace("\\", "/"))
    if relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative) or normal.split("/")[0] == "..":
        raise SceneReadError(f"{path}: product metadata IMAGE_FILE {relative!r} points outside the product; refused")
    return normal


def _band_files(elements, level: str, root: str, path: Path) -> dict[str, str]:
    """Band name to GDAL path of its JP2 file, each band at its native resolution (L2A: R20m, R60m).

    The 10 m and 20 m bands are required; the 60 m bands B01 and B09 are added when listed.
    """
    required = FINE_BANDS + COARSE_BANDS
    wanted = required + VERY_COARSE_BANDS
    files: dict[str, str] = {}
    granules = {(el.get("granuleIdentifier") or "") for tag, el in elements if tag == "Granule"}
    if len(granules) > 1:
        raise SceneReadError(f"{path}: product holds {len(granules)} granules; only single-tile products are supported")
    for tag, el in elements:
        if tag not in ("IMAGE_FILE", "IMAGE_FILE_2A") or not el.text:
            continue
        relative = _inside_product(el.text.strip(), path)
        match = _BAND_IN_NAME.search(relative)
        if match is None:
            continue
        band = band_name_or_none(match.group(1))  # None: B10 (cirrus), listed by every L1C, never used here
        resolution = match.group(2)
        if band not in wanted or band in files:
            continue
        if level == "L2A" and resolution is not None and int(resolution) != GSD[band]:
            continue
        suffix = "" if relative.lower().endswith(".jp2") else ".jp2"
        files[band] = f"{root}/{relative}{suffix}"
    if not any(tag in ("IMAGE_FILE", "IMAGE_FILE_2A") for tag, _ in elements):
        raise SceneReadError(f"{path}: product metadata lists no IMAGE_FILE (band files cannot be found)")
    missing = [band for band in required if band not in files]
    if missing:
        raise SceneReadError(f"{path}: product metadata lists no file for band(s) {', '.join(missing)}")
    return {band: files[band] for band in wanted if band in files}


def _to_reflectance_dn(dn: np.ndarray, product: SafeProduct, band: str) -> tuple[np.ndarray, int]:
    """(DN + offset) / quantification x 10000 as float32, nodata pixels 0.0 (see module notes); and their count."""
    nodata = dn == product.nodata
    scale = 10000.0 / product.quantification
    values = dn.astype(np.float32)  # exact for DN < 2**24; float32 keeps a full 10980 x 10980 tile affordable
    values += np.float32(product.offsets[band])
    if scale != 1.0:
        values *= np.float32(scale)
    count = int(np.count_nonzero(nodata))
    if count:
        values[nodata] = 0.0
    return values, count
