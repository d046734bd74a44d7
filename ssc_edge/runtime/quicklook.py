"""A PNG that shows what sharpening gained: the result beside plain upsampling.

Needs Pillow (the ``quicklook`` extra), imported inside :func:`write_quicklook`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..io import atomic_output

__all__ = ["FALSE_COLOUR", "ZOOM_BAND", "check_pillow", "centre_window", "write_quicklook"]

#: Red, green, blue of the false-colour panels (SWIR-NIR-red edge: soils, vegetation, water apart).
FALSE_COLOUR = ("B12", "B8A", "B05")
#: The band shown enlarged (the coarsest-looking SWIR band gains most).
ZOOM_BAND = "B12"


def check_pillow() -> None:
    """Raise :class:`OptionError` with the install command when Pillow is missing."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise OptionError("--quicklook needs Pillow: pip install 'ssc-edge[quicklook]'") from None


def centre_window(shape: Sequence[int], size: int = 512):
    """The centred (at most ``size`` x ``size``) window of an (H, W) grid that the quicklook shows."""
    from ..tiling import Tile

    h, w = min(int(shape[0]), size), min(int(shape[1]), size)
    return Tile((int(shape[0]) - h) // 2, (int(shape[1]) - w) // 2, h, w)


def _stretch(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scale each channel to 0..255 with the 2nd and 98th percentiles of all images together (valid pixels;
    NaN, the output's no-data, is black)."""
    joined = np.concatenate([im.reshape(-1, im.shape[-1]) for im in images])
    joined = joined[np.isfinite(joined).all(axis=-1)]
    if not len(joined):
        return [np.zeros(im.shape, np.uint8) for im in images]
    low, high = np.percentile(joined, 2, axis=0), np.percentile(joined, 98, axis=0)
    span = np.where(high > low, high - low, 1.0)
    return [(np.nan_to_num(np.clip((im - low) / span, 0, 1)) * 255).astype(np.uint8) for im in images]


def write_quicklook(
    path: Path,
    sharpened: np.ndarray,
    upsampled: np.ndarray,
    *,
    band_names: Sequence[str],
    label: str = "SSC-CNN",
    force: bool = False,
) -> Path:
    """Write a 2 x 2 PNG: false colour (top) and one band enlarged 4x (bottom), upsampled left, sharpened right.

    Parameters
    ----------
    path : Path
        ``.png`` to write (atomically).
    sharpened, upsampled : (h, w, B) ndarray
        The same crop of the sharpened result and of bicubic upsampling, DN, bands ``band_names``.
    band_names : sequence of B str
        Must include :data:`FALSE_COLOUR` and :data:`ZOOM_BAND`.
    label : str
        Caption of the sharpened panels.
    force : bool
        Overwrite ``path``.
    """
    check_pillow()
    from PIL import Image, ImageDraw

    from ..io import check_outputs

    check_outputs([path], force=force)
    names = list(band_names)
    rgb = [names.index(b) for b in FALSE_COLOUR]
    zoom = names.index(ZOOM_BAND)
    colour = _stretch([upsampled[..., rgb], sharpened[..., rgb]])
    h, w = sharpened.shape[:2]
    zh, zw = max(h // 4, 1), max(w // 4, 1)
    r0, c0 = (h - zh) // 2, (w - zw) // 2
    crops = [im[r0 : r0 + zh, c0 : c0 + zw, zoom : zoom + 1] for im in (upsampled, sharpened)]
    grey = [np.repeat(g, 3, axis=-1) for g in _stretch(crops)]
    factor = max(1, 384 // max(h, w))  # small crops are enlarged so a person can see pixels
    h, w = h * factor, w * factor
    panels = [Image.fromarray(p).resize((w, h), Image.NEAREST) for p in (*colour, *grey)]
    sheet = Image.new("RGB", (2 * w + 4, 2 * h + 4), "white")
    captions = [f"{who} {shown}" for shown in ("/".join(FALSE_COLOUR), f"{ZOOM_BAND} x4") for who in ("bicubic", label)]
    draw = ImageDraw.Draw(sheet)
    for i, (panel, caption) in enumerate(zip(panels, captions, strict=True)):
        x, y = (i % 2) * (w + 4), (i // 2) * (h + 4)
        sheet.paste(panel, (x, y))
        draw.text((x + 4, y + 4), caption, fill="yellow")
    with atomic_output(Path(path)) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)
