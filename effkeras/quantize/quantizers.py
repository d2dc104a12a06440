"""Fake-quantization functions that reproduce TFLite's int8 scheme in Keras 3.

They are built on :func:`keras.quantizers.fake_quant_with_min_max_vars`, which on the
TensorFlow backend emits ``FakeQuantWithMinMaxVars(PerChannel)``: the ops the TFLite
converter reads to set each tensor's scale and zero point without representative data.

TFLite int8 (the converter's quantization spec):

- weights: int8 symmetric, zero point 0, narrow range [-127, 127], ``scale = max|w| / 127``
  per output channel for CONV_2D and DEPTHWISE_CONV_2D. FULLY_CONNECTED weights get one
  scale per tensor: the TFLite converter (2.21) cannot carry a per-channel FakeQuant
  through the transpose it inserts for a MatMul kernel ("'tfl.transpose' op has
  mismatched quantized axes"), and per-tensor is what the int8 spec prescribes for it;
- activations: int8 asymmetric, one scale and zero point per tensor, range [-128, 127];
  the real range always contains 0 (so that padding and ReLU are exact);
- fixed output ranges: softmax and logistic ``scale = 1/256, zero_point = -128``; tanh
  ``scale = 1/128, zero_point = 0``.
"""

from __future__ import annotations

import keras
from keras import ops

NUM_BITS = 8

#: Fixed (min, max) real ranges that give TFLite's fixed output quantization:
#: 255 steps of 1/256 from 0 (zero point -128), and 255 steps of 1/128 from -1 (zero point 0).
FIXED_OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "softmax": (0.0, 255.0 / 256.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "tanh": (-1.0, 127.0 / 128.0),
}

#: Smallest real range an activation quantizer will use (avoids a zero scale).
MIN_RANGE = 1e-6


def quantize_weights(kernel, axis: int | None = -1):
    """Fake-quantize ``kernel``: symmetric, narrow range [-127, 127], int8.

    With ``axis``, one scale per channel along it, ``scale_c = max|kernel[..., c]| / 127``
    (Conv2D, DepthwiseConv2D); with ``axis=None`` one scale for the whole kernel. The zero
    point is 0. The range is computed from the kernel without a gradient (the kernel
    itself gets the straight-through estimator).
    """
    if axis is None:
        reduce_axes = tuple(range(len(kernel.shape)))
    else:
        axis = axis % len(kernel.shape)
        reduce_axes = tuple(i for i in range(len(kernel.shape)) if i != axis)
    max_abs = ops.stop_gradient(ops.max(ops.abs(kernel), axis=reduce_axes))
    max_abs = ops.maximum(max_abs, MIN_RANGE)
    return keras.quantizers.fake_quant_with_min_max_vars(
        kernel, -max_abs, max_abs, num_bits=NUM_BITS, narrow_range=True, axis=axis
    )


def quantize_activations(x, range_min, range_max):
    """Fake-quantize ``x`` per tensor, asymmetric, with the real range [min, max].

    The range must contain 0 (TFLite's converter widens it otherwise, while TensorFlow's
    FakeQuant shifts it, and the two would disagree); :func:`batch_range` ensures this.
    """
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, range_min, range_max, num_bits=NUM_BITS, narrow_range=False
    )


def batch_range(x):
    """(min, max) of ``x`` widened to contain 0 and at least :data:`MIN_RANGE` wide."""
    x = ops.stop_gradient(ops.cast(x, "float32"))
    lo = ops.minimum(ops.min(x), 0.0)
    hi = ops.maximum(ops.max(x), 0.0)
    hi = ops.maximum(hi, lo + MIN_RANGE)
    return lo, hi


def scale_and_zero_point(range_min: float, range_max: float) -> tuple[float, int]:
    """The int8 (scale, zero_point) TFLite derives from a real range (for reports/tests)."""
    range_min, range_max = min(float(range_min), 0.0), max(float(range_max), 0.0)
    scale = (range_max - range_min) / 255.0
    zero_point = int(round(-128 - range_min / scale))
    return scale, max(-128, min(127, zero_point))
