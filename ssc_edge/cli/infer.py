"""``ssc-edge infer``: sharpen a scene with an ONNX model on any onnxruntime execution provider.

::

    ssc-edge infer [MODEL.onnx] [SCENE] -o OUT.(tif|npz|mat) [--provider auto|cpu|cuda|tensorrt|openvino|coreml|dml]
                   [--precision auto|fp32|bf16|fp16|int8]
                   [--tile 512] [--batch N] [--threads N] [--dtype float32|uint16] [--with-fine]
                   [--quicklook out.png] [--no-cog] [--force] [--quiet]

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
from ._common import Force, Quiet, Verbose, echo, progress_for, setup_logging

__all__ = ["register", "split_positionals"]

_PROVIDER_HELP = (
    "Execution provider: auto (TensorRT > CUDA > OpenVINO > CoreML > DirectML > CPU), cpu, cuda, "
    "tensorrt, openvino, coreml or dml."
)


_PRECISION_HELP = (
    "auto (bf16 on a CPU with AMX or AVX512-BF16 when OpenVINO is installed and this model loses <= 0.1 dB in it, "
    "else fp32; says why on stderr), fp32, bf16 (the fp32 model in OpenVINO's bf16 / TensorRT's fp16 mode), "
    "fp16 or int8 (models made by ssc-edge optimize)."
)


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
    provider: Annotated[str, typer.Option("--provider", "-p", help=_PROVIDER_HELP)] = "auto",
    precision: Annotated[str, typer.Option(help=_PRECISION_HELP)] = "auto",
    tile: Annotated[int, typer.Option(help="Tile side fed to the network, 10 m pixels (>= 2 x halo + 1).")] = 512,
    batch: Annotated[int, typer.Option(help="Tiles per network run.")] = 1,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: onnxruntime's choice).", show_default=False)
    ] = None,
    dtype: Annotated[str, typer.Option(help="Output samples: float32 or uint16 DN.")] = "float32",
    with_fine: Annotated[
        bool,
        typer.Option(
            "--with-fine", help="Write the complete 10 m product (10 m bands + sharpened; 12 bands with --model-60m)."
        ),
    ] = False,
    model_60m: Annotated[
        Path | None,
        typer.Option(
            "--model-60m",
            help="Also run this 60 m model (NAME_60m.onnx from fit-and-export --bands all) on the same tiles: "
            "adds B01 and B09; with --with-fine the product has all 12 bands.",
            show_default=False,
        ),
    ] = None,
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
    cog: Annotated[
        bool,
        typer.Option(
            "--cog/--no-cog",
            help="Write a .tif output as a Cloud-Optimized GeoTIFF (512 px tiles, DEFLATE, average overviews; "
            "validates with rio cogeo); --no-cog: a plain tiled GeoTIFF without overviews (faster to write).",
        ),
    ] = True,
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sharpen the 20 m bands of SCENE to 10 m with MODEL (onnxruntime; no TensorFlow)."""
    from ..runtime.infer import sharpen_file

    setup_logging(quiet=quiet, verbose=verbose)
    model_path, scene_path = split_positionals(model, scene)
    result = sharpen_file(
        model_path,
        scene_path,
        output,
        provider=provider,
        tile=tile,
        batch=batch,
        threads=threads,
        dtype=dtype,
        with_fine=with_fine,
        quicklook=quicklook,
        force=force,
        cog=cog,
        demo_size=demo_size,
        model_60m=model_60m,
        progress=progress_for("tile", quiet=quiet),
        full_resolution=quality,
        precision=precision,
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


def register(app: typer.Typer) -> None:
    """Add ``infer`` to ``app``."""
    app.command("infer")(infer_command)
