"""The ssc-edge exception tree.

Every error a user can cause (a bad file, a bad option, a missing provider) is an
:class:`SscEdgeError`. The CLI turns these into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback. Each subclass also inherits the
builtin that a caller would expect (``ValueError`` for bad content, ``OSError`` for
files that cannot be read or written), following ``rasterio.errors``.
"""

from __future__ import annotations

__all__ = [
    "SscEdgeError",
    "SceneError",
    "SceneReadError",
    "OutputError",
    "ModelError",
    "ProviderError",
    "OptionError",
    "check_positive",
]


class SscEdgeError(Exception):
    """Base class of every error a user of ssc-edge can cause."""


class SceneError(SscEdgeError, ValueError):
    """A scene is readable but its content is invalid (missing band, bad size, NaN...)."""


class SceneReadError(SscEdgeError, OSError):
    """A scene or estimate file cannot be read: missing, corrupt or of unknown layout."""


class OutputError(SscEdgeError, OSError):
    """An output cannot be written: it exists, its folder is not writable, the disk is full."""


class ModelError(SscEdgeError, ValueError):
    """A model file is unusable: not ONNX, no ssc-edge metadata, wrong inputs."""


class ProviderError(SscEdgeError, RuntimeError):
    """An onnxruntime execution provider was asked for but is not available."""


class OptionError(SscEdgeError, ValueError):
    """An option value is out of range or inconsistent with the input."""


def check_positive(value: object, what: str, *, zero: bool = False) -> None:
    """Raise :class:`OptionError` unless ``value`` is an integer (not a bool) >= 1 (>= 0 with ``zero``)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (0 if zero else 1):
        raise OptionError(f"{what} must be a {'non-negative' if zero else 'positive'} integer, got {value!r}")
