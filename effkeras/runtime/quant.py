"""Convert between real values and a tensor's quantized integers (TFLite's affine scheme)."""

from __future__ import annotations

import numpy as np

from effkeras.convert.flatbuffer import TensorInfo

_INT_RANGES = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767)}


def is_quantized(tensor: TensorInfo) -> bool:
    """True when the tensor holds integers that stand for real values."""
    return tensor.dtype in _INT_RANGES and tensor.quantization is not None


def quantize(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Real values -> the tensor's dtype: q = clip(round(x / scale) + zero_point)."""
    x = np.asarray(x)
    if not is_quantized(tensor):
        return x.astype(tensor.numpy_dtype)
    if x.dtype == tensor.numpy_dtype and x.dtype.kind in "iu":
        return x  # already quantized
    q = tensor.quantization
    lo, hi = _INT_RANGES[tensor.dtype]
    scaled = np.round(x.astype(np.float64) / float(q.scales[0])) + int(q.zero_points[0])
    return np.clip(scaled, lo, hi).astype(tensor.numpy_dtype)


def dequantize(q: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """The tensor's integers -> real values: (q - zero_point) * scale, as float32."""
    q = np.asarray(q)
    if not is_quantized(tensor):
        return q.astype(np.float32)
    p = tensor.quantization
    return ((q.astype(np.float64) - int(p.zero_points[0])) * float(p.scales[0])).astype(np.float32)
