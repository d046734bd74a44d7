"""The options of a run as two values: how to run the model(s) and what to write. ``infer`` and ``batch`` share them.

Both are frozen and check themselves when made, so a bad value is one line before any file is opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError, check_positive
from ..io.results import RESULT_DTYPES
from .precision import PRECISIONS
from .providers import PROVIDERS

__all__ = ["DEFAULT_TILE", "RunOptions", "OutputOptions"]

#: Default window side of the sharpener, 10 m pixels.
DEFAULT_TILE = 512


@dataclass(frozen=True)
class RunOptions:
    """How the model(s) run.

    Attributes
    ----------
    provider : str
        ``"auto"`` (TensorRT > CUDA > OpenVINO > CoreML > DirectML > CPU) or a short provider name
        (:mod:`ssc_edge.runtime.providers`); whether it is installed is checked when a session is built.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"} or None
        What the network computes in (:mod:`ssc_edge.runtime.precision`); None: the model as stored.
    threads : int or None
        CPU intra-op threads (None: onnxruntime's choice, one per physical core).
    tile : int
        Window side fed to the network, 10 m pixels (at least ``2 halo + 1`` of the model, checked then).
    batch : int
        Windows per network run.
    prefetch : int
        Batches read ahead by the I/O thread (0: read, run and write in turn).
    """

    provider: str = "auto"
    precision: str | None = "auto"
    threads: int | None = None
    tile: int = DEFAULT_TILE
    batch: int = 1
    prefetch: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not (
            self.provider.lower() in ("auto", *PROVIDERS) or self.provider in PROVIDERS.values()
        ):
            raise OptionError(
                f"unknown execution provider {self.provider!r}; choose auto or one of {', '.join(PROVIDERS)}"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise OptionError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.threads is not None:
            check_positive(self.threads, "threads")
        check_positive(self.tile, "tile")
        check_positive(self.batch, "batch")
        check_positive(self.prefetch, "prefetch", zero=True)

    def sharpener_options(self) -> dict[str, object]:
        """The keywords of :class:`~ssc_edge.runtime.sharpen.Sharpener` these options set."""
        return {"provider": self.provider, "precision": self.precision, "threads": self.threads,
                "tile": int(self.tile), "batch": int(self.batch), "prefetch": int(self.prefetch)}  # fmt: skip


@dataclass(frozen=True)
class OutputOptions:
    """What is written.

    Attributes
    ----------
    dtype : {"float32", "uint16"}
        Samples of the product, DN.
    with_fine : bool
        The complete 10 m product: the 10 m bands as read beside the sharpened ones, canonical band order.
    cog : bool
        A ``.tif`` product is a Cloud-Optimized GeoTIFF (:mod:`ssc_edge.io.cog`); False: a plain tiled GeoTIFF.
    quality : bool
        Compute the no-reference indexes (:mod:`ssc_edge.quality`) window by window while writing.
    force : bool
        Replace existing outputs.
    """

    dtype: str = "float32"
    with_fine: bool = False
    cog: bool = True
    quality: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in RESULT_DTYPES:
            raise OptionError(f"unknown output dtype {self.dtype!r}; choose one of {', '.join(RESULT_DTYPES)}")
        for name in ("with_fine", "cog", "quality", "force"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"{name} must be true or false, got {getattr(self, name)!r}")
