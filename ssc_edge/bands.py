"""Sentinel-2 MSI band names, sampling distances and MTF values: the one place they live.

Band names follow the ESA product convention (``B02``, ``B8A``). The canonical order is
the order of the MATLAB ``Yim`` cells of the SSC-CNN and DSen2 data sets:
``B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12`` (B10, cirrus, is never used).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "ALL_BANDS",
    "FINE_BANDS",
    "COARSE_BANDS",
    "VERY_COARSE_BANDS",
    "GSD",
    "MTF_NYQUIST",
    "band_name_or_none",
    "canonical_band_name",
]

#: All 12 bands in canonical (``Yim``) order.
ALL_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip

#: The 10 m bands, in the order the model receives them.
FINE_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")

#: The 20 m bands SSC-CNN sharpens, in the order of ``Xm_im`` and of every output.
COARSE_BANDS: tuple[str, ...] = ("B05", "B06", "B07", "B8A", "B11", "B12")

#: The 60 m atmospheric bands; read when present, sharpened only by a 60 m model.
VERY_COARSE_BANDS: tuple[str, ...] = ("B01", "B09")

#: Ground sampling distance of each band, metres.
GSD = MappingProxyType(dict(zip(ALL_BANDS, (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 20, 20), strict=True)))

#: Modulation transfer function of each band at its Nyquist frequency (dimensionless),
#: the values used by Nguyen et al. and DSen2 for the Wald-protocol degradation.
MTF_NYQUIST = MappingProxyType(
    dict(zip(ALL_BANDS, (0.32, 0.26, 0.28, 0.24, 0.38, 0.34, 0.34, 0.26, 0.33, 0.26, 0.22, 0.23), strict=True))
)


def canonical_band_name(name: str) -> str:
    """Return the canonical spelling of a band name.

    Accepts ``B2``, ``b02``, ``B02``, ``B8A``, ``b8a`` and names with a product prefix
    such as ``T27WVM_20190610_B05`` (the part after the last underscore is used).

    Raises
    ------
    KeyError
        If the name is not a Sentinel-2 band used here.
    """
    token = name.strip().upper().rsplit("_", 1)[-1]
    if token.startswith("B") and token[1:].isdigit():
        token = f"B{int(token[1:]):02d}"
    if token not in GSD:
        raise KeyError(name)
    return token


def band_name_or_none(name: str) -> str | None:
    """:func:`canonical_band_name` of ``name``, or None where it names no Sentinel-2 band used here."""
    try:
        return canonical_band_name(name)
    except KeyError:
        return None
