"""Keras model -> .tflite bytes -> facts about them and C arrays.

Everything here except :func:`to_tflite` works on bytes and needs no TensorFlow.
"""

from effkeras.convert.c_array import parse_c_array, to_c_array
from effkeras.convert.calibration import calibration_samples
from effkeras.convert.converter import QUANTIZE_MODES, to_tflite
from effkeras.convert.flatbuffer import OpInfo, QuantParams, TensorInfo, TFLiteModel, read_tflite
from effkeras.convert.metadata import add_metadata, read_metadata
from effkeras.convert.names import strip_tensor_names

__all__ = [
    "QUANTIZE_MODES",
    "OpInfo",
    "QuantParams",
    "TFLiteModel",
    "TensorInfo",
    "add_metadata",
    "calibration_samples",
    "parse_c_array",
    "read_metadata",
    "read_tflite",
    "strip_tensor_names",
    "to_c_array",
    "to_tflite",
]
