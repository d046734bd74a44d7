"""``ssc-edge info SCENE``: what a scene holds (bands, sizes, GSDs, value ranges, reference, georef, identity).

The scene is opened once (:func:`ssc_edge.io.sources.open_band_source`) and summarised strip by strip
(:func:`ssc_edge.io.sources.describe_source`): memory stays small for a full 10980 x 10980 tile, and the
value ranges leave no-data out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..bands import VERY_COARSE_BANDS
from ..errors import SceneError
from ..registration import estimate_scene_registration

#: The registration estimates shown, by ratio: (summary key, what the line of a failed estimate names).
_REGISTRATIONS = {2: ("registration", "registration"), 6: ("registration_60m", "registration of the 60 m bands")}


def _text(summary: dict) -> str:
    height, width = summary["shape"]
    lines = [
        f"{summary['source']}: fine grid {height}x{width} px at {summary['fine_pixel_size']:g} m",
        f"{'band':<5} {'size':>9} {'GSD (m)':>8} {'min (DN)':>10} {'max (DN)':>10} {'mean (DN)':>10} {'no-data':>8}",
    ]
    for name, band in summary["bands"].items():
        size = "x".join(map(str, band["shape"]))
        stats = " ".join("-".rjust(10) if band[k] is None else f"{band[k]:>10.1f}" for k in ("min", "max", "mean"))
        nodata = f"{100 * band['nodata'] / (band['shape'][0] * band['shape'][1]):.1f}%"
        lines.append(f"{name:<5} {size:>9} {band['gsd']:>8g} {stats} {nodata:>8}")
    reference = summary["reference"]
    if reference is None:
        lines.append("reference: none")
    else:
        size = "x".join(map(str, reference["shape"]))
        lines.append(f"reference: {size} (DN {reference['min']:.1f} to {reference['max']:.1f})")
    georef = summary["georef"]
    if georef is None:
        lines.append("georeferencing: none")
    else:
        crs = georef["crs"] if len(georef["crs"]) <= 60 else georef["crs"][:57] + "..."
        lines.append(f"georeferencing: transform {tuple(georef['transform'])}, CRS {crs}")
    lines.append(f"format: {summary['format']}; identity (a model's scene_sha256): {summary['identity']}")
    return "\n".join(lines)


def info_command(
    scene: Annotated[
        Path,
        typer.Argument(
            help="Scene: a SAFE folder or .zip, a folder of band rasters named by band (JP2, GeoTIFF), "
            "a multi-band GeoTIFF, MATLAB .mat (v5 or v7.3) or .npz.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    registration: Annotated[
        bool,
        typer.Option(
            "--registration/--no-registration",
            help="Estimate each 20 m and 60 m band's offset against the 10 m grid and its relative blur "
            "(central crop of at most 2048x2048 px; a few seconds).",
        ),
    ] = True,
) -> None:
    """Show a scene's bands, sizes, ground sampling distances, value ranges (no-data left out), reference and
    georeferencing."""
    from ..io.sources import describe_source, open_band_source

    lines: list[str] = []
    with open_band_source(scene) as source:
        summary = describe_source(source)
        ratios = (2, 6) if any(band in getattr(source, "bands", ()) for band in VERY_COARSE_BANDS) else (2,)
        for ratio in ratios if registration else ():
            key, what = _REGISTRATIONS[ratio]
            try:
                estimate = estimate_scene_registration(source, ratio=ratio)
            except SceneError as exc:  # too small, flat or placeholders (Reykjavik): the rest of the summary stands
                summary[key] = {"error": str(exc)}
                lines.append(f"{what}: not estimated ({exc})")
            else:
                summary[key] = estimate.to_dict()
                lines += [f"registration of the {10 * ratio} m bands (estimated from the scene, 10 m pixels):",
                          *estimate.lines()]  # fmt: skip
    typer.echo(json.dumps(summary, indent=2) if as_json else "\n".join([_text(summary), *lines]))
