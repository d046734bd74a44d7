"""Import TensorFlow once, without the lines its C++ runtime prints to stderr at import.

On CPUs where TensorFlow turns oneDNN on by itself (AVX-512), importing it prints absl and oneDNN notices straight
to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, ahead of a user's one-line error or progress display.
Python's logging cannot reach a C library's writes to fd 2, so fd 2 is pointed at the null device for the import
only; errors still surface as Python exceptions, with their messages.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["tensorflow"]


def tensorflow() -> ModuleType:
    """The ``tensorflow`` module, imported quietly the first time (see the module docstring)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return tf
