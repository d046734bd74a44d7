"""The ``ssc-edge`` command line: parse, call one library function, report.

Each command lives in its own module, as one function; the commands are added to ``app`` here. Library errors
(:class:`ssc_edge.errors.SscEdgeError`) become one line on stderr and exit code 2; any other
exception is a bug and keeps its traceback.

SIGTERM (``kill``, a batch scheduler's time limit, ``docker stop``) is turned into an exit that
unwinds the stack, as Ctrl-C does: every output being written removes its temporary file
(:func:`ssc_edge.io.atomic_output`) and the command exits with 143 (128 + 15) and one line. Worker
processes it started (``batch``'s pool) are terminated first; a second SIGTERM ends it at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Annotated

import typer

from .. import __version__
from ..errors import SscEdgeError
from . import batch, bench, evaluate, fit, infer, info

__all__ = ["app", "main"]

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


# in the order ``--help`` lists them
app.command("fit-and-export")(fit.fit_and_export_command)
app.command("infer")(infer.infer_command)
app.command("bench")(bench.bench_command)
app.command("optimize")(bench.optimize_command)
app.command("info")(info.info_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("batch")(batch.batch_command)


class Terminated(SystemExit):
    """Raised in the main thread by the SIGTERM handler: unwinds like Ctrl-C, exits 128 + signal."""


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM: stop the worker processes this one started (a batch's pool: they stop at once, and the next run
    removes what they were writing), then unwind this one (its outputs' temporary files removed)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    import multiprocessing

    for child in multiprocessing.active_children():
        with contextlib.suppress(OSError):
            child.terminate()
    raise Terminated(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        app(args=argv, prog_name="ssc-edge")
    except SscEdgeError as exc:
        typer.echo(f"ssc-edge: error: {exc}", err=True)
        sys.exit(2)
    except Terminated as exc:
        typer.echo("ssc-edge: terminated (SIGTERM); nothing half-written is left under an output's name", err=True)
        sys.exit(exc.code)
    finally:
        if in_main_thread and signal.getsignal(signal.SIGTERM) in (_terminate, signal.SIG_DFL):
            signal.signal(signal.SIGTERM, previous)
