"""``ssc-edge infer [MODEL.onnx] [SCENE] -o OUT``: sharpen a scene with an ONNX model on any onnxruntime provider.

SCENE: a SAFE folder or ``.zip``, a folder of JP2 or GeoTIFF band files, a multi-band GeoTIFF, ``.mat`` or
``.npz``. Without MODEL the shipped ``models/demo.onnx`` runs; without SCENE the synthetic demo scene.
A single positional argument ending in ``.onnx`` is the model, anything else the scene.
Imports no TensorFlow; onnxruntime is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from ._common import (
    Cog,
    Dtype,
    Force,
    Model60m,
    Precision,
    Provider,
    Quiet,
    Threads,
    Tile,
    Verbose,
    WithFine,
    echo,
    progress_for,
    setup_logging,
)

__all__ = ["infer_command", "split_positionals"]


def split_positionals(first: Path | None, second: Path | None) -> tuple[Path | None, Path | None]:
    """(model, scene) from ``infer [MODEL.onnx] [SCENE]``."""
    if first is not None and second is not None:
        if first.suffix.lower() != ".onnx" and second.suffix.lower() == ".onnx":
            raise OptionError(f"give the model first: ssc-edge infer {second} {first} -o OUT")
        return first, second
    if first is not None and first.suffix.lower() == ".onnx":
        return first, None
    return None, first


def infer_command(
    model: Annotated[
        Path | None,
        typer.Argument(help="ONNX model (default: the shipped models/demo.onnx).", show_default=False),
    ] = None,
    scene: Annotated[
        Path | None,
        typer.Argument(
            help="Scene: a Sentinel-2 L1C/L2A SAFE folder or its .zip, a folder of band rasters named by band "
            "(JP2 as in a granule's IMG_DATA, or GeoTIFF), a multi-band GeoTIFF, MATLAB .mat or .npz "
            "(default: the synthetic demo scene).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Product to write: .tif (GeoTIFF), .npz or .mat.")
    ] = ...,  # type: ignore[assignment]
    provider: Provider = "auto",
    precision: Precision = "auto",
    tile: Tile = 512,
    batch: Annotated[int, typer.Option(help="Tiles per network run.")] = 1,
    threads: Threads = None,
    dtype: Dtype = "float32",
    with_fine: WithFine = False,
    model_60m: Model60m = None,
    quicklook: Annotated[
        Path | None,
        typer.Option(help="Also write a PNG: the result beside bicubic (needs Pillow).", show_default=False),
    ] = None,
    demo_size: Annotated[int, typer.Option(help="Side of the demo scene when no SCENE is given, pixels.")] = 256,
    quality: Annotated[
        bool,
        typer.Option(
            "--quality/--no-quality",
            help="Compute the no-reference indexes (consistency SRE, D_lambda(K), D_rho, QNR) while writing.",
        ),
    ] = True,
    cog: Cog = True,
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sharpen the 20 m bands of SCENE to 10 m with MODEL (onnxruntime; no TensorFlow)."""
    from ..runtime.infer import sharpen_file
    from ..runtime.options import OutputOptions, RunOptions

    setup_logging(quiet=quiet, verbose=verbose)
    model_path, scene_path = split_positionals(model, scene)
    result = sharpen_file(
        model_path,
        scene_path,
        output,
        run=RunOptions(provider=provider, precision=precision, threads=threads, tile=tile, batch=batch),
        out=OutputOptions(dtype=dtype, with_fine=with_fine, cog=cog, quality=quality, force=force),
        model_60m=model_60m,
        quicklook=quicklook,
        demo_size=demo_size,
        progress=progress_for("tile", quiet=quiet),
    )
    echo(f"provider: {result.provider}", quiet=quiet)
    echo(f"precision: {result.precision} ({result.precision_reason})", quiet=quiet, err=True)
    streamed = ", streamed" if result.streamed else ""
    cog_time = f", COG {result.cog_seconds:.1f} s of it" if result.cog_seconds is not None else ""
    echo(  # the final result: printed even under --quiet
        f"wrote {result.output} ({result.shape[0]}x{result.shape[1]} px, {' '.join(result.band_names)}, {dtype}; "
        f"{result.tiles} tiles{streamed} on {result.provider} in {result.precision}, {result.seconds:.1f} s{cog_time})"
    )
    if result.quicklook is not None:
        echo(f"wrote {result.quicklook}")
    if result.quality is not None:
        ours, bicubic = result.quality["SSC-CNN"], result.quality["bicubic"]
        echo(
            f"against the scene's reference: mean SRE {ours['mean_sre']:.2f} dB, SAM {ours['sam']:.3f} deg "
            f"(bicubic: {bicubic['mean_sre']:.2f} dB, {bicubic['sam']:.3f} deg)",
            quiet=quiet,
        )
    if result.full_resolution is not None:
        fr = result.full_resolution
        kind = "the model's estimated pair" if fr.degradation == "callable" else f"{fr.degradation} degradation"
        echo(
            f"full resolution, no reference ({kind}): consistency SRE "
            f"{fr.consistency_mean_sre:.2f} dB, D_lambda(K) {fr.d_lambda_khan:.4f}, D_rho {fr.d_rho:.4f}, "
            f"QNR {fr.qnr:.4f}",
            quiet=quiet,
        )
