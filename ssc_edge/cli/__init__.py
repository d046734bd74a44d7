"""The ``ssc-edge`` command line: parse, call one library function, report.

Each command lives in its own module with a ``register(app)`` function. Library errors
(:class:`ssc_edge.errors.SscEdgeError`) become one line on stderr and exit code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from .. import __version__
from ..errors import SscEdgeError

__all__ = ["app", "main"]

#: Command modules, in the order ``--help`` lists them.
COMMAND_MODULES = ("fit", "infer", "bench", "info", "evaluate", "batch")

app = typer.Typer(
    name="ssc-edge",
    help="Zero-shot Sentinel-2 sharpening (SSC-CNN): fit per scene in TensorFlow, run anywhere with onnxruntime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ssc-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Sharpen Sentinel-2 20 m bands (B5, B6, B7, B8A, B11, B12) to 10 m."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="ssc-edge")
    except SscEdgeError as exc:
        typer.echo(f"ssc-edge: error: {exc}", err=True)
        sys.exit(2)
