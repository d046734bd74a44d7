"""The model contract: what an ssc-edge ONNX file promises its runtime.

The trainer (``ssc_edge.train``) writes it into the ONNX ``metadata_props``; the runtime
(``ssc_edge.runtime``) reads and checks it before running anything. Nothing else is shared
between the two halves, so this module imports neither TensorFlow nor onnxruntime.

The graph
---------
One input named :data:`INPUT_NAME`, float32, normalised DN (DN / ``scale``):
``(batch, height, width, C_in)`` for ``layout="NHWC"`` or ``(batch, C_in, height, width)`` for
``"NCHW"``; channels are ``input_bands``: for a 20 m model (``ratio`` 2) the six 20 m bands upsampled to the
10 m grid with ``upsampling`` (see :func:`ssc_edge.wald.upsample`), then the four 10 m bands; for a 60 m model
(``ratio`` 6) B01 and B09, then the six 20 m bands, all upsampled to the 10 m grid, then the four 10 m bands.
One output named :data:`OUTPUT_NAME`, float32, the sharpened bands (``output_bands``: B05 B06 B07 B8A B11 B12,
or B01 B09) in the same layout and normalisation; multiply by ``scale`` for DN. Any global residual is
inside the graph. Height and width are free; an output pixel depends only on input pixels
within ``halo`` pixels (the number of 3x3 convolutions on the longest path), which is what
makes overlap tiling exact.

Metadata keys are flat strings; structured values are JSON.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from .bands import COARSE_BANDS, FINE_BANDS, GSD
from .errors import ModelError, SceneError

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "CONTRACT_VERSION",
    "MAX_HALO",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "ModelContract",
    "parse_json",
    "check_scene_size",
]

#: Largest halo a model may declare, 10 m pixels: a receptive field of 2001 px (20 km). SSC-CNN's is 6 to
#: 20 px; a larger value is a corrupt or hostile file (it would make every tile larger than the scene).
MAX_HALO = 1000

INPUT_NAME = "bands"
OUTPUT_NAME = "sharpened"
CONTRACT_VERSION = 1
_PREFIX = "ssc_edge."
#: Longest JSON text a metadata value may hold, bytes (an exported model's largest, the fit report, is ~10 kB).
MAX_JSON_BYTES = 1 << 20
#: Deepest nesting of arrays and objects a metadata value may have (an exported model's is 4).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]{}"]+')  # strings, and runs without brackets


def parse_json(
    text: str,
    *,
    what: str,
    source: object = "model",
    error: type[Exception] = ModelError,
    max_bytes: int = MAX_JSON_BYTES,
) -> object:
    """Parse a JSON text from a file we did not write, within ``max_bytes`` and :data:`MAX_JSON_DEPTH`.

    Parameters
    ----------
    text : str
    what : str
        Named in the message (``metadata ssc_edge.training``).
    source : object
        Named in the message (the file).
    error : type
        The exception raised (one of :mod:`ssc_edge.errors`).
    max_bytes : int
        Longest text accepted, characters (a batch manifest may be longer than model metadata).

    Raises
    ------
    error
        Too long, nested too deep (which would otherwise be a ``RecursionError``) or not JSON: one line.
    """
    if len(text) > max_bytes:
        raise error(f"{source}: {what} is {len(text)} characters of JSON, more than {max_bytes}")
    depth = level = 0
    for char in _JSON_STRING.sub("", text):  # brackets inside strings do not nest
        if char in "[{":
            level += 1
            depth = max(depth, level)
        elif char in "]}":
            level -= 1
    if depth > MAX_JSON_DEPTH:
        raise error(f"{source}: {what} nests JSON {depth} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{source}: {what} is not valid JSON ({getattr(exc, 'msg', exc)})") from None


def _is_number(value: object) -> bool:
    """An int or float, not a bool (JSON ``true`` is not a number of pixels)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelContract:
    """Everything the runtime needs to run an exported model, and its provenance.

    Attributes
    ----------
    halo : int
        Receptive-field radius of the graph, fine-grid pixels (derived from the built model).
    scale : float
        Normalisation: the network sees ``DN / scale`` and returns ``DN / scale``.
    layout : {"NHWC", "NCHW"}
        Tensor layout of input and output.
    upsampling : str
        How the runtime upsamples the 20 m bands before the network (``wald.UPSAMPLING_METHODS``).
    ratio : int
        Resolution ratio between the 20 m and 10 m grids (2).
    input_bands, output_bands : tuple of str
        Channel order of input and output.
    architecture : dict
        Model options (blocks, width, residual, kernel sizes).
    protocol : str
        ``"heldout"`` or ``"paper"`` (trained on the evaluation pair: training-set numbers).
    training : dict
        The training configuration (epochs, lr, batch, patch size, degradation, seed, ...).
    scene_sha256 : str
        SHA-256 of the scene file the model was fitted on ("" for the generated demo scene).
    scene_name : str
    metrics : dict
        Reduced-resolution quality of the model and of bicubic (``QualityReport.to_dict``).
    versions : dict
        Package and library versions that produced the model.
    precision : str
        ``"fp32"``, ``"fp16"`` or ``"int8"`` (set by ``ssc-edge optimize``).
    quality_loss_db : float
        Mean-SRE loss against the fp32 parent, dB (0 for an fp32 model).
    registration : dict
        Metadata key ``ssc_edge.registration``: ``"estimate"``, the scene's band registration and
        relative blur (``registration.RegistrationEstimate.to_dict``), and ``"pair_model"``, the
        kernels and offset the training pair was built with (``wald.PairModel.to_dict``); empty when
        the pair was the nominal one (models of earlier versions lack the key).
    """

    halo: int
    scale: float
    layout: str = "NHWC"
    upsampling: str = "bicubic"
    ratio: int = 2
    input_bands: tuple[str, ...] = COARSE_BANDS + FINE_BANDS
    output_bands: tuple[str, ...] = COARSE_BANDS
    architecture: dict = field(default_factory=dict)
    protocol: str = "heldout"
    training: dict = field(default_factory=dict)
    scene_sha256: str = ""
    scene_name: str = ""
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    precision: str = "fp32"
    quality_loss_db: float = 0.0
    registration: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise ModelError(f"layout must be NHWC or NCHW, got {self.layout!r}")
        if not _is_number(self.halo) or not math.isfinite(self.halo) or int(self.halo) != self.halo:
            raise ModelError(f"halo must be a whole number of pixels, got {self.halo!r}")
        if not 0 <= self.halo <= MAX_HALO:
            raise ModelError(f"halo must be 0 to {MAX_HALO} pixels, got {self.halo!r}")
        if not _is_number(self.scale) or not math.isfinite(self.scale) or not self.scale > 0:
            raise ModelError(f"scale must be a finite positive number, got {self.scale!r}")
        if not _is_number(self.ratio) or self.ratio not in (2, 6):
            raise ModelError(f"ratio must be 2 (20 m bands) or 6 (60 m bands), got {self.ratio!r}")
        if not _is_number(self.quality_loss_db) or not math.isfinite(self.quality_loss_db):
            raise ModelError(f"quality_loss_db must be a finite number of dB, got {self.quality_loss_db!r}")
        for name in ("upsampling", "protocol", "scene_sha256", "scene_name", "precision"):
            if not isinstance(getattr(self, name), str):
                raise ModelError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("architecture", "training", "metrics", "versions", "registration"):
            if not isinstance(getattr(self, name), dict):
                raise ModelError(f"{name} must be a JSON object, got {type(getattr(self, name)).__name__}")
        for name in ("input_bands", "output_bands"):
            bands = getattr(self, name)
            if not isinstance(bands, (list, tuple)) or not bands or not all(isinstance(b, str) for b in bands):
                raise ModelError(f"{name} must be a non-empty list of band names, got {bands!r}")
            unknown = [b for b in bands if GSD.get(b) not in (10, 20, 60)]
            if unknown:
                raise ModelError(
                    f"{name[:-1].replace('_', ' ')} {unknown[0]!r} is not a Sentinel-2 10 m, 20 m or 60 m band"
                )
        if {GSD[b] // 10 for b in self.output_bands} != {self.ratio}:
            raise ModelError(
                f"ratio {self.ratio} for output bands {', '.join(self.output_bands)}; this runtime sharpens 20 m "
                "bands (ratio 2) or 60 m bands (ratio 6) to 10 m"
            )
        coarser = [b for b in self.input_bands if GSD[b] > 10 * self.ratio]
        if coarser:  # a 20 m model reads 10 m and 20 m bands: a 60 m band would need a grid it does not check
            raise ModelError(
                f"a {10 * self.ratio} m model (ratio {self.ratio}) cannot read the {GSD[coarser[0]]} m band "
                f"{coarser[0]}; only a 60 m model (ratio 6) reads 60 m bands"
            )
        object.__setattr__(self, "halo", int(self.halo))
        object.__setattr__(self, "ratio", int(self.ratio))
        object.__setattr__(self, "input_bands", tuple(self.input_bands))
        object.__setattr__(self, "output_bands", tuple(self.output_bands))

    @property
    def channels_in(self) -> int:
        """Number of input channels (10)."""
        return len(self.input_bands)

    @property
    def channels_out(self) -> int:
        """Number of output channels (6)."""
        return len(self.output_bands)

    def to_metadata(self) -> dict[str, str]:
        """Flat ``{key: str}`` for ``onnx.ModelProto.metadata_props``."""
        meta = {f"{_PREFIX}contract_version": str(CONTRACT_VERSION)}
        for key, value in asdict(self).items():
            meta[_PREFIX + key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return meta

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, source: object = "model") -> ModelContract:
        """Parse :meth:`to_metadata` output; raise :class:`ModelError` naming ``source`` if it is not one."""
        version = metadata.get(f"{_PREFIX}contract_version")
        if version is None:
            raise ModelError(
                f"{source}: not an ssc-edge model (no ssc_edge metadata); export it with ssc-edge fit-and-export"
            )
        if version != str(CONTRACT_VERSION):
            raise ModelError(
                f"{source}: ssc-edge model contract version {version}, this runtime reads {CONTRACT_VERSION}"
            )
        values = {}
        for f in fields(cls):
            raw = metadata.get(_PREFIX + f.name)
            if raw is None:
                if f.name in ("halo", "scale"):
                    raise ModelError(f"{source}: ssc-edge metadata lacks {_PREFIX}{f.name}")
                continue
            what = f"metadata {_PREFIX}{f.name}"
            values[f.name] = raw if f.type == "str" else parse_json(raw, what=what, source=source)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ModelError(f"{source}: malformed ssc-edge metadata ({exc})") from None
        except ModelError as exc:
            raise ModelError(f"{source}: ssc-edge metadata: {exc}") from None


def check_scene_size(shape: tuple[int, int], contract, *, source: object = "scene") -> None:
    """Raise :class:`SceneError` unless an (H, W) fine grid is large enough and divisible for the model.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the fine (10 m) grid, pixels.
    contract : ModelContract
        Gives the ``halo`` (pixels) and the bands it reads: the grid must be at least ``2 halo + 1`` px a
        side and a multiple of the coarsest input band's ratio (2 for 20 m bands, 6 for 60 m bands).
    source : object
        Named in the message (the scene's file).
    """
    need = 2 * contract.halo + 1
    if min(shape) < need:
        raise SceneError(
            f"{source} of {shape[0]}x{shape[1]} px is smaller than the model's receptive field "
            f"(2 x halo {contract.halo} + 1 = {need} px a side)"
        )
    ratio = max([contract.ratio, *(GSD.get(b, 10) // 10 for b in contract.input_bands)])
    if shape[0] % ratio or shape[1] % ratio:
        what = "even" if ratio == 2 else f"a multiple of {ratio} (the 60 m grid)"
        raise SceneError(f"{source} of {shape[0]}x{shape[1]} px: the 10 m size must be {what}")
