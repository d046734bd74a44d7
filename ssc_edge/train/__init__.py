"""The trainer: SSC-CNN in TensorFlow/Keras, fitted per scene and exported to ONNX.

This is the only package that imports TensorFlow (lazily, inside the functions that need it).
"""

from .export import ExportResult, fit_and_export, keras_to_onnx
from .fit import PROTOCOLS, Evaluation, FitConfig, FitResult, evaluate_fit, fit_model, training_data
from .model import ModelConfig, build_ssc_cnn, receptive_halo

__all__ = [
    "PROTOCOLS",
    "Evaluation",
    "ExportResult",
    "FitConfig",
    "FitResult",
    "ModelConfig",
    "build_ssc_cnn",
    "evaluate_fit",
    "fit_and_export",
    "fit_model",
    "keras_to_onnx",
    "receptive_halo",
    "training_data",
]
