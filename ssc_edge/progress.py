"""Progress reporting without printing from the library.

Long library functions (training, tiled inference, benchmarks) take a ``progress`` argument:
any callable ``progress(done, total, message)``. The CLI passes a :class:`TerminalProgress`
(or nothing under ``--quiet``); library users pass their own or ``None``.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

__all__ = ["ProgressCallback", "TerminalProgress", "report"]


class ProgressCallback(Protocol):
    """Called after each unit of work: ``done`` of ``total`` units, with a short status text."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, message)


class TerminalProgress:
    """A one-line progress bar on stderr; on a non-terminal, one line every ``interval`` seconds.

    Parameters
    ----------
    label : str
        What is being counted ("epoch", "tile", "run").
    stream : text stream, default ``sys.stderr``
    interval : float
        Seconds between lines when ``stream`` is not a terminal.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self._start = time.perf_counter()
        self._last = -float("inf")
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.perf_counter()
        finished = done >= total
        if not self._tty and not finished and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._start
        eta = elapsed / done * (total - done) if done else float("nan")
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        line = f"{self.label} {done}/{total} [{bar}] {elapsed:6.1f}s eta {eta:5.1f}s {message}"
        if self._tty:
            self.stream.write("\r" + line[:160].ljust(80) + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
