"""Options and helpers shared by the CLI commands (the only place that knows about typer)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from ..progress import ProgressCallback, TerminalProgress

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and the final result.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debugging detail.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]

# -- the options infer and batch share (each declared once; ssc_edge.runtime.options holds their values) --------
Provider = Annotated[
    str,
    typer.Option(
        "--provider",
        "-p",
        help="Execution provider: auto (TensorRT > CUDA > OpenVINO > CoreML > DirectML > CPU), cpu, cuda, "
        "tensorrt, openvino, coreml or dml.",
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        help="auto (bf16 on a CPU with AMX or AVX512-BF16 when OpenVINO is installed and the model loses <= 0.1 dB "
        "in it, else fp32; says why on stderr), fp32, bf16 (the fp32 model in OpenVINO's bf16 / TensorRT's fp16 "
        "mode), fp16 or int8 (models made by ssc-edge optimize)."
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        help="CPU threads per model (default: onnxruntime's choice; batch: the cores shared out between the workers).",
        show_default=False,
    ),
]
Tile = Annotated[int, typer.Option(help="Tile side fed to the network, 10 m pixels (>= 2 x halo + 1).")]
Dtype = Annotated[str, typer.Option(help="Output samples: float32 or uint16 DN.")]
WithFine = Annotated[
    bool,
    typer.Option(
        "--with-fine", help="Write the complete 10 m product (10 m bands + sharpened; 12 bands with --model-60m)."
    ),
]
Model60m = Annotated[
    Path | None,
    typer.Option(
        "--model-60m",
        help="Also run this 60 m model (NAME_60m.onnx from fit-and-export --bands all) on the same tiles: "
        "adds B01 and B09; with --with-fine the product has all 12 bands.",
        show_default=False,
    ),
]
Cog = Annotated[
    bool,
    typer.Option(
        "--cog/--no-cog",
        help="Write .tif outputs as Cloud-Optimized GeoTIFFs (512 px tiles, DEFLATE, average overviews; validates "
        "with rio cogeo); --no-cog: plain tiled GeoTIFFs without overviews (faster to write).",
    ),
]


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Route library logging to stderr at WARNING (quiet), INFO (default) or DEBUG (verbose); rasterio's (GDAL's
    messages) only with ``verbose``."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", force=True)
    logging.getLogger("ssc_edge").setLevel(level)
    # GDAL's own error lines (rasterio logs each before raising it): the error reported is the exception, in one
    # line; a damaged file would otherwise print GDAL's lines above it. --verbose keeps them.
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def progress_for(label: str, *, quiet: bool) -> ProgressCallback | None:
    """A stderr progress bar, or None under ``--quiet``."""
    return None if quiet else TerminalProgress(label)


def echo(message: str, *, quiet: bool = False, err: bool = False) -> None:
    """Print a result line unless quiet (``err=True``: to stderr)."""
    if not quiet:
        typer.echo(message, err=err)


def write_json(path: Path | None, document: dict) -> None:
    """Write ``document`` to ``path`` (None: nothing) as indented JSON, atomically (``io.atomic_output``)."""
    from ..io import atomic_output

    if path is not None:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ log lines (set before it is imported; not with ``--verbose``).

    Level 3, not 2: on AVX-512 CPUs grappler logs a failed bf16 fusion (``remapper failed``) as a C++ ERROR
    line on every fit, harmlessly (it falls back); a real failure raises a Python error, which is reported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
