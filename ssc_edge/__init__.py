"""ssc-edge: zero-shot Sentinel-2 sharpening (SSC-CNN, Nguyen et al. 2020) from training to the edge.

The package root imports no TensorFlow and no onnxruntime: training lives in
``ssc_edge.train`` (TensorFlow), inference in ``ssc_edge.runtime`` (onnxruntime + numpy).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ssc-edge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
