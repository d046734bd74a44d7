"""Progress reporting without printing from the library.

Long library functions (training, tiled inference, benchmarks) take a ``progress`` argument:
any callable ``progress(done, total, message)``. The CLI passes a :class:`TerminalProgress`
(or nothing under ``--quiet``); library users pass their own or ``None``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = ["ProgressCallback", "TerminalProgress", "report", "stage"]


class ProgressCallback(Protocol):
    """Called after each unit of work: ``done`` of ``total`` units, with a short status text."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, message)


def stage(progress: ProgressCallback | None, name: str) -> ProgressCallback | None:
    """``progress`` with every message prefixed by ``name`` (``"held-out fit: loss ..."``), or None.

    For a library function that runs a second counted job on the caller's callback (the report's
    held-out fit after the model's own fit), so that its lines say which job they count.
    """
    if progress is None:
        return None

    def staged(done: int, total: int, message: str = "") -> None:
        progress(done, total, f"{name}: {message}" if message else name)

    return staged


class TerminalProgress:
    """A one-line progress bar on stderr; on a non-terminal, one line every ``interval`` seconds.

    One instance may count several runs in turn (a fit, then the report's held-out fit): a call after
    one that reached its total, or whose ``done`` is below the previous call's, starts a new run, whose
    elapsed time and ETA count from its own first call (ETA ``?`` until its second), not from the first
    run's start.

    Parameters
    ----------
    label : str
        What is being counted ("epoch", "tile", "run").
    stream : text stream, default ``sys.stderr``
    interval : float
        Seconds between lines when ``stream`` is not a terminal.
    clock : callable, default ``time.perf_counter``
        Seconds, monotonic.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self._clock = clock
        self._start = clock()  # when the current run's count was 0 (first run: construction)
        self._start_done = 0  # the count at self._start
        self._previous = 0  # the last call's done
        self._finished = False  # the last call completed its run
        self._last = -float("inf")
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = self._clock()
        if done < self._previous or self._finished:  # a new run starts on this call
            self._start, self._start_done, self._last = now, done, -float("inf")
        finished = done >= total
        self._previous, self._finished = done, finished
        if not self._tty and not finished and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._start
        counted = done - self._start_done
        eta = elapsed / counted * (total - done) if counted > 0 else math.nan
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        eta_text = f"{eta:5.1f}s" if math.isfinite(eta) else "    ?"
        line = f"{self.label} {done}/{total} [{bar}] {elapsed:6.1f}s eta {eta_text} {message}"
        if self._tty:
            self.stream.write("\r" + line[:160].ljust(80) + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
