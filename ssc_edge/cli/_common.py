"""Options and helpers shared by the CLI commands (the only place that knows about typer)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from ..progress import ProgressCallback, TerminalProgress

__all__ = ["Quiet", "Verbose", "Force", "setup_logging", "progress_for", "echo"]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and the final result.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debugging detail.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]


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


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ log lines (set before it is imported; not with ``--verbose``).

    Level 3, not 2: on AVX-512 CPUs grappler logs a failed bf16 fusion (``remapper failed``) as a C++ ERROR
    line on every fit, harmlessly (it falls back); a real failure raises a Python error, which is reported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
