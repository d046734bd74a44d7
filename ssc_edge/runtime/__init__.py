"""The edge runtime: sharpen scenes with an exported ssc-edge ONNX model on any onnxruntime provider.

Imports only numpy, scipy and onnxruntime (rasterio inside the GeoTIFF functions); never
TensorFlow. The ONNX file and its metadata (:mod:`ssc_edge.contract`) are all it shares with the
trainer.

>>> from ssc_edge.runtime import Sharpener  # doctest: +SKIP
>>> sharpened = Sharpener("models/demo.onnx", provider="auto").sharpen(scene)  # (H, W, 6) float32 DN
"""

from __future__ import annotations

from ..tiling import PlannedTile, Tile, plan_tiles, stitch
from .providers import AUTO_ORDER, PROVIDERS, available_providers, make_session, resolve_provider
from .session import LoadedModel, load_model
from .sharpen import Sharpener

__all__ = [
    "Sharpener",
    "load_model",
    "LoadedModel",
    "make_session",
    "available_providers",
    "resolve_provider",
    "PROVIDERS",
    "AUTO_ORDER",
    "Tile",
    "PlannedTile",
    "plan_tiles",
    "stitch",
]
